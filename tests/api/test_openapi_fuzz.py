"""Schemathesis against the app's own OpenAPI schema: every operation, at least 100 generated requests
each (valid and invalid, plus schemathesis' examples and coverage phases), over ASGI with real
Postgres and Redis and moto's SQS server.

Every response must have a documented status and a body matching its documented schema, never a
5xx; valid requests must be accepted and invalid ones refused. Schemathesis is told the credentials
(API key, admin token, provider token, main bot webhook secret), so valid requests reach the handlers
and it knows which of its requests leave them out on purpose.
"""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from tests.api.public_api_support import build_app
from tgops.config import Settings, get_settings
from tgops.local.services import LocalSqs
from tgops.messaging.sqs import SqsQueues
from tgops.runtime import Runtime
from tgops.security import hash_secret

EXAMPLES_PER_OPERATION = 100
API_KEY = "tgk_fuzz-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
ADMIN_TOKEN = "fuzz-admin-token"
PROVIDER_TOKEN = "fuzz-provider-token"
WEBHOOK_SECRET = "fuzz-webhook-secret"

CONFIG = SchemathesisConfig.from_dict(
    {
        "auth": {
            "openapi": {
                "APIKeyHeader": {"api_key": API_KEY},
                "ProviderToken": {"api_key": PROVIDER_TOKEN},
                "HTTPBearer": {"bearer": ADMIN_TOKEN},
                "TelegramWebhookSecret": {"api_key": WEBHOOK_SECRET},
            }
        },
    }
)

# Built once at collection, so each operation is its own test; each test gives it a fresh runtime.
# (schemathesis' `from_fixture` loader does not run on pytest 9: it writes `Function._nodeid`.)
app, _ = build_app(Settings(env="development"))  # a placeholder runtime until each test sets its own
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


@asynccontextmanager
async def close_runtime_on_shutdown(_app):
    # Schemathesis serves the app on its own event loop and ends its lifespan after each test:
    # the pools opened on that loop are closed there.
    yield
    await app.state.runtime.close()


app.router.lifespan_context = close_runtime_on_shutdown


@pytest.fixture(scope="module")
def sqs_endpoint_url():
    """moto's SQS server: the queues every operation sends to or reads."""
    server = LocalSqs()
    url = server.start()
    SqsQueues(Settings(sqs_endpoint_url=url)).ensure_queues()
    yield url
    server.stop()


@pytest.fixture(autouse=True)
async def fuzz_runtime(settings, db, sqs_endpoint_url, monkeypatch):
    await db.fetch_one(
        "api_key_insert",
        {
            "name": "fuzz",
            "key_prefix": API_KEY[:10],
            "key_hash": hash_secret(API_KEY),
            "rate_limit_per_window": 10**9,
        },
    )
    monkeypatch.setenv("TGOPS_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("TGOPS_PROVIDER_TOKEN", PROVIDER_TOKEN)
    monkeypatch.setenv("TGOPS_TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("TGOPS_SQS_ENDPOINT_URL", sqs_endpoint_url)
    # Schemathesis sends wrong credentials on purpose, far more than a client may (tests/api/test_surface.py).
    monkeypatch.setenv("TGOPS_AUTH_FAILURE_LIMIT", str(10**9))
    # moto answers a long poll on an empty queue only after the whole wait, where its short poll is
    # already exact: without this each DLQ request would cost a second.
    monkeypatch.setattr("tgops.messaging.dlq.RECEIVE_WAIT_SEC", 0)
    get_settings.cache_clear()
    app.state.runtime = Runtime(get_settings())


requests_sent: Counter[str] = Counter()
failed: set[str] = set()  # a failing operation stops early; its failure is the report


@pytest.fixture(scope="module", autouse=True)
def every_operation_got_its_examples():
    yield
    # An operation without parameters or body has a single distinct request to make.
    takes_input = {
        operation.label
        for operation in (result.ok() for result in schema.get_all_operations())
        if operation.body or any(True for _ in operation.iter_parameters())
    }
    ran = (takes_input & set(requests_sent)) - failed  # not those deselected with -k
    short = {label: requests_sent[label] for label in ran if requests_sent[label] < EXAMPLES_PER_OPERATION}
    assert not short, f"operations that got fewer than {EXAMPLES_PER_OPERATION} requests: {short}"


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(case):
    requests_sent[case.operation.label] += 1
    try:
        case.call_and_validate()
    except BaseException:  # schemathesis reports with a BaseExceptionGroup
        failed.add(case.operation.label)
        raise
