"""The routers included lazily (tgops.api.routers.include_lazily) answer a fresh app's first request
exactly as they answer once included, and the OpenAPI document lists every route of every router."""

from __future__ import annotations

import gc
import importlib
import pkgutil

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

import tgops.api.routers
from tgops.api.app import create_app
from tgops.api.routers import LazyRouters
from tgops.config import Settings
from tgops.messaging.sqs import InMemoryQueues
from tgops.runtime import Runtime

# Each one the first request of a fresh app, with the answer it gets.
FIRST_REQUESTS = [
    ("GET", "/nowhere", 404),
    ("PATCH", "/api/live_streams", 405),  # Allow names the path's methods
    ("GET", "/api/live_streams/", 307),  # to the path without the slash
    ("GET", "/api/live_streams", 401),  # no API key
    ("DELETE", "/api/broadcasts/01J00000000000000000000000", 401),
    ("GET", "/admin/sent_messages.csv", 401),  # no admin token
    ("GET", "/admin/dlq/dm_queue", 401),
    ("POST", "/api/provider/telegram/tasks/pull", 401),  # no provider token
    ("POST", "/api/webhooks/telegram/0", 422),  # a webhook (bot ids start at 1): served without them
    ("GET", "/health", 503),  # degraded: the in-memory queues have no SQS to check
]


@pytest.fixture
async def runtime(settings):
    runtime = Runtime(settings, queue_sender=InMemoryQueues())
    yield runtime
    await runtime.close()


def lazy_routers(app: FastAPI) -> LazyRouters:
    (lazy,) = [route for route in app.routes if isinstance(route, LazyRouters)]
    return lazy


async def answer(app: FastAPI, method: str, path: str) -> tuple:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.request(method, path, headers={"Content-Type": "application/json"})
    headers = {
        name: response.headers.get(name) for name in ("allow", "location", "content-type", "retry-after")
    }
    return response.status_code, headers, response.content


@pytest.mark.parametrize(
    ("method", "path", "status"),
    FIRST_REQUESTS,
    ids=[f"{method} {path}" for method, path, _ in FIRST_REQUESTS],
)
async def test_the_first_request_is_answered_as_once_every_router_is_included(runtime, method, path, status):
    fresh = create_app(runtime)
    included = create_app(runtime)
    lazy_routers(included).include()

    first = await answer(fresh, method, path)
    later = await answer(included, method, path)

    assert first == later
    assert first[0] == status
    assert lazy_routers(fresh).included == (not path.startswith("/api/webhooks/"))


def every_documented_route_of_the_routers() -> set[str]:
    operations = set()
    for module in pkgutil.iter_modules(tgops.api.routers.__path__):
        router = importlib.import_module(f"tgops.api.routers.{module.name}").router
        for route in router.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                operations |= {f"{method} {route.path}" for method in route.methods}
    return operations


async def test_openapi_json_as_the_first_request_lists_every_route_of_every_router():
    app = create_app(Runtime(Settings()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        document = (await client.get("/openapi.json")).json()

    documented = {
        f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods
    }
    assert documented == every_documented_route_of_the_routers()
    assert {"POST /api/webhooks/telegram", "GET /api/broadcasts/{job_id}", "GET /health"} <= documented


async def test_the_routers_are_included_once_however_many_requests_and_documents_ask(runtime):
    app = create_app(runtime)
    await answer(app, "GET", "/nowhere")
    routes = list(app.routes)
    app.openapi()
    await answer(app, "GET", "/api/live_streams")

    assert app.routes == routes


def test_routers_included_in_a_process_that_froze_what_it_loaded_are_frozen_too(runtime):
    """Else every full collection walks them while requests wait (bench/ingress.py's p99)."""
    app = create_app(runtime)
    lazy = next(route for route in app.router.routes if isinstance(route, LazyRouters))
    gc.freeze()  # as tgops.api.app.freeze_loaded_objects does once the app is built
    try:
        frozen_before = gc.get_freeze_count()
        lazy.include()
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
