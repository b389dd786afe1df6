from __future__ import annotations

import json
import logging

import psycopg
import pytest

from tgops.cache import keys
from tgops.cache.lock import TokenLock
from tgops.messaging.topology import INSPECT
from tgops.orders.messages import ValidateOrderGroup
from tgops.orders.polling import OrderPoller


async def stored(db, remote_order_id):
    return await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})


def age_columns(database_url: str, remote_order_id: int, **intervals: str) -> None:
    """Set timestamp columns to now() minus an interval, e.g. provider_sending_at="10 seconds"."""
    assignments = ", ".join(f"{column} = now() - interval '{ago}'" for column, ago in intervals.items())
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            f"UPDATE provider_orders SET {assignments} WHERE remote_order_id = %s", (remote_order_id,)
        )


def jobs(queues) -> list[ValidateOrderGroup]:
    return [ValidateOrderGroup.model_validate_json(call.body) for call in queues.to(INSPECT.name)]


async def test_a_new_order_is_stored_normalized_and_dispatched(panel, poller, queues, db):
    order_id = panel.place_order("HTTPS://telegram.me/Durov/", service_id=3, quantity=40)

    report = await poller.poll()

    row = await stored(db, order_id)
    assert (row["link"], row["raw_link"], row["status"], row["remains"]) == (
        "https://t.me/durov", "HTTPS://telegram.me/Durov/", "validating", 40
    )  # fmt: skip
    assert [(job.remote_service_id, job.link, job.tries_before) for job in jobs(queues)] == [
        (3, "https://t.me/durov", 0)
    ]
    assert 0 <= queues.to(INSPECT.name)[0].delay_sec <= 50
    assert report.dispatched == 1


async def test_ten_polls_in_a_row_dispatch_one_job_per_group(panel, poller, queues, redis):
    panel.place_order("t.me/alpha", service_id=1)
    panel.place_order("https://t.me/Alpha", service_id=1)  # same group once normalized
    panel.place_order("t.me/alpha", service_id=2)  # another service: another group
    panel.place_order("t.me/beta", service_id=1)

    for _ in range(10):
        await poller.poll()

    assert sorted((job.remote_service_id, job.link) for job in jobs(queues)) == [
        (1, "https://t.me/alpha"), (1, "https://t.me/beta"), (2, "https://t.me/alpha")
    ]  # fmt: skip
    ttl_ms = await redis.pttl(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha")))
    assert 0 < ttl_ms <= 90_000


async def test_a_group_is_dispatched_again_once_its_dedupe_window_ends(panel, poller, queues, redis):
    panel.place_order("t.me/alpha", service_id=1)
    await poller.poll()
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha")))  # the 90 s are over

    await poller.poll()

    assert len(jobs(queues)) == 2


@pytest.mark.parametrize(
    ("placed", "aged", "expected_skip"),
    [
        ({"remains": 0}, {}, "no_remains"),
        ({"remains": -5}, {}, "no_remains"),
        ({"status": "in_progress"}, {}, "not_validating"),
        ({}, {"validation_claimed_until": "-10 seconds"}, "being_sent"),  # a live claim: 10 s to go
        ({}, {"provider_last_error_at": "5 seconds"}, "failed_recently"),
    ],
)
async def test_skip_rules(panel, poller, queues, redis, database_url, placed, aged, expected_skip):
    order_id = panel.place_order("t.me/alpha", **placed)
    await poller.poll()  # stores it (and dispatches when the order allowed it)
    if aged:
        age_columns(database_url, order_id, **aged)
    queues.calls.clear()
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha")))

    report = await poller.poll()

    assert jobs(queues) == []
    assert report.skipped[expected_skip] == 1


@pytest.mark.parametrize(
    "aged",
    [{"provider_last_error_at": "31 seconds"}, {"validation_claimed_until": "1 second"}],
    ids=["old_error", "stale_claim"],
)
async def test_an_old_error_or_a_stale_claim_no_longer_blocks_dispatch(
    panel, poller, queues, redis, database_url, aged
):
    order_id = panel.place_order("t.me/alpha")
    await poller.poll()
    age_columns(database_url, order_id, **aged)
    queues.calls.clear()
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha")))

    await poller.poll()

    assert len(jobs(queues)) == 1


async def test_a_run_dispatches_at_most_its_cap_and_still_stores_every_order(
    panel, order_settings, db, redis, queues, http_panel
):
    for index in range(12):
        panel.place_order(f"t.me/channel_{index:03d}")
    poller = OrderPoller(
        order_settings.model_copy(update={"max_validate_dispatch_per_run": 5}), db, redis, queues, http_panel
    )

    report = await poller.poll()

    assert len(jobs(queues)) == 5
    assert report.stored == 12
    assert report.skipped["run_cap_reached"] == 7
    second = await poller.poll()  # the rest go out on the next run
    assert len(jobs(queues)) == 10 and second.dispatched == 5


async def test_a_poll_already_running_for_a_status_is_skipped(panel, poller, queues, redis):
    panel.place_order("t.me/alpha")
    held = TokenLock(redis, keys.poll_lock("validating"), 60_000)
    assert await held.acquire()

    report = await poller.poll()

    assert report.locked_statuses == ["validating"]
    assert jobs(queues) == []
    assert await redis.get(keys.poll_lock("validating")) == held.token  # not released by the poller


async def test_a_failed_send_leaves_no_dedupe_key_so_the_next_poll_retries(panel, poller, queues, redis):
    panel.place_order("t.me/alpha")
    queues.failures_left = 1

    report = await poller.poll()

    assert report.skipped["send_failed"] == 1
    assert await redis.get(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha"))) is None
    await poller.poll()
    assert len(jobs(queues)) == 1


async def test_an_invalid_link_fails_the_order_with_its_reason_and_is_logged(
    panel, poller, queues, db, caplog
):
    order_id = panel.place_order("https://example.com/durov")
    caplog.set_level(logging.WARNING, logger="tgops.orders.polling")

    report = await poller.poll()

    row = await stored(db, order_id)
    assert row["status"] == "depends_failed"
    assert row["provider_last_error"] == "invalid link: not a Telegram host: example.com"
    assert row["validation_result"]["link_kind"] == "invalid"
    assert jobs(queues) == [] and report.invalid_links == 1
    assert any(getattr(record, "order_id", None) == order_id and str(order_id) in record.getMessage()
               for record in caplog.records)  # fmt: skip


async def test_a_link_with_a_nul_byte_is_stored_as_invalid(panel, poller, db):
    order_id = panel.place_order("t.me/du\x00rov")

    await poller.poll()

    assert (await stored(db, order_id))["status"] == "depends_failed"


async def test_malformed_orders_are_logged_with_their_id_and_the_rest_is_stored(
    panel, poller, queues, db, caplog
):
    good = panel.place_order("t.me/alpha")
    panel.add_raw_order(
        {"id": 555, "service_id": 1, "link": None, "quantity": 1, "remains": 1, "status": "validating"}
    )
    panel.add_raw_order(
        {
            "id": 556,
            "service_id": 1,
            "link": "t.me/x",
            "quantity": "many",
            "remains": 1,
            "status": "validating",
        }
    )
    panel.add_raw_order(["not", "an", "order"])  # answered to both polled statuses
    caplog.set_level(logging.WARNING, logger="tgops.orders.polling")

    report = await poller.poll()

    assert report.malformed == 4
    assert (await stored(db, good))["status"] == "validating" and len(jobs(queues)) == 1
    logged_ids = {getattr(record, "order_id", None) for record in caplog.records}
    assert {"555", "556"} <= logged_ids
    assert await stored(db, 555) is None


@pytest.mark.parametrize(
    "answer", [(500, "oops"), (200, "not json"), (200, '{"orders": {"a": 1}}'), (200, "null")]
)
async def test_a_malformed_panel_answer_ends_that_request_not_the_run(panel, poller, queues, caplog, answer):
    panel.place_order("t.me/alpha")
    panel.place_order("t.me/beta", status="in_progress")
    panel.script(*answer)  # the "validating" request gets it; "in_progress" still runs
    caplog.set_level(logging.WARNING, logger="tgops.orders.polling")

    report = await poller.poll()

    assert report.panel_errors == 1 and report.stored == 1
    assert any(record.getMessage() == "panel poll failed" for record in caplog.records)


async def test_the_panels_validating_never_overwrites_our_verdict(panel, poller, db, database_url):
    order_id = panel.place_order("t.me/alpha", quantity=10)
    await poller.poll()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE provider_orders SET status = 'depends_ok' WHERE remote_order_id = %s", (order_id,)
        )
    panel.orders[order_id]["remains"] = 8

    await poller.poll()

    row = await stored(db, order_id)
    assert (row["status"], row["remains"]) == ("depends_ok", 8)
    panel.orders[order_id]["status"] = "in_progress"  # the panel starts a validated order
    await poller.poll()
    row = await stored(db, order_id)
    assert (row["status"], row["remains"]) == ("awaiting", 8) and row["next_run_at"] is not None


async def test_poll_orders_schedule_runs_from_the_runtime(panel, order_settings, queues, db, monkeypatch):
    from tgops.orders import polling
    from tgops.runtime import Runtime

    runtime = Runtime(order_settings)
    monkeypatch.setattr(runtime, "queues", lambda: queues)
    panel.place_order("t.me/alpha")
    try:
        await polling.run(runtime)
    finally:
        await runtime.close()

    assert [job.link for job in jobs(queues)] == ["https://t.me/alpha"]
    assert json.loads(queues.calls[0].body)["kind"] == "validate_order_group"
