"""The app under test for the public API: real Postgres and Redis, queues recorded in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from tgops.api.app import create_app
from tgops.config import Settings
from tgops.messaging.sqs import InMemoryQueues
from tgops.runtime import Runtime


@dataclass
class PublicApi:
    app: FastAPI
    client: httpx.AsyncClient
    queues: InMemoryQueues
    runtime: Runtime


def build_app(settings: Settings) -> tuple[FastAPI, InMemoryQueues]:
    queues = InMemoryQueues()
    app = create_app(Runtime(settings, queue_sender=queues))
    return app, queues


@asynccontextmanager
async def public_api(settings: Settings) -> AsyncIterator[PublicApi]:
    app, queues = build_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield PublicApi(app, client, queues, app.state.runtime)
        finally:
            await app.state.runtime.close()
