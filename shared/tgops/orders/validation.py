"""The tg-inspect consumer: inspect one order group's link once and give the group's orders a verdict.

Under the group lock (`socpanel:validate-group:{group}`) it claims the group's validating orders,
inspects the link (or reads the cached inspection, `tg:inspection:{group}`), and applies the
service's rule: `depends_ok`, or `depends_failed` with the reason. A temporary failure keeps the
orders claimed (so the poller sends no second job) and retries through the queue with the seed's
backoff (10, 30, 60, 120, 300 s).

Tries: the job has `inspect_max_tries` (5) but SQS redrives a message to the DLQ after
MAX_RECEIVE_COUNT (3) receives. So a job may continue in one more message: the first message takes
the tries that do not fit in whole threes (2 of 5), then re-sends itself once with `tries_before`
and the next backoff as its delay; the last message takes the final three tries, each retried by
RetryLater, and after the last one SQS moves it to the DLQ. The give-up reason is written to the
orders (`provider_last_error`) and logged with the SQS message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from tgops import metrics, switches
from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.cache.lock import TokenLock
from tgops.config import ServiceRule, Settings
from tgops.db.database import Database
from tgops.db.params import jsonb
from tgops.messaging.backend import QueueSender
from tgops.messaging.envelopes import decode_any, encode
from tgops.messaging.errors import RetryLater
from tgops.messaging.sqs import MAX_DELAY_SEC, Received
from tgops.messaging.topology import INSPECT, MAX_RECEIVE_COUNT
from tgops.orders import lifecycle, panel_updates
from tgops.orders.inspection_result import InspectionResult, LinkInspector
from tgops.orders.messages import RecheckOrderLink, ValidateOrderGroup
from tgops.orders.recheck import recheck
from tgops.runtime import Runtime
from tgops.telegram.links import parse_link

if TYPE_CHECKING:
    from tgops.telegram.pool import MtprotoPool

log = logging.getLogger(__name__)

VALIDATION_METRIC = "OrderValidations"  # orders, by outcome: depends_ok, depends_failed, retry, gave_up


@dataclass(frozen=True)
class Verdict:
    status: Literal["depends_ok", "depends_failed"]
    reason: str | None = None
    code: str | None = None  # the reason as a short fixed word, for metrics


def judge(result: InspectionResult, rule: ServiceRule) -> Verdict:
    """The verdict of a definite inspection under one service's rule.

    An answer that is not ok and not retryable (a t.me/c/ post: PRIVATE_POST_NOT_INSPECTABLE) is
    definite too: no retry can change it, so it fails the order with its reason.
    """
    if not result.exists:
        return Verdict(
            "depends_failed",
            result.reason or result.error_code or "the link leads nowhere",
            (result.error_code or "not_found").lower(),
        )
    if rule.link_kinds is not None and result.link_kind not in rule.link_kinds:
        return Verdict(
            "depends_failed",
            f"a {result.link_kind} link; this service takes {', '.join(rule.link_kinds)}",
            "link_kind",
        )
    if rule.chat_types is not None and result.chat_type not in rule.chat_types:
        return Verdict(
            "depends_failed",
            f"a {result.chat_type or 'unknown'} chat; this service takes {', '.join(rule.chat_types)}",
            "chat_type",
        )
    if rule.visibility == "public" and result.is_private:
        return Verdict("depends_failed", "the chat is private; this service needs a public one", "private")
    if rule.visibility == "private" and result.is_private is False:
        return Verdict("depends_failed", "the chat is public; this service needs a private one", "public")
    if result.paid and not rule.allow_paid:
        return Verdict("depends_failed", "the chat needs a paid subscription", "paid")
    if result.join_request and not rule.allow_join_request:
        return Verdict("depends_failed", "joining the chat needs an admin's approval", "join_request")
    is_bot = bool(result.is_bot) or result.chat_type == "bot"
    if rule.bot == "required" and not is_bot:
        return Verdict("depends_failed", "not a bot; this service needs a bot", "not_bot")
    if rule.bot == "forbidden" and is_bot:
        return Verdict("depends_failed", "a bot; this service does not take bots", "bot")
    return Verdict("depends_ok")


def tries_in_message(max_tries: int, tries_before: int) -> int:
    """Tries the message carrying `tries_before` takes, so that the job's last message takes whole threes."""
    return (max_tries - tries_before - 1) % MAX_RECEIVE_COUNT + 1


class GroupValidator:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: RedisClient,
        queues: QueueSender,
        inspector: LinkInspector,
    ) -> None:
        self._settings = settings
        self._db = db
        self._redis = redis
        self._queues = queues
        self._inspector = inspector

    async def handle(self, message: Received) -> None:
        job = decode_any(message.body, (ValidateOrderGroup, RecheckOrderLink))
        if isinstance(job, RecheckOrderLink):
            await recheck(self._settings, self._db, self._redis, self._inspector, job, message)
            return
        group = keys.group_key(job.remote_service_id, job.link)
        lock = TokenLock(
            self._redis, keys.validate_group(group), self._settings.validate_group_lock_sec * 1000
        )
        async with lock.held() as acquired:
            if not acquired:
                log.info(
                    "group %s is being validated by another job; this one ends", group, extra={"group": group}
                )
                return
            claimed: list[int] = []
            heartbeat = asyncio.create_task(self._heartbeat(lock, claimed))
            try:
                await self._validate(job, group, message, claimed)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _heartbeat(self, lock: TokenLock, claimed: list[int]) -> None:
        """While the job runs (up to its 180 s), keep the group lock and the orders' claim alive."""
        settings = self._settings
        period_sec = min(settings.validate_group_lock_sec, settings.validation_claim_stale_sec) / 3
        while True:
            await asyncio.sleep(period_sec)
            try:
                if not await lock.extend(lock.ttl_ms):
                    log.warning("validation group lock %s was lost while the job ran", lock.key)
                if claimed:
                    params = {"ids": list(claimed), "claim_sec": settings.validation_claim_stale_sec}
                    await self._db.execute("renew_validation_claim", params)
            except Exception:  # a missed beat is retried on the next one; the job itself goes on
                log.warning("validation heartbeat failed", exc_info=True)

    async def _validate(
        self, job: ValidateOrderGroup, group: str, message: Received, claimed: list[int]
    ) -> None:
        ids = await self._claim(job)
        if not ids:
            return
        claimed[:] = ids
        attempt = job.tries_before + message.receive_count
        if attempt > self._settings.inspect_max_tries:
            # Delivered again after the job's last try (a crash in between): give up without inspecting.
            raise await self._give_up(job, ids, "no tries left", message)
        result = await self._inspection(job, group)
        if not result.ok and result.retryable:
            await self._retry(job, ids, attempt, message, f"{result.error_code}: {result.reason}")
            return
        rule = lifecycle.rule_for(self._settings, job.remote_service_id)
        verdict = judge(result, rule)
        while ids:
            await self._finish(job, ids, result, verdict, rule)
            log.info(
                "orders %s: %s%s", ids, verdict.status, f" ({verdict.reason})" if verdict.reason else "",
                extra={"order_ids": ids, "status": verdict.status, "reason": verdict.reason, "group": group},
            )  # fmt: skip
            reason = {"reason": verdict.code} if verdict.code else {}
            metrics.count(VALIDATION_METRIC, len(ids), outcome=verdict.status, **reason)
            ids = await self._claim(job)  # the rest of the group beyond one claim batch
            claimed[:] = ids

    async def _finish(
        self, job: ValidateOrderGroup, ids: list[int], result: InspectionResult, verdict: Verdict, rule
    ) -> None:
        """The verdict, the panel's news of it, and the start of an order whose service starts by itself."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                "finish_validation",
                {
                    "ids": ids,
                    "status": verdict.status,
                    "error": verdict.reason,
                    "validation_result": jsonb(result.model_dump() | {"verdict_reason": verdict.reason}),
                },
            )
            finished = [row["id"] for row in rows]
            await panel_updates.record(tx, finished, "verdict")
            if verdict.status == "depends_ok" and rule.auto_start:
                await lifecycle.start(tx, self._settings, job.remote_service_id, finished)

    async def _claim(self, job: ValidateOrderGroup) -> list[int]:
        rows = await self._db.fetch_all(
            "claim_validation_group",
            {
                "remote_service_id": job.remote_service_id,
                "link": job.link,
                "limit": self._settings.validation_claim_batch,
                "claim_sec": self._settings.validation_claim_stale_sec,
            },
        )
        return [row["id"] for row in rows]

    async def _inspection(self, job: ValidateOrderGroup, group: str) -> InspectionResult:
        cache_key = keys.inspection(group)
        cached = await self._redis.get(cache_key)
        if cached is not None:
            try:
                return InspectionResult.model_validate_json(cached)
            except ValidationError:
                log.warning("unreadable cached inspection for group %s; inspecting again", group)
        try:
            result = await self._inspector.inspect(job.link)
        except Exception as error:  # an inspector fault is one more temporary failure, with the same backoff
            log.exception("inspector failed on %s", job.link, extra={"group": group})
            result = InspectionResult.temporary(
                parse_link(job.link).kind, "INSPECTOR_ERROR", f"{type(error).__name__}: {error}"
            )
        if result.ok and self._settings.inspection_cache_ttl_sec > 0:
            await self._redis.set(
                cache_key, result.model_dump_json(), ex=self._settings.inspection_cache_ttl_sec
            )
        return result

    async def _retry(
        self, job: ValidateOrderGroup, ids: list[int], attempt: int, message: Received, reason: str
    ) -> None:
        if attempt >= self._settings.inspect_max_tries:
            raise await self._give_up(job, ids, reason, message)
        backoff = self._settings.inspect_backoff_sec
        delay = min(backoff[min(attempt, len(backoff)) - 1], MAX_DELAY_SEC)
        claim_sec = delay + self._settings.validation_claim_stale_sec  # held while the job waits
        await self._db.execute(
            "record_validation_retry", {"ids": ids, "error": reason, "claim_sec": claim_sec}
        )
        metrics.count(VALIDATION_METRIC, len(ids), outcome="retry")
        log.info(
            "validation of orders %s failed try %d/%d (%s); next try in %ds",
            ids, attempt, self._settings.inspect_max_tries, reason, delay,
            extra={"order_ids": ids, "attempt": attempt, "reason": reason, "delay_sec": delay},
        )  # fmt: skip
        if message.receive_count >= tries_in_message(self._settings.inspect_max_tries, job.tries_before):
            continuation = job.model_copy(update={"tries_before": attempt})
            await self._queues.send(INSPECT.name, encode(continuation), delay_sec=delay)
            return  # this message is deleted; the continuation carries the job's remaining tries
        raise RetryLater(delay, reason)

    async def _give_up(
        self, job: ValidateOrderGroup, ids: list[int], reason: str, message: Received
    ) -> RetryLater:
        """Release the orders with the reason; the RetryLater returned sends the message on to its DLQ."""
        await self._db.execute(
            "release_validation_claim", {"ids": ids, "error": f"validation gave up: {reason}"}
        )
        log.error(
            "validation of orders %s gave up after %d tries: %s",
            ids,
            self._settings.inspect_max_tries,
            reason,
            extra={"order_ids": ids, "reason": reason, "sqs_message_id": message.message_id},
        )
        metrics.count(VALIDATION_METRIC, len(ids), outcome="gave_up")
        # Visible again at once: its next receive is past SQS's maxReceiveCount, which moves it to the DLQ.
        return RetryLater(0, f"validation gave up: {reason}")


async def handle(runtime: Runtime, message: Received, *, inspector: LinkInspector | None = None) -> None:
    """The tg-inspect queue handler (tgops.handlers); the Fargate worker passes its own inspector."""
    if await switches.held_while_paused(runtime, switches.PAUSE_INSPECTION, INSPECT.name, message):
        return
    validator = GroupValidator(
        runtime.settings,
        await runtime.database(),
        runtime.redis(),
        runtime.queues(),
        inspector or await shared_inspector(runtime),
    )
    await validator.handle(message)


_SHARED_INSPECTORS: dict[int, tuple[Runtime, LinkInspector, MtprotoPool]] = {}


async def shared_inspector(runtime: Runtime) -> LinkInspector:
    """One inspector (one MTProto pool) per Runtime, for a caller that has none to pass (`tgops dev`)."""
    db = await runtime.database()
    entry = _SHARED_INSPECTORS.get(id(runtime))
    if entry is None:  # no await between the check and the insert: one pool even under concurrent jobs
        from tgops.orders.link_inspector import create_inspector

        inspector, pool = create_inspector(runtime.settings, db=db, redis=runtime.redis())
        # The Runtime is kept, so its id stays unique.
        entry = _SHARED_INSPECTORS[id(runtime)] = (runtime, inspector, pool)
    return entry[1]


async def close_shared_inspector(runtime: Runtime) -> None:
    """Disconnect the shared pool's clients and release its account locks, so the next run can use them."""
    entry = _SHARED_INSPECTORS.pop(id(runtime), None)
    if entry is not None:
        await entry[2].close()
