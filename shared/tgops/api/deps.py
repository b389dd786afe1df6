"""FastAPI dependencies as short `Annotated` aliases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from tgops.config import Settings, get_settings
from tgops.runtime import Runtime

if TYPE_CHECKING:
    from tgops.messaging.sqs import QueueSender


# async, though they never wait: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
# on every request.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_queues(runtime: Annotated[Runtime, Depends(get_runtime)]) -> "QueueSender":
    """The queue sender; tests override this dependency with InMemoryQueues."""
    return runtime.queues()


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
QueuesDep = Annotated["QueueSender", Depends(get_queues)]
