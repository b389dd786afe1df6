"""`create_app()`: the one FastAPI application, served by Mangum on Lambda and by uvicorn locally."""

from __future__ import annotations

from fastapi import FastAPI

import tgops
from tgops.api.method_not_allowed import method_not_allowed
from tgops.api.routers import admin_dlq, health, public, webhooks
from tgops.api.routers import provider as provider_router
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
    app.include_router(webhooks.router)
    app.include_router(admin_dlq.router)
    app.include_router(public.router)
    app.add_exception_handler(405, method_not_allowed)
    app.include_router(provider_router.router)
    return app
