"""Request bodies above a limit are refused with 413 on every route, before anything parses them.

A declared `Content-Length` over the limit is answered at once, before authentication or routing; a body
streamed without one is counted as the app reads it and refused the moment it passes the limit.
(Starlette's own RequestBodyLimitMiddleware answers in plain text; this one answers in the route's shape.)
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgops.api.errors import Refused, error_body


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reason = f"the body is larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_size(scope) > self.max_bytes:
            response = JSONResponse(error_body(Request(scope), self.reason), status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise Refused(413, self.reason)  # FastAPI lets an HTTPException out of body parsing
            return message

        await self.app(scope, counted_receive, send)

    @staticmethod
    def _declared_size(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value) if value.isdigit() else 0
        return 0
