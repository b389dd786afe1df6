"""Per-service execution rules (TGOPS_ORDER_SERVICE_RULES): what a validated order does next, and the
log lines of issue 11 item 5 (a skipped or invalid order is logged once, not on every poll)."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.inspector import public_channel
from tgops.cache import keys
from tgops.config import ServiceRule, Settings
from tgops.messaging.sqs import Received
from tgops.messaging.topology import INSPECT
from tgops.orders.lifecycle import start_by_operator
from tgops.orders.validation import GroupValidator


async def stored(db, remote_order_id):
    return await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})


async def validate_all(settings, db, redis, queues, inspector) -> None:
    validator = GroupValidator(settings, db, redis, queues, inspector)
    for call in queues.to(INSPECT.name):
        await validator.handle(Received("sqs", "handle", call.body, receive_count=1))


def with_rules(settings: Settings, rules: dict[int, ServiceRule]) -> Settings:
    return settings.model_copy(update={"order_service_rules": rules})


async def test_without_rules_a_validated_order_starts_by_itself_subscribing_one_per_call(
    panel, poller, order_settings, db, redis, queues, inspector
):
    order_id = panel.place_order("t.me/alpha", quantity=10)
    await poller.poll()

    await validate_all(order_settings, db, redis, queues, inspector)

    row = await stored(db, order_id)
    assert (row["status"], row["per_call"], row["interval_seconds"], row["action"]) == (
        "awaiting",
        1,
        60,
        None,
    )
    assert row["start_count"] == 1200 and row["next_run_at"] is not None and row["started_at"] is not None
    [due] = await db.fetch_all("lock_due_orders", {"limit": 10})
    assert due["id"] == row["id"]


async def test_a_services_rule_sets_action_per_call_interval_and_start_count(
    panel, order_settings, db, redis, queues, http_panel, inspector
):
    from tgops.orders.polling import OrderPoller

    rule = ServiceRule(action="view", per_call=5, interval_seconds=30, start_count="panel")
    settings = with_rules(order_settings, {4: rule})
    order_id = panel.place_order("t.me/alpha/7", service_id=4, quantity=50)
    panel.orders[order_id]["start_count"] = 321
    await OrderPoller(settings, db, redis, queues, http_panel).poll()

    await validate_all(settings, db, redis, queues, inspector)

    row = await stored(db, order_id)
    assert (row["status"], row["action"], row["per_call"], row["interval_seconds"], row["start_count"]) == (
        "awaiting", "view", 5, 30, 321,
    )  # fmt: skip
    assert row["post_id"] == 7


async def test_an_order_of_a_service_that_does_not_start_by_itself_waits_for_the_panel_or_an_operator(
    panel, order_settings, db, redis, queues, http_panel, inspector
):
    from tgops.orders.polling import OrderPoller

    settings = with_rules(order_settings, {2: ServiceRule(auto_start=False)})
    by_panel = panel.place_order("t.me/alpha", service_id=2)
    by_operator = panel.place_order("t.me/beta", service_id=2)
    poller = OrderPoller(settings, db, redis, queues, http_panel)
    await poller.poll()
    await validate_all(settings, db, redis, queues, inspector)
    assert {(await stored(db, i))["status"] for i in (by_panel, by_operator)} == {"depends_ok"}

    panel.orders[by_panel]["status"] = "in_progress"
    await poller.poll()
    started = await start_by_operator(db, settings, (await stored(db, by_operator))["id"])

    assert started and (await stored(db, by_operator))["status"] == "awaiting"
    assert (await stored(db, by_panel))["status"] == "awaiting"
    assert not await start_by_operator(db, settings, (await stored(db, by_operator))["id"])  # only once


def test_a_bad_execution_rule_is_refused_at_start_up(monkeypatch):
    from tgops.config import SettingsError, get_settings

    monkeypatch.setenv("TGOPS_ORDER_SERVICE_RULES", '{"1": {"per_call": 0}}')
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="TGOPS_ORDER_SERVICE_RULES"):
        get_settings()
    get_settings.cache_clear()


async def test_an_order_skipped_by_the_dispatch_dedupe_is_logged_once_with_the_reason(
    panel, poller, redis, caplog
):
    panel.place_order("t.me/alpha")
    await poller.poll()  # dispatched; its claim is not taken yet (the job is still queued)
    caplog.set_level(logging.INFO, logger="tgops.orders.polling")

    for _ in range(3):
        await poller.poll()

    lines = [record for record in caplog.records if getattr(record, "reason", None) == "dispatched_recently"]
    assert len(lines) == 1 and "not dispatched" in lines[0].getMessage()
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha")))


async def test_an_order_with_an_invalid_link_is_logged_once_not_on_every_poll(panel, poller, caplog):
    order_id = panel.place_order("https://example.com/durov")
    caplog.set_level(logging.WARNING, logger="tgops.orders.polling")

    for _ in range(3):
        await poller.poll()

    lines = [record for record in caplog.records if "invalid link" in record.getMessage()]
    assert [getattr(record, "order_id", None) for record in lines] == [order_id]


async def test_the_inspection_sets_the_start_count_only_when_the_rule_says_so(
    panel, order_settings, db, redis, queues, http_panel, inspector
):
    from tgops.orders.polling import OrderPoller

    settings = with_rules(order_settings, {3: ServiceRule(start_count="zero")})
    inspector.answer("https://t.me/alpha", public_channel(participants_count=999))
    order_id = panel.place_order("t.me/alpha", service_id=3)
    await OrderPoller(settings, db, redis, queues, http_panel).poll()

    await validate_all(settings, db, redis, queues, inspector)

    assert (await stored(db, order_id))["start_count"] == 0
