"""Every API request is a correlation scope (tgops.correlation), an X-Ray span and one access line.

The request id is the client's `X-Request-Id` when it is a usable id, else API Gateway's request id
(on Lambda, so the access line matches API Gateway's own logs), else a new one; the response echoes
it in `X-Request-Id`. Messages queued while handling the request carry it, so their consumers log
under the same id. Each request is counted (ApiRequests, ApiClientErrors, ApiServerErrors).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgops import correlation, metrics, tracing

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"


class RequestCorrelation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        status = 500  # unless a response starts: an error escaped every handler

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        fields = {"function_request_id": getattr(scope.get("aws.context"), "aws_request_id", None)}
        with correlation.scope(correlation_id=request_id, **fields):
            try:
                with tracing.span(f"{scope['method']} {scope['path']}", http_method=scope["method"]):
                    await self.app(scope, receive, send_with_request_id)
            finally:
                _log_access(scope, status, time.perf_counter() - started)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if (given := correlation.accepted_id(value.decode("latin-1"))) is not None:
                return given
            break
    gateway: Any = (scope.get("aws.event") or {}).get("requestContext") or {}
    return correlation.accepted_id(gateway.get("requestId")) or correlation.new_id()


def _log_access(scope: Scope, status: int, elapsed_sec: float) -> None:
    route = getattr(scope.get("route"), "path", None)  # the matched route's template, for grouping
    duration_ms = round(elapsed_sec * 1000, 1)
    log.info(
        "%s %s %d in %.0f ms",
        scope["method"],
        scope["path"],
        status,
        duration_ms,
        extra={"http_method": scope["method"], "path": scope["path"], "route": route, "status": status,
               "duration_ms": duration_ms},
    )  # fmt: skip
    metrics.publish(
        {"ApiRequests": 1, "ApiClientErrors": int(400 <= status < 500), "ApiServerErrors": int(status >= 500)}
    )
