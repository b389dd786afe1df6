"""Sending one broadcast job through its per-chat delivery ledger (`broadcast_deliveries`).

The first receive of a job writes it and expands it into one ledger row per chat, in one transaction;
a redelivery finds the job written and expands nothing. Each run then leases pending rows (so several
consumers can share a job), and for each one, inside the bot's limits:

    pending --(just before the call)--> sending --(Telegram's answer)--> sent | failed
                                              \\--(no answer)--> unconfirmed

`sending` is the in-flight marker: a row found `sending` after its holder died may have gone out, so
it becomes `unconfirmed` and is never sent again; a chat gets a job at most once. A definite non-send
(429 after its retries, a connection never made) puts the row back to pending.

A run stops taking rows after `TGOPS_BROADCAST_RUN_BUDGET_SEC` and queues a `BroadcastContinue`, so a
job of 10,000 chats goes on in fresh messages and never spends its receives on Lambda timeouts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import RetryAfter, TelegramError
from ulid import ULID

from tgops.broadcast.jobs import QUEUE, BroadcastJob, CallbackButton, PhotoContent
from tgops.broadcast.messages import BroadcastContinue
from tgops.db.params import jsonb
from tgops.groups import chats
from tgops.messaging.envelopes import encode
from tgops.messaging.errors import InvalidMessage, RetryLater
from tgops.telegram.bot_client import (
    BotClient,
    Lane,
    describe_failure,
    is_chat_failure,
    may_have_been_delivered,
)

if TYPE_CHECKING:
    from tgops.config import Settings
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueSender

log = logging.getLogger(__name__)

LEASE_SEC = 60  # a run holds its leased rows this long; a run that died frees them after it
LEASE_BATCH = 10
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024
MAX_NETWORK_FAILURES = 3  # definite non-sends in a row before the message is retried later
NETWORK_RETRY_SEC = 30


@dataclass
class RunTally:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unconfirmed: int = 0
    finished: bool = False
    continued: bool = False
    errors: list[str] = field(default_factory=list)


async def accept(db: Database, job: BroadcastJob, bot_key: str) -> bool:
    """Write the job and its ledger once; False when an earlier receive already did."""
    async with db.transaction() as session:
        inserted = await session.fetch_one(
            "broadcast_job_insert",
            {"job_id": job.job_id, "job": jsonb(job.model_dump(mode="json")), "bot_key": bot_key},
        )
        if inserted is None:
            return False
        if job.chat_ids is None:
            await session.execute("broadcast_expand_active_groups", {"job_id": job.job_id})
        else:
            await session.execute(
                "broadcast_expand_listed_chats", {"job_id": job.job_id, "chat_ids": list(job.chat_ids)}
            )
        await session.execute("broadcast_job_set_total", {"job_id": job.job_id})
    return True


async def load_job(db: Database, job_id: str) -> BroadcastJob:
    row = await db.fetch_one("broadcast_job_get", {"job_id": job_id})
    if row is None:
        raise InvalidMessage(f"no broadcast job {job_id!r}: nothing to continue")
    try:
        return BroadcastJob.model_validate(row["job"])
    except ValidationError as error:
        raise InvalidMessage(f"stored job {job_id!r} no longer validates: {error}") from None


async def fan_out(queues: QueueSender, job_id: str, extra_consumers: int) -> None:
    for _ in range(extra_consumers):
        await queues.send(QUEUE, encode(BroadcastContinue(job_id=job_id)))


class BroadcastRun:
    """One consumer's turn at one job, until the job is done or the run's budget is spent."""

    def __init__(
        self, db: Database, client: BotClient, queues: QueueSender, settings: Settings, job: BroadcastJob
    ) -> None:
        self._db = db
        self._client = client
        self._queues = queues
        self._settings = settings
        self._job = job
        self._token = str(ULID())
        self._deadline = time.monotonic() + settings.broadcast_run_budget_sec
        self._network_failures = 0
        self.tally = RunTally()

    @property
    def job_id(self) -> str:
        return self._job.job_id

    async def run(self) -> RunTally:
        self.tally.unconfirmed += await self._db.execute(
            "broadcast_mark_stale_unconfirmed",
            {"job_id": self.job_id, "after_sec": self._settings.broadcast_unconfirmed_after_sec},
        )
        try:
            while True:
                if time.monotonic() >= self._deadline:
                    await self._continue_later()
                    return self.tally
                rows = await self._db.fetch_all(
                    "broadcast_lease",
                    {
                        "job_id": self.job_id,
                        "token": self._token,
                        "lease_sec": LEASE_SEC,
                        "limit": LEASE_BATCH,
                    },
                )
                if not rows:
                    await self._finish_if_done()
                    return self.tally
                for row in rows:
                    if time.monotonic() >= self._deadline:
                        break
                    await self._deliver(row)
        finally:
            await self._db.execute("broadcast_release_untried", {"job_id": self.job_id, "token": self._token})

    async def _continue_later(self) -> None:
        await self._queues.send(QUEUE, encode(BroadcastContinue(job_id=self.job_id)))
        self.tally.continued = True

    async def _finish_if_done(self) -> None:
        open_rows = await self._db.fetch_one("broadcast_open_count", {"job_id": self.job_id})
        if open_rows["pending"] == 0 and open_rows["sending"] == 0:
            if await self._db.execute("broadcast_job_finish", {"job_id": self.job_id}):
                log.info("broadcast %s finished", self.job_id)
            self.tally.finished = True

    async def _deliver(self, row: dict[str, Any]) -> None:
        chat_id, code = row["chat_id"], row["debug_code"]
        if row["group_allows"] is False:  # deactivated (or closed to messages) since the expansion
            await self._done(
                row, "skipped", None, row["target_chat_id"], "group inactive or closed to messages"
            )
            self.tally.skipped += 1
            return
        target = {"chat_id": row["target_chat_id"]}

        async def mark_in_flight(to_chat: int | None) -> None:
            target["chat_id"] = to_chat
            marked = await self._db.fetch_one(
                "broadcast_mark_sending",
                {"job_id": self.job_id, "chat_id": chat_id, "target_chat_id": to_chat, "token": self._token},
            )
            if marked is None:
                raise _LeaseLost

        async def request(bot, to_chat: int | None):
            return await self._send(bot, to_chat, code)

        try:
            message = await self._client.call(
                request, chat_id=row["target_chat_id"], lane=Lane.BULK, prepare=mark_in_flight
            )
        except _LeaseLost:
            log.warning("broadcast %s lost its lease on chat %s; another run has it", self.job_id, chat_id)
        except RetryAfter:
            await self._release(chat_id)  # still flooded after the client's retries: later, never dropped
        except TelegramError as error:
            await self._failed(row, target["chat_id"], error)
        else:
            self._network_failures = 0
            await self._done(row, "sent", message.message_id, target["chat_id"], None)
            await chats.record_send_success(self._db, target["chat_id"])
            self.tally.sent += 1

    async def _send(self, bot, chat_id: int, code: str):
        content = self._job.content
        markup = keyboard(self._job)
        if isinstance(content, PhotoContent):
            return await bot.send_photo(
                chat_id,
                content.photo_url,
                caption=with_debug_code(content.caption, code, CAPTION_LIMIT),
                parse_mode=content.parse_mode,
                reply_markup=markup,
            )
        return await bot.send_message(
            chat_id,
            with_debug_code(content.text, code, TEXT_LIMIT),
            parse_mode=content.parse_mode,
            reply_markup=markup,
        )

    async def _failed(self, row: dict[str, Any], chat_id: int, error: TelegramError) -> None:
        reason = describe_failure(error)[:500]
        if may_have_been_delivered(error):
            await self._done(row, "unconfirmed", None, chat_id, reason)
            self.tally.unconfirmed += 1
            return
        if is_chat_failure(error):
            await self._done(row, "failed", None, chat_id, reason)
            await chats.record_send_failure(
                self._db, chat_id, reason, self._settings.broadcast_max_consecutive_failures
            )
            self.tally.failed += 1
            return
        if _is_network(error):
            await self._release(row["chat_id"])
            self._network_failures += 1
            if self._network_failures >= MAX_NETWORK_FAILURES:
                raise RetryLater(NETWORK_RETRY_SEC, f"the Bot API is unreachable: {reason}")
            return
        # Refused for what the message is (a bad photo URL, bad markup): that chat is not to blame.
        await self._done(row, "failed", None, chat_id, reason)
        self.tally.failed += 1
        self.tally.errors.append(reason)

    async def _release(self, chat_id: int) -> None:
        await self._db.execute(
            "broadcast_release_unsent", {"job_id": self.job_id, "token": self._token, "chat_id": chat_id}
        )

    async def _done(
        self, row: dict[str, Any], status: str, message_id: int | None, target_chat_id: int, error: str | None
    ) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                "broadcast_mark_done",
                {
                    "job_id": self.job_id,
                    "chat_id": row["chat_id"],
                    "status": status,
                    "message_id": message_id,
                    "target_chat_id": target_chat_id,
                    "error": error,
                },
            )
            if status in ("sent", "failed"):
                await session.execute(
                    "sent_message_insert",
                    {
                        "job_id": self.job_id,
                        "chat_id": target_chat_id,
                        "message_id": message_id,
                        "debug_code": row["debug_code"],
                        "status": status,
                        "error": error,
                        "bot_key": self._client.key,
                        "kind": "broadcast",
                    },
                )


class _LeaseLost(Exception):
    """Another run took the row over (this run was too slow to keep its lease)."""


def _is_network(error: TelegramError) -> bool:
    from telegram.error import BadRequest, Forbidden, NetworkError

    return isinstance(error, NetworkError) and not isinstance(error, (BadRequest, Forbidden))


def with_debug_code(text: str | None, code: str, limit: int) -> str:
    """The text with its debug code on a last line; a text with no room left keeps its length (the
    code is still recorded with the message)."""
    if not text:
        return code
    suffixed = f"{text}\n\n{code}"
    return suffixed if len(suffixed) <= limit else text


def keyboard(job: BroadcastJob) -> InlineKeyboardMarkup | None:
    """The job's own buttons (seed 004: "JOIN LIVE" and the optional "BAN" come as the job's buttons)."""
    if not job.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(button.text, callback_data=button.callback_data)
                if isinstance(button, CallbackButton)
                else InlineKeyboardButton(button.text, url=button.url)
                for button in row
            ]
            for row in job.buttons
        ]
    )
