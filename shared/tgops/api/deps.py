"""FastAPI dependencies as short `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tgops.runtime import Runtime


# async, though they never wait: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
# on every request.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
