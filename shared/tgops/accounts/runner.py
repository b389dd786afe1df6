"""Runs one setup task (a tg-setup-fast or tg-setup-media message) on its account, through the pool.

Eligibility and claim are one statement (open, due, account active, enabled, not a probe); an account
still cooling down gets the task back for when its rest ends, without a call. Media are fetched before
the account is taken. Then `MtprotoPool.call_on` runs the executor on exactly that account (its lock,
its proxy's throttle, its claim, the deadline, the failure policy), and the answer decides:

- done / the executor's own retry or failure (story limits, missing configuration);
- FLOOD_WAIT (any flood) or PEER_FLOOD: the pool cooled the account down; the task retries when it ends;
- the account is unavailable (cooling down, owned elsewhere): retry when it may be, not an attempt;
  a task waiting for its account while another task of it got a FLOOD_WAIT learns so from the pool
  without a call. A retry for the account's cooldown is due the moment Postgres ends it;
- an account-fatal auth error: the pool disabled the account; the task fails with the reason;
- anything else: retry after setup_backoff_sec[attempt] (60, 300, 900, 3600 s), then fail with the reason.

The queue message is always completed: retries go through retry_at and the dispatcher, never SQS redelivery.
The 2FA password comes from the task payload or TGOPS_SETUP_2FA_PASSWORD; it is never logged.
Worker-side only (imports Telethon).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from tgops.accounts.executors import TaskContext, TaskOutcome, execute
from tgops.accounts.media import MediaStore, MediaUnavailable
from tgops.accounts.setup_tasks import RunSetupTask
from tgops.config import Settings
from tgops.db.database import Database, Row
from tgops.db.params import jsonb
from tgops.messaging.envelopes import decode
from tgops.messaging.sqs import Received
from tgops.runtime import Runtime
from tgops.telegram.peers import PoolResult
from tgops.telegram.pool import MtprotoPool

log = logging.getLogger(__name__)

ACCOUNT_UNAVAILABLE = "ACCOUNT_UNAVAILABLE"
THROTTLE_SLOT_UNAVAILABLE = "MTPROTO_THROTTLE_SLOT_UNAVAILABLE"
MEDIA_TASKS = {
    "set_photo_jpg": ("setup_photo_jpg", "image"),
    "set_photo_animated": ("setup_photo_animated", "video"),
    "story_image": ("setup_story_image", "image"),
    "story_video": ("setup_story_video", "video"),
}


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # done, retry, failed
    retry_in_sec: int | None = None
    error_code: str | None = None
    reason: str | None = None
    counts_as_attempt: bool = False
    result: dict[str, Any] | None = None
    at_cooldown_end: bool = False  # retry when the account's cooldown ends (retry_in_sec: the fallback)


class SetupRunner:
    def __init__(self, settings: Settings, db: Database, pool: MtprotoPool, media: MediaStore) -> None:
        self._settings = settings
        self._db = db
        self._pool = pool
        self._media = media

    async def run(self, task_id: int) -> str:
        """Run the task if it is eligible; return its new status ("skipped" when it was not eligible)."""
        row = await self._db.fetch_one(
            "setup_start_task", {"id": task_id, "stale_sec": self._settings.setup_enqueue_stale_sec}
        )
        if row is None:
            await self._db.execute("setup_release_task", {"id": task_id})
            log.info("setup task %s not eligible now (finished, not due, or its account unusable)", task_id)
            return "skipped"
        decision = await self._attempt(row)
        await self._finish(row, decision)
        log.info(
            "setup task %s (%s, account %s): %s%s",
            task_id, row["task_type"], row["account_id"], decision.status,
            f" {decision.error_code}, again in {decision.retry_in_sec}s" if decision.status == "retry"
            else f" {decision.error_code}" if decision.error_code else "",
        )  # fmt: skip
        return decision.status

    async def _attempt(self, row: Row) -> Decision:
        if row["cooldown_left_sec"] > 0:
            return Decision(
                "retry",
                row["cooldown_left_sec"],
                ACCOUNT_UNAVAILABLE,
                "account cooling down",
                at_cooldown_end=True,
            )
        try:
            context = await self._context(row)
        except MediaUnavailable as error:
            return Decision("failed", error_code="MEDIA_UNAVAILABLE", reason=str(error))
        result = await self._pool.call_on(
            row["account_id"], partial(execute, context), rid=f"setup-{row['id']}"
        )
        return self._decide(result, row["attempts"])

    async def _context(self, row: Row) -> TaskContext:
        settings, payload = self._settings, row["payload_json"] or {}
        task_type = row["task_type"]
        password = payload.get("password") or (
            settings.setup_2fa_password.get_secret_value() if settings.setup_2fa_password else None
        )
        media = None
        if task_type in MEDIA_TASKS:
            setting, kind = MEDIA_TASKS[task_type]
            name = payload.get("media") or getattr(settings, setting)
            media = await (self._media.video(name) if kind == "video" else self._media.image(name))
        return TaskContext(
            task_type=task_type,
            task_id=row["id"],
            recorded=row["result_json"] or {},
            first_name=payload.get("first_name") or settings.setup_first_name,
            last_name=payload.get("last_name", settings.setup_last_name),
            enable_2fa=settings.setup_2fa_enable,
            password=password,
            hint=payload.get("hint", settings.setup_2fa_hint),
            media=media,
            story_limit_retry_sec=settings.setup_story_limit_retry_sec,
        )

    def _decide(self, result: PoolResult[TaskOutcome], attempts: int) -> Decision:
        if result.ok:
            outcome = result.value
            return Decision(
                outcome.status,
                outcome.retry_in_sec,
                outcome.error_code,
                outcome.reason,
                result=outcome.result,
            )
        code = result.error_code or "UNKNOWN"
        if result.account_disabled:
            return Decision("failed", error_code=code, reason=f"account disabled ({result.reason or code})")
        if code == ACCOUNT_UNAVAILABLE:
            return Decision(
                "retry",
                result.cooldown_sec or self._settings.setup_backoff_sec[0],
                code,
                result.reason,
                at_cooldown_end=result.reason == "account_cooldown",
            )
        if "FLOOD" in code and result.cooldown_sec:
            return Decision(
                "retry",
                result.cooldown_sec,
                code,
                "account cooling down after Telegram's flood limit",
                at_cooldown_end=True,
            )
        if code == THROTTLE_SLOT_UNAVAILABLE:
            return Decision("retry", self._settings.setup_backoff_sec[0], code, result.reason)
        backoff = self._settings.setup_backoff_sec
        if attempts < len(backoff):
            return Decision("retry", backoff[attempts], code, result.reason or code, counts_as_attempt=True)
        return Decision(
            "failed", error_code=code, reason=f"gave up after {attempts + 1} attempts: {result.reason or code}",
            counts_as_attempt=True,
        )  # fmt: skip

    async def _finish(self, row: Row, decision: Decision) -> None:
        if decision.at_cooldown_end:
            await self._db.execute(
                "setup_retry_at_cooldown_end",
                {
                    "id": row["id"],
                    "retry_in_sec": decision.retry_in_sec,
                    "error_code": decision.error_code,
                    "error": decision.reason,
                },
            )
            return
        await self._db.execute(
            "setup_finish_task",
            {
                "id": row["id"],
                "status": decision.status,
                "attempt": 1 if decision.counts_as_attempt else 0,
                "retry_in_sec": decision.retry_in_sec if decision.status == "retry" else None,
                "error_code": decision.error_code,
                "error": (decision.reason or "")[:500] or None,
                "result": jsonb(decision.result) if decision.result else None,
            },
        )


def create_runner(
    settings: Settings, *, db: Database, redis, client_factory=None
) -> tuple[SetupRunner, MtprotoPool]:
    """The runner over its own pool (simulated Telegram when the settings say so); the caller closes the pool."""
    from tgops.orders.link_inspector import default_client_factory

    factory = client_factory or default_client_factory(settings)
    pool = MtprotoPool(db=db, redis=redis, settings=settings, client_factory=factory)
    return SetupRunner(settings, db, pool, MediaStore(settings)), pool


async def handle(runtime: Runtime, message: Received, *, runner: SetupRunner | None = None) -> None:
    """The tg-setup-fast and tg-setup-media handler (tgops.handlers); the Fargate worker passes its runner."""
    job = decode(message.body, RunSetupTask)
    await (runner or await shared_runner(runtime)).run(job.task_id)


_SHARED_RUNNERS: dict[int, tuple[Runtime, SetupRunner, MtprotoPool]] = {}


async def shared_runner(runtime: Runtime) -> SetupRunner:
    """One runner (one pool) per Runtime, for both setup queues of `tgops dev`."""
    db = await runtime.database()
    entry = _SHARED_RUNNERS.get(id(runtime))
    if entry is None:
        runner, pool = create_runner(runtime.settings, db=db, redis=runtime.redis())
        entry = _SHARED_RUNNERS[id(runtime)] = (runtime, runner, pool)
    return entry[1]


async def close_shared_runner(runtime: Runtime) -> None:
    entry = _SHARED_RUNNERS.pop(id(runtime), None)
    if entry is not None:
        await entry[2].close()
