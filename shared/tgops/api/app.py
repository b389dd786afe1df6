"""`create_app()`: the one FastAPI application, served by Mangum on Lambda and by uvicorn locally."""

from __future__ import annotations

import gc
from collections.abc import Callable

from fastapi import FastAPI

import tgops
from tgops.api import docs, errors
from tgops.api.body_limit import BodySizeLimit
from tgops.api.correlation import RequestCorrelation
from tgops.api.dashboard import PREFIX as DASHBOARD_PREFIX
from tgops.api.dashboard import LazyDashboard
from tgops.api.errors import ErrorResponse
from tgops.api.method_not_allowed import method_not_allowed
from tgops.api.routers import LazyRouters, include_lazily, webhooks
from tgops.config import get_settings
from tgops.runtime import Runtime

# Every operation can be sent a body, and BodySizeLimit refuses one larger than TGOPS_API_MAX_BODY_BYTES.
# (A body that is not JSON FastAPI answers 422, as each operation documents.)
EVERY_OPERATION = {
    413: {"model": ErrorResponse, "description": "the request body is larger than TGOPS_API_MAX_BODY_BYTES"},
}


def create_app(runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(get_settings(), database_role="api")
    app = FastAPI(
        title="tgops",
        version=tgops.__version__,
        description="Telegram webhooks, the public API, the provider API and the admin API.",
        responses=EVERY_OPERATION,
        docs_url=None,  # served from the package's own assets (api/docs.py)
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.add_exception_handler(405, method_not_allowed)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.api_max_body_bytes)
    app.add_middleware(RequestCorrelation)  # outermost: a refused body's answer carries the request id too
    app.include_router(docs.router)
    app.include_router(webhooks.router)
    app.mount(DASHBOARD_PREFIX, LazyDashboard())
    # Off the webhook's path: imported on the first request that needs them (last: see include_lazily).
    lazy = include_lazily(app, "health", "admin_dlq", "public", "live_streams", "provider", "broadcasts")
    app.openapi = documented(app, lazy, webhooks.SECURITY_SCHEMES)
    return app


def documented(app: FastAPI, lazy: LazyRouters, schemes: dict[str, dict]) -> Callable[[], dict]:
    """`app.openapi` over every route, the lazy ones included first; it also declares the schemes the
    routes check themselves, not through a dependency."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            lazy.include()
            build().setdefault("components", {}).setdefault("securitySchemes", {}).update(schemes)
        return app.openapi_schema

    return openapi


def freeze_loaded_objects() -> None:
    """Take everything loaded so far out of the garbage collector's sight; call once the app is built.

    The app, its routes and the libraries behind them live as long as the process, yet each full
    collection would walk all of them while every request in flight waits (bench/ingress.py: webhook p99
    at saturation about 80 ms without this, about 23 ms with it).
    """
    gc.freeze()
