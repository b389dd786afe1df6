"""Issue 12's lifecycle, in process: the fake panel over real HTTP, real Postgres and Redis, the provider
API through its HTTP routes (ASGI), validation from the tg-inspect messages the poller sent."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from tests.fakes.inspector import FakeInspector, missing
from tests.fakes.panel_server import FakePanel
from tests.fakes.queues import RecordingQueues
from tests.provider.conftest import PROVIDER_TOKEN, add_accounts
from tgops.api.app import create_app
from tgops.config import ServiceRule
from tgops.messaging.sqs import Received
from tgops.messaging.topology import INSPECT
from tgops.orders import panel_updates
from tgops.orders.panel import HttpPanel
from tgops.orders.polling import OrderPoller
from tgops.orders.timeline import order_timeline
from tgops.orders.validation import GroupValidator
from tgops.provider import generation
from tgops.runtime import Runtime

from .conftest import PANEL_KEY

BASE = "/api/provider/telegram"


class Stack:
    def __init__(self, settings, db, redis, panel: FakePanel, database_url: str, api, runtime) -> None:
        self.settings, self.db, self.redis, self.panel = settings, db, redis, panel
        self.database_url, self.api, self.runtime = database_url, api, runtime
        self.queues = RecordingQueues()
        self.inspector = FakeInspector()
        self.http_panel = HttpPanel.from_settings(settings)
        self._handled = 0

    async def poll(self):
        return await OrderPoller(self.settings, self.db, self.redis, self.queues, self.http_panel).poll()

    async def validate(self) -> None:
        """Handle every tg-inspect message sent since the last call."""
        validator = GroupValidator(self.settings, self.db, self.redis, self.queues, self.inspector)
        sent = self.queues.to(INSPECT.name)
        for call in sent[self._handled :]:
            await validator.handle(Received("sqs", "handle", call.body, receive_count=1))
        self._handled = len(sent)

    async def generate(self) -> dict:
        """One generate_tasks run with every executing order due."""
        self.sql("UPDATE provider_orders SET next_run_at = now() WHERE next_run_at IS NOT NULL")
        self.runtime.queue_sender = self.queues
        return await generation.run(self.runtime)

    async def pull(self) -> list[dict]:
        response = await self.api.post(f"{BASE}/tasks/pull", json={"limit": 100})
        return response.json()["tasks"]

    async def report(self, task: dict, state: str = "done", **fields) -> dict:
        body = {"task_id": task["task_id"], "state": state} | fields
        return (await self.api.post(f"{BASE}/tasks/report", json=body)).json()

    async def flush(self) -> panel_updates.FlushReport:
        return await panel_updates.flush(self.db, self.http_panel, self.settings)

    async def order(self, remote_order_id: int) -> dict:
        return await self.db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
async def stack(settings, db, redis_client, database_url) -> AsyncIterator[Stack]:
    with FakePanel(api_key=PANEL_KEY) as panel:
        configured = settings.model_copy(
            update={
                "panel_base_url": panel.url,
                "panel_api_key": SecretStr(PANEL_KEY),
                "panel_timeout_sec": 1,
                "dispatch_jitter_max_sec": 0,
                "panel_update_backoff_sec": [0],
                "order_service_rules": {1: ServiceRule(interval_seconds=1)},
            }
        )
        runtime = Runtime(configured)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tgops.test", headers={"X-Provider-Token": PROVIDER_TOKEN}
        ) as api:
            built = Stack(configured, db, redis_client, panel, database_url, api, runtime)
            yield built
            await built.http_panel.aclose()
        await runtime.close()


async def placed_and_started(stack: Stack, link: str, quantity: int, accounts: int) -> int:
    add_accounts(stack.database_url, accounts)
    order_id = stack.panel.place_order(link, quantity=quantity)
    await stack.poll()
    await stack.validate()
    assert (await stack.order(order_id))["status"] == "awaiting"
    return order_id


async def test_one_order_from_the_panel_to_completed_and_the_panel_hears_every_step(stack):
    order_id = await placed_and_started(stack, "https://t.me/durov/42", quantity=3, accounts=3)
    for _ in range(3):
        await stack.generate()
    tasks = await stack.pull()
    assert [(task["post_id"], task["panel_order_id"]) for task in tasks] == [(42, order_id)] * 3
    for task in tasks:
        assert await stack.report(task) == {"ok": True}
        await stack.flush()

    row = await stack.order(order_id)
    assert (row["status"], row["remains"], row["start_count"]) == ("completed", 0, 1200)
    heard = [
        (update["status"], update["remains"], update["start_count"])
        for update in stack.panel.updates_for(order_id)
    ]
    assert heard == [
        ("depends_ok", 3, 0),
        ("awaiting", 3, 1200),
        ("in_progress", 3, 1200),
        ("in_progress", 2, 1200),
        ("in_progress", 1, 1200),
        ("completed", 0, 1200),
    ]
    assert stack.panel.orders[order_id]["status"] == "completed"
    timeline = await order_timeline(stack.db, order_id)
    events = [event["event"] for event in timeline["events"]]
    assert events[:3] == ["polled", "validated", "started"]
    assert events.count("task created") == events.count("task done") == 3 and events.count("panel told") == 6
    assert (timeline["tasks"], timeline["panel_updates"]) == ({"done": 3}, {"sent": 6, "pending": 0})
    assert json.loads(json.dumps(timeline, default=str))["order"]["status"] == "completed"
    await stack.poll()  # the panel no longer lists it as executing; nothing moves back
    assert (await stack.order(order_id))["status"] == "completed"


async def test_a_panel_down_for_the_whole_run_converges_once_back_and_a_resend_applies_once(
    stack, monkeypatch
):
    order_id = await placed_and_started(stack, "https://t.me/durov", quantity=2, accounts=2)
    stack.panel.down = True
    for _ in range(2):
        await stack.generate()
    for task in await stack.pull():
        await stack.report(task)
    for _ in range(3):
        report = await stack.flush()
        assert report.sent == 0 and report.failed >= 1
    assert stack.panel.updates == []

    stack.panel.down = False
    real_execute = stack.db.execute

    async def crash_after_the_first_send(name, params=None):
        if name == "mark_panel_update_sent":
            monkeypatch.setattr(stack.db, "execute", real_execute)
            raise RuntimeError("flusher killed between sending and marking")
        return await real_execute(name, params)

    monkeypatch.setattr(stack.db, "execute", crash_after_the_first_send)
    with pytest.raises(RuntimeError):
        await stack.flush()
    stack.sql(
        "UPDATE order_panel_updates SET claimed_until = now() - interval '1 second'"
    )  # its claim ran out
    await stack.flush()

    statuses = [(update["status"], update["remains"]) for update in stack.panel.updates_for(order_id)]
    assert statuses == [
        ("depends_ok", 2),
        ("awaiting", 2),
        ("in_progress", 2),
        ("in_progress", 1),
        ("completed", 0),
    ]
    keys = [update["key"] for update in stack.panel.updates]
    assert len(keys) == len(set(keys))
    patches = [request for request in stack.panel.requests if request["method"] == "PATCH"]
    assert len(patches) == 3 * 1 + 1 + 5  # three failed flushes (one head each), the crashed send, then five
    assert stack.sql("SELECT count(*) FROM order_panel_updates WHERE sent_at IS NULL") == [(0,)]


async def test_a_cancel_mid_way_withdraws_what_is_queued_and_refuses_nothing_done(stack, redis_client):
    order_id = await placed_and_started(stack, "https://t.me/durov", quantity=3, accounts=3)
    await stack.generate()
    [leased] = await stack.pull()
    await stack.generate()  # a second task, still queued
    stack.panel.cancel(order_id)

    await stack.poll()

    assert (await stack.order(order_id))["status"] == "canceled"
    assert await stack.pull() == []
    assert (await stack.generate())["generated"]["created"] == 0
    assert await stack.report(leased) == {"ok": True}
    assert await stack.report(leased) == {"ok": True}
    row = await stack.order(order_id)
    assert (row["status"], row["remains"]) == ("canceled", 2)
    assert stack.sql("SELECT status, count(*) FROM telegram_tasks GROUP BY status ORDER BY status") == [
        ("done", 1),
        ("failed", 1),
    ]


async def test_a_link_that_disappears_mid_order_ends_partial_with_the_reason_and_the_exact_remains(stack):
    order_id = await placed_and_started(stack, "https://t.me/vanishing", quantity=5, accounts=4)
    for _ in range(4):
        await stack.generate()
    first, *others = await stack.pull()
    await stack.report(first)
    for task in others:
        await stack.report(task, "failed", error="CHANNEL_PRIVATE: the channel is private now")
    assert (await stack.order(order_id))["next_run_at"] is None  # paused while the link is checked
    stack.inspector.answer("https://t.me/vanishing", missing())

    await stack.generate()  # sends the recheck to tg-inspect
    await stack.validate()
    await stack.flush()

    row = await stack.order(order_id)
    assert (row["status"], row["remains"]) == ("partial", 4)
    assert row["finish_reason"] == "link gone: no chat has this username"
    assert stack.panel.updates_for(order_id)[-1] | {"start_count": None} == {
        "status": "partial", "remains": 4, "reason": "link gone: no chat has this username", "start_count": None,
    }  # fmt: skip
    assert stack.inspector.calls == ["https://t.me/vanishing"] * 2


async def test_a_recheck_that_finds_the_link_lets_the_order_run_on(stack):
    order_id = await placed_and_started(stack, "https://t.me/flaky", quantity=5, accounts=3)
    for _ in range(3):
        await stack.generate()
    for task in await stack.pull():
        await stack.report(task, "failed", error="CHANNEL_INVALID")

    await stack.generate()
    await stack.validate()

    row = await stack.order(order_id)
    assert (row["status"], row["link_failures"]) == ("in_progress", 0) and row["next_run_at"] is not None


BAD_ANSWERS = {
    "html_500": (500, "<html><body>Internal Server Error</body></html>"),
    "html_200": (200, "<html><body>maintenance</body></html>"),
    "wrong_shape": (200, '{"orders": "none"}'),
    "not_an_object": (200, "[1, 2]"),
    "timeout": None,
}


def answer_badly(panel: FakePanel, name: str) -> None:
    if BAD_ANSWERS[name] is None:
        panel.stall_sec = 1.5  # the client gives up after 1 s
    else:
        panel.script(*BAD_ANSWERS[name])


@pytest.mark.parametrize("answer", list(BAD_ANSWERS))
async def test_bad_panel_answers_to_a_poll_never_crash_the_run(stack, caplog, answer):
    good = stack.panel.place_order("https://t.me/durov", status="in_progress")
    caplog.set_level(logging.WARNING, logger="tgops.orders.polling")
    answer_badly(stack.panel, answer)

    report = await stack.poll()

    assert report.panel_errors >= 1
    assert any(record.getMessage() == "panel poll failed" for record in caplog.records)
    stack.panel.stall_sec = 0
    await stack.poll()
    assert (await stack.order(good))["status"] == "in_progress"


@pytest.mark.parametrize("answer", ["html_500", "timeout", "not_found"])
async def test_bad_panel_answers_to_an_update_are_logged_with_the_order_id_and_retried(stack, caplog, answer):
    order_id = await placed_and_started(stack, "https://t.me/durov", quantity=1, accounts=1)
    caplog.set_level(logging.WARNING, logger="tgops.orders.panel_updates")
    if answer == "not_found":
        stack.panel.script(404, '{"error": "no such order"}')
    else:
        answer_badly(stack.panel, answer)

    report = await stack.flush()

    assert (report.sent, report.failed) == (0, 1)
    assert any(getattr(record, "order_id", None) == order_id for record in caplog.records)
    stack.panel.stall_sec = 0
    await stack.flush()
    assert [update["status"] for update in stack.panel.updates_for(order_id)] == ["depends_ok", "awaiting"]
