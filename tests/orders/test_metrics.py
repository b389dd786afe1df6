"""The metrics a poll run and a validation emit (EMF on stdout)."""

from __future__ import annotations

import pytest

from tests.fakes.inspector import missing, public_channel, temporary
from tests.helpers.emf import emitted, enable_metrics, totals
from tests.orders.test_validation import LINK, add_order, received
from tgops.cache import keys
from tgops.cache.lock import TokenLock
from tgops.config import ServiceRule
from tgops.messaging.errors import RetryLater
from tgops.orders.messages import ValidateOrderGroup
from tgops.orders.validation import GroupValidator, judge


@pytest.fixture
def metrics_on(monkeypatch):
    enable_metrics(monkeypatch)


@pytest.fixture
def validator(order_settings, db, redis, queues, inspector) -> GroupValidator:
    return GroupValidator(order_settings, db, redis, queues, inspector)


def metric(name: str, value: float, **dimensions: str):
    return (name, frozenset(dimensions.items())), value


async def test_a_poll_run_emits_its_counts_and_the_skips_by_reason(metrics_on, panel, poller, capsys):
    panel.place_order("t.me/alpha")
    panel.place_order("https://t.me/Alpha")  # the same group: its job went out a moment ago
    panel.place_order("t.me/beta", remains=0)
    panel.place_order("t.me/gamma", status="in_progress")
    panel.place_order("https://example.com/not_telegram")

    await poller.poll()

    out = capsys.readouterr().out
    assert totals(out) == dict(
        [
            metric("PollRuns", 1),
            metric("OrdersFetched", 5),
            metric("OrdersStored", 5),
            metric("OrdersDispatched", 1),
            metric("OrdersMalformed", 0),
            metric("OrdersInvalidLink", 1),
            metric("PanelErrors", 0),
            metric("PollStatusesLocked", 0),
            metric("OrdersSkipped", 1, reason="dispatched_recently"),
            metric("OrdersSkipped", 1, reason="no_remains"),
            metric("OrdersSkipped", 1, reason="not_validating"),
        ]
    )
    assert {(m.namespace, m.dimensions["service"]) for m in emitted(out)} == {("tgops", "tgops-test")}


async def test_panel_errors_and_locked_statuses_are_counted(metrics_on, panel, poller, redis, capsys):
    panel.script(500, "oops")  # the "validating" request
    held = TokenLock(redis, keys.poll_lock("in_progress"), 60_000)
    assert await held.acquire()

    await poller.poll()

    counts = totals(capsys.readouterr().out)
    assert (counts[("PanelErrors", frozenset())], counts[("PollStatusesLocked", frozenset())]) == (1, 1)


async def test_a_poll_run_prints_nothing_when_metrics_are_off(monkeypatch, panel, poller, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    panel.place_order("t.me/alpha")

    await poller.poll()

    assert capsys.readouterr().out == ""


async def test_verdicts_are_counted_per_order_by_outcome_and_reason(
    metrics_on, validator, db, inspector, capsys
):
    other_link = "https://t.me/beta"
    for remote_id in (1, 2):
        await add_order(db, remote_id)
    await add_order(db, 3, link=other_link)
    inspector.answer(LINK, missing())

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))
    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=other_link)))

    assert totals(capsys.readouterr().out) == dict(
        [
            metric("OrderValidations", 2, outcome="depends_failed", reason="username_not_occupied"),
            metric("OrderValidations", 1, outcome="depends_ok"),
        ]
    )


@pytest.mark.parametrize(("receive_count", "outcome"), [(1, "retry"), (5, "gave_up")])
async def test_a_temporary_failure_is_counted_as_a_retry_or_as_giving_up(
    metrics_on, validator, db, inspector, capsys, receive_count, outcome
):
    await add_order(db, 1)
    inspector.answer(LINK, temporary())

    with pytest.raises(RetryLater):
        await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK), receive_count))

    assert totals(capsys.readouterr().out) == dict([metric("OrderValidations", 1, outcome=outcome)])


@pytest.mark.parametrize(
    ("result", "rule", "code"),
    [
        (public_channel(is_private=True), ServiceRule(visibility="public"), "private"),
        (public_channel(chat_type="supergroup"), ServiceRule(chat_types=["channel"]), "chat_type"),
        (public_channel(paid=True), ServiceRule(), "paid"),
        (missing(), ServiceRule(), "username_not_occupied"),
    ],
)
def test_a_failed_verdict_carries_a_short_code_for_the_reason_dimension(result, rule, code):
    assert judge(result, rule).code == code
