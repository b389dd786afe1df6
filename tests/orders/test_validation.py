from __future__ import annotations

import pytest

from tests.fakes.inspector import missing, public_channel, temporary
from tgops.cache import keys
from tgops.cache.lock import TokenLock
from tgops.config import ServiceRule
from tgops.messaging.envelopes import encode
from tgops.messaging.errors import InvalidMessage, RetryLater
from tgops.messaging.sqs import Received
from tgops.messaging.topology import INSPECT
from tgops.orders.inspection_result import InspectionResult
from tgops.orders.messages import ValidateOrderGroup
from tgops.orders.validation import GroupValidator, judge, tries_in_message

LINK = "https://t.me/alpha"


async def add_order(db, remote_order_id, *, service_id=1, link=LINK, remains=10, status="validating"):
    await db.fetch_one(
        "upsert_provider_order",
        {"remote_order_id": remote_order_id, "remote_service_id": service_id, "raw_link": link, "link": link,
         "quantity": 10, "remains": remains, "start_count": 0, "status": status, "error": None,
         "validation_result": None, "post_id": None, "recent_error_sec": 30},
    )  # fmt: skip


async def order(db, remote_order_id):
    return await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})


def received(job: ValidateOrderGroup, receive_count: int = 1) -> Received:
    return Received(
        message_id="sqs-1", receipt_handle="handle", body=encode(job), receive_count=receive_count
    )


@pytest.fixture
def validator(order_settings, db, redis, queues, inspector) -> GroupValidator:
    return GroupValidator(order_settings, db, redis, queues, inspector)


def with_rules(settings, rules):
    return settings.model_copy(update={"order_service_rules": rules})


@pytest.mark.parametrize(
    ("result", "rule", "expected"),
    [
        (public_channel(), ServiceRule(), None),
        (missing(), ServiceRule(), "no chat has this username"),
        (
            public_channel(link_kind="post"),
            ServiceRule(link_kinds=["public"]),
            "a post link; this service takes public",
        ),
        (public_channel(chat_type="supergroup"), ServiceRule(chat_types=["channel"]), "a supergroup chat"),
        (public_channel(is_private=True), ServiceRule(visibility="public"), "the chat is private"),
        (public_channel(), ServiceRule(visibility="private"), "the chat is public"),
        (public_channel(is_private=True, link_kind="invite"), ServiceRule(visibility="private"), None),
        (public_channel(paid=True), ServiceRule(), "paid subscription"),
        (public_channel(paid=True), ServiceRule(allow_paid=True), None),
        (public_channel(join_request=True), ServiceRule(allow_join_request=False), "admin's approval"),
        (public_channel(), ServiceRule(bot="required"), "not a bot"),
        (public_channel(chat_type="bot", is_bot=True, link_kind="bot"), ServiceRule(bot="required"), None),
        (
            public_channel(chat_type="bot", is_bot=True, link_kind="bot"),
            ServiceRule(bot="forbidden"),
            "a bot;",
        ),
    ],
)
def test_rules(result, rule, expected):
    verdict = judge(result, rule)
    if expected is None:
        assert (verdict.status, verdict.reason) == ("depends_ok", None)
    else:
        assert verdict.status == "depends_failed" and expected in verdict.reason


def test_the_last_message_of_a_job_takes_whole_threes():
    assert [tries_in_message(5, before) for before in (0, 2)] == [2, 3]
    assert tries_in_message(3, 0) == 3 and tries_in_message(7, 0) == 1 and tries_in_message(7, 1) == 3


async def test_a_good_link_validates_and_starts_every_order_of_the_group(
    order_settings, db, redis, queues, inspector
):
    for remote_id in range(1, 6):
        await add_order(db, remote_id)
    await add_order(db, 6, service_id=2)  # another group
    await add_order(db, 7, remains=0)  # nothing left to deliver: not claimed
    validator = GroupValidator(
        order_settings.model_copy(update={"validation_claim_batch": 2}), db, redis, queues, inspector
    )

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))

    for remote_id in range(1, 6):
        row = await order(db, remote_id)
        assert (row["status"], row["provider_sending_at"], row["provider_last_error"]) == (
            "awaiting",
            None,
            None,
        )
        assert row["validation_result"]["title"] == "A channel" and row["validated_at"] is not None
    assert (await order(db, 6))["status"] == "validating"
    assert (await order(db, 7))["status"] == "validating"
    assert inspector.calls == [LINK]


async def test_a_missing_chat_fails_the_orders_with_the_reason(validator, db, inspector):
    await add_order(db, 1)
    inspector.answer(LINK, missing())

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))

    row = await order(db, 1)
    assert (row["status"], row["provider_last_error"]) == ("depends_failed", "no chat has this username")
    assert row["validation_result"]["error_code"] == "USERNAME_NOT_OCCUPIED"


async def test_the_rule_of_the_orders_service_applies(order_settings, db, redis, queues, inspector):
    await add_order(db, 1, service_id=9)
    await add_order(db, 2, service_id=10)
    settings = with_rules(order_settings, {9: ServiceRule(visibility="private")})
    validator = GroupValidator(settings, db, redis, queues, inspector)

    await validator.handle(received(ValidateOrderGroup(remote_service_id=9, link=LINK)))
    await validator.handle(received(ValidateOrderGroup(remote_service_id=10, link=LINK)))

    assert (await order(db, 1))[
        "provider_last_error"
    ] == "the chat is public; this service needs a private one"
    assert (await order(db, 2))["status"] == "awaiting"


async def test_a_definite_inspection_is_cached_for_the_group(validator, db, redis, inspector, order_settings):
    await add_order(db, 1)
    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))
    await add_order(db, 2)  # arrives later in the same group

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))

    assert inspector.calls == [LINK]
    assert (await order(db, 2))["status"] == "awaiting"
    cache_key = keys.inspection(keys.group_key(1, LINK))
    assert InspectionResult.model_validate_json(await redis.get(cache_key)).title == "A channel"
    assert 0 < await redis.pttl(cache_key) <= order_settings.inspection_cache_ttl_sec * 1000


async def test_a_temporary_answer_is_not_cached(validator, db, redis, inspector):
    await add_order(db, 1)
    inspector.answer(LINK, temporary(), public_channel())

    with pytest.raises(RetryLater):
        await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))
    assert await redis.get(keys.inspection(keys.group_key(1, LINK))) is None

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK), receive_count=2))
    assert (await order(db, 1))["status"] == "awaiting"
    assert len(inspector.calls) == 2


async def test_a_group_locked_by_another_job_is_left_alone(validator, db, redis, inspector):
    await add_order(db, 1)
    held = TokenLock(redis, keys.validate_group(keys.group_key(1, LINK)), 60_000)
    assert await held.acquire()

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))

    assert inspector.calls == []
    row = await order(db, 1)
    assert (row["status"], row["provider_sending_at"]) == ("validating", None)


async def test_temporary_failures_back_off_then_the_last_try_goes_to_the_dlq(
    validator, db, queues, inspector
):
    await add_order(db, 1)
    inspector.default = temporary()
    first = ValidateOrderGroup(remote_service_id=1, link=LINK)

    with pytest.raises(RetryLater) as retry:
        await validator.handle(received(first, 1))
    assert retry.value.delay_sec == 10
    row = await order(db, 1)
    assert row["provider_sending_at"] is not None  # still claimed: the poller sends no second job
    assert row["provider_last_error"] == "NO_AVAILABLE_ACCOUNTS: all_attempts_exhausted"

    await validator.handle(received(first, 2))  # first message's share is used: the job continues
    [continuation_call] = queues.to(INSPECT.name)
    continuation = ValidateOrderGroup.model_validate_json(continuation_call.body)
    assert (continuation.tries_before, continuation_call.delay_sec) == (2, 30)
    assert continuation.message_id == first.message_id

    delays = []
    for receive_count in (1, 2, 3):
        with pytest.raises(RetryLater) as retry:
            await validator.handle(received(continuation, receive_count))
        delays.append(retry.value.delay_sec)
    assert delays == [60, 120, 0]
    assert "gave up" in retry.value.reason
    assert len(inspector.calls) == 5 and len(queues.calls) == 1
    row = await order(db, 1)
    assert (row["status"], row["provider_sending_at"]) == ("validating", None)
    assert row["provider_last_error"].startswith("validation gave up: NO_AVAILABLE_ACCOUNTS")
    assert row["provider_last_error_at"] is not None


async def test_a_message_delivered_after_its_last_try_gives_up_without_inspecting(validator, db, inspector):
    await add_order(db, 1)
    job = ValidateOrderGroup(remote_service_id=1, link=LINK, tries_before=3)

    with pytest.raises(RetryLater, match="no tries left"):
        await validator.handle(received(job, 3))

    assert inspector.calls == []
    assert (await order(db, 1))["provider_sending_at"] is None


async def test_an_inspector_fault_is_retried_like_a_temporary_failure(validator, db, inspector):
    await add_order(db, 1)
    inspector.answer(LINK, ConnectionResetError("socket closed"))

    with pytest.raises(RetryLater) as retry:
        await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))

    assert retry.value.delay_sec == 10
    assert (await order(db, 1))[
        "provider_last_error"
    ] == "INSPECTOR_ERROR: ConnectionResetError: socket closed"


async def test_a_group_with_nothing_to_validate_ends_quietly(validator, db, inspector):
    await add_order(db, 1, status="depends_ok")

    await validator.handle(received(ValidateOrderGroup(remote_service_id=1, link=LINK)))

    assert inspector.calls == []


async def test_a_body_that_is_not_a_job_is_refused(validator):
    with pytest.raises(InvalidMessage):
        await validator.handle(
            Received(message_id="m", receipt_handle="h", body='{"kind": "other"}', receive_count=1)
        )


def test_service_rules_come_from_the_environment_as_json(monkeypatch):
    from tgops.config import Settings

    monkeypatch.setenv(
        "TGOPS_ORDER_SERVICE_RULES", '{"12": {"link_kinds": ["public", "post"], "visibility": "public"}}'
    )
    rules = Settings().order_service_rules

    assert rules == {12: ServiceRule(link_kinds=["public", "post"], visibility="public")}
    monkeypatch.setenv("TGOPS_ORDER_SERVICE_RULES", '{"12": {"visibility": "secret"}}')
    with pytest.raises(ValueError, match="visibility"):
        Settings()
