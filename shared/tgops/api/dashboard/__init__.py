"""The admin dashboard: server-rendered pages (Jinja2, a vendored htmx) behind an admin login.

It is mounted lazily: its routes, forms and templates are built on its first request, so a webhook's
cold start pays nothing for them (bench/cold_start.py).
"""

from __future__ import annotations

from typing import Any

PREFIX = "/dashboard"


class LazyDashboard:
    """An ASGI app that builds the dashboard on its first request (`app.mount(PREFIX, LazyDashboard())`)."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            from tgops.api.dashboard.router import dashboard_app

            self._app = dashboard_app(scope["app"].state.runtime)
        await self._app(scope, receive, send)
