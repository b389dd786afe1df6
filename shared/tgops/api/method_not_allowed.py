"""405 answers that list every method of the path in `Allow`.

The router answers 405 from the first route whose path matches, so `Allow` names only that route's
methods even when the path has several (GET, PATCH and DELETE on /api/groups/{group_id}); HTTP wants
the resource's full list. Each method is probed against the routes the way the router matches them.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


async def method_not_allowed(request: Request, error: HTTPException) -> Response:
    error.headers = {**(error.headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return await http_exception_handler(request, error)
