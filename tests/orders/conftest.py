from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from tests.fakes.inspector import FakeInspector
from tests.fakes.panel_server import FakePanel
from tests.fakes.queues import RecordingQueues
from tgops.cache.client import RedisPyClient
from tgops.config import Settings
from tgops.orders.panel import HttpPanel
from tgops.orders.polling import OrderPoller

PANEL_KEY = "panel-test-key"


@pytest.fixture
def panel() -> Iterator[FakePanel]:
    with FakePanel(api_key=PANEL_KEY) as fake:
        yield fake


@pytest.fixture
def order_settings(settings: Settings, panel: FakePanel) -> Settings:
    return settings.model_copy(
        update={
            "panel_base_url": panel.url,
            "panel_api_key": SecretStr(PANEL_KEY),
            "panel_poll_statuses": ["validating", "in_progress"],
        }
    )


@pytest.fixture
def redis(redis_client: RedisPyClient) -> RedisPyClient:
    return redis_client


@pytest.fixture
def queues() -> RecordingQueues:
    return RecordingQueues()


@pytest.fixture
def inspector() -> FakeInspector:
    return FakeInspector()


@pytest.fixture
async def http_panel(order_settings: Settings) -> AsyncIterator[HttpPanel]:
    client = HttpPanel.from_settings(order_settings)
    yield client
    await client.aclose()


@pytest.fixture
def poller(order_settings, db, redis, queues, http_panel) -> OrderPoller:
    return OrderPoller(order_settings, db, redis, queues, http_panel)
