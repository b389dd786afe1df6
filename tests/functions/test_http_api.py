"""functions/http_api/app.handler answers a saved API Gateway HTTP API (v2) event, as Lambda would call it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from moto import mock_aws

from tests.conftest import load_event
from tgops.config import get_settings
from tgops.local.services import free_port

HANDLER_PATH = Path(__file__).resolve().parents[2] / "functions" / "http_api" / "app.py"
LAMBDA_CONTEXT = SimpleNamespace(
    function_name="tgops-test-HttpApiFunction", aws_request_id="c6af9ac6-7b61-11e6-9a41-93e812345678"
)

Handler = Callable[[dict, object], dict]


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Only TGOPS_ENV=development: no database, no Redis, no .env file."""
    for name in [name for name in os.environ if name.startswith("TGOPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TGOPS_ENV", "development")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def load_handler() -> Iterator[Callable[[], Handler]]:
    """Imports the handler module afresh, so it is built from this test's settings; closes its connections."""
    handlers = []

    def load() -> Handler:
        spec = importlib.util.spec_from_file_location(f"http_api_app_{uuid.uuid4().hex}", HANDLER_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handlers.append(module.handler)
        return module.handler

    yield load
    for handler in handlers:
        # Mangum runs every invocation on the thread's event loop; the connections live on it.
        asyncio.get_event_loop().run_until_complete(handler.app.state.runtime.close())


def health(handler: Handler) -> tuple[int, dict]:
    response = handler(load_event("http_api_health"), LAMBDA_CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def assert_health_shape(body: dict) -> None:
    assert set(body) == {"status", "version", "dependencies"}
    assert set(body["dependencies"]) == {"postgres", "redis", "sqs"}
    for dependency in body["dependencies"].values():
        assert dependency["status"] in {"up", "down", "not_configured"}


def test_health_answers_with_nothing_configured(unconfigured, load_handler):
    with mock_aws():
        status, body = health(load_handler())
    assert status == 200
    assert_health_shape(body)
    assert body["status"] == "ok"
    assert {name: item["status"] for name, item in body["dependencies"].items()} == {
        "postgres": "not_configured",
        "redis": "not_configured",
        "sqs": "up",
    }


def test_health_reports_every_dependency_up(settings, load_handler):
    with mock_aws():
        status, body = health(load_handler())
    assert status == 200
    assert_health_shape(body)
    assert {item["status"] for item in body["dependencies"].values()} == {"up"}


def test_health_is_degraded_when_the_database_does_not_answer(unconfigured, monkeypatch, load_handler):
    monkeypatch.setenv("TGOPS_DATABASE_URL", f"postgresql://tgops@127.0.0.1:{free_port()}/tgops")
    monkeypatch.setenv("TGOPS_DATABASE_CONNECT_TIMEOUT_SEC", "1")
    with mock_aws():
        status, body = health(load_handler())
    assert status == 503
    assert_health_shape(body)
    assert body["status"] == "degraded"
    assert body["dependencies"]["postgres"]["status"] == "down"
    assert body["dependencies"]["postgres"] == {"status": "down"}  # the reason is logged, not shown
    assert body["dependencies"]["redis"]["status"] == "not_configured"


def test_saved_event_is_an_http_api_v2_get_of_health():
    event = load_event("http_api_health")
    assert (event["version"], event["routeKey"]) == ("2.0", "$default")
    assert event["requestContext"]["stage"] == "$default"
    assert (event["requestContext"]["http"]["method"], event["rawPath"]) == ("GET", "/health")
