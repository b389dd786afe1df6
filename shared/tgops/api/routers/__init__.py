"""The API's routers, one module each (`router = APIRouter(...)`).

A router off the webhook's path is included lazily (`include_lazily`): its module is imported, and its
routes built, on the first request the routes before it do not answer, or when the OpenAPI document is
built. A webhook's cold start pays nothing for them (bench/cold_start.py); every route answers, and the
document lists it, as if it had been included at start-up.
"""

from __future__ import annotations

import gc
from importlib import import_module
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send


class LazyRouters(BaseRoute):
    """Stands last in the app's routes for routers not imported yet; see `include_lazily`."""

    def __init__(self, app: FastAPI, modules: tuple[str, ...]) -> None:
        self.app = app
        self.modules = modules
        self.included = False

    def include(self) -> None:
        """Import the routers and include them in the app (once)."""
        if self.included:
            return
        routers = [import_module(f"{__name__}.{module}").router for module in self.modules]
        for router in routers:
            self.app.include_router(router)
        self.included = True
        if gc.get_freeze_count():  # the process froze what it loaded (api.app.freeze_loaded_objects):
            gc.freeze()  # these routers live as long, and full collections must not walk them either

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not self.included:
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.include()
        await self.app.router(scope, receive, send)  # routed again, now with every route

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)


def include_lazily(app: FastAPI, *modules: str) -> LazyRouters:
    """Include `tgops.api.routers.<module>.router` for each module once a request or the document needs it.

    Call it last: until the routers are included it claims every HTTP request that reaches it (so a
    route or mount after it would be reached only once they are), includes them, and routes the
    request again.
    """
    lazy = LazyRouters(app, modules)
    app.router.routes.append(lazy)
    return lazy
