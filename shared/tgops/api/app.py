"""`create_app()`: the one FastAPI application, served by Mangum on Lambda and by uvicorn locally."""

from __future__ import annotations

from fastapi import FastAPI

import tgops
from tgops.api.routers import health
from tgops.config import get_settings
from tgops.runtime import Runtime


def create_app(runtime: Runtime | None = None) -> FastAPI:
    app = FastAPI(
        title="tgops",
        version=tgops.__version__,
        description="Telegram webhooks, the public API, the provider API and the admin API.",
    )
    app.state.runtime = runtime or Runtime(get_settings())
    app.include_router(health.router)
    return app
