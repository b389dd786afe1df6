"""How the app answers what no route answers itself: a dependency down, a body too large, a client throttled.

`Refused` (413 from the body limit, 429 from the authentication throttle) is answered in the route's shape.

Routes let the package's own errors (`DatabaseUnavailable`, `RedisUnavailable`, `QueueUnavailable`, and
their subclasses) rise; the app answers them with 503, `Retry-After` and a reason fixed per dependency
(the driver's message goes to the log only). The provider API (seed 002) answers `{"ok": false,
"error": ...}`, every other route FastAPI's `{"detail": ...}`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tgops.cache.errors import RedisUnavailable
from tgops.config import SettingsError
from tgops.db.errors import DatabaseUnavailable
from tgops.messaging.errors import QueueUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SEC = 5
PROVIDER_PREFIX = "/api/provider/"

REASONS: dict[type[Exception], str] = {
    DatabaseUnavailable: "the database is unavailable; nothing was changed, retry later",
    RedisUnavailable: "Redis is unavailable; nothing was changed, retry later",
    QueueUnavailable: "the queue is unavailable; nothing was queued, retry later",
}


class ErrorResponse(BaseModel):
    """FastAPI's error body: `detail` says why the request was refused."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    return {code: {"model": ErrorResponse} for code in codes}


# FastAPI answers 400 itself for a body it cannot read (one that is not UTF-8, say); invalid JSON is 422.
BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the body cannot be read"}
}

RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def service_unavailable(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of the 503 these handlers answer, in FastAPI's `{"detail": ...}` shape."""
    return {503: {"model": ErrorResponse, "description": description, "headers": RETRY_AFTER_HEADER}}


THROTTLED = {
    429: {
        "model": ErrorResponse,
        "description": "too many failed authentications from this client; retry after Retry-After",
        "headers": RETRY_AFTER_HEADER,
    }
}

SERVICE_UNAVAILABLE = service_unavailable("a dependency is unavailable: nothing was done, retry later")


class Refused(HTTPException):
    """A refusal answered in the route's error shape (seed 002's under /api/provider/)."""


def install(app: FastAPI) -> None:
    for error_type in REASONS:
        app.add_exception_handler(error_type, dependency_unavailable)
    app.add_exception_handler(SettingsError, dependency_not_configured)
    app.add_exception_handler(Refused, refused)


def error_body(request: Request, reason: str) -> dict[str, Any]:
    """The route's error shape: seed 002's for the provider API, FastAPI's for the rest."""
    if request.url.path.startswith(PROVIDER_PREFIX):
        return {"ok": False, "error": reason}
    return {"detail": reason}


async def refused(request: Request, error: Refused) -> JSONResponse:
    return JSONResponse(error_body(request, error.detail), error.status_code, headers=error.headers)


async def dependency_unavailable(request: Request, error: Exception) -> JSONResponse:
    reason = next(text for kind, text in REASONS.items() if isinstance(error, kind))
    log.warning("%s %s answered 503: %s: %s", request.method, request.url.path, type(error).__name__, error)
    return JSONResponse(
        error_body(request, reason), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SEC)}
    )


async def dependency_not_configured(request: Request, error: SettingsError) -> JSONResponse:
    """A dependency this deployment has no URL for: the service is unavailable, not broken."""
    return JSONResponse(error_body(request, f"not configured: {error}"), status_code=503)
