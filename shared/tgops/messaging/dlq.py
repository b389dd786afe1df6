"""DLQ administration of every queue: look at its dead letters without losing them, and replay them.

Both go through the `QueueBackend` protocol only (SQS, moto, or the local durable backend): plain
receive, send, delete, visibility and depth calls, no message-move tasks (moto has none). Looking receives messages with a short visibility and gives them
back at once. Replaying sends each chosen message to its source queue, records the replay, then deletes
it from the DLQ; a message whose replay is already recorded is only deleted, so a second run (or a run
after a crash between send and delete) never queues the same dead letter twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tgops.messaging.sqs import MAX_RECEIVE_BATCH, Received
from tgops.messaging.topology import QueueSpec

if TYPE_CHECKING:
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueBackend

PEEK_VISIBILITY_SEC = 30  # only if giving a message back fails: it reappears by itself then
REPLAY_VISIBILITY_SEC = 60
RECEIVE_WAIT_SEC = 1  # a short long-poll: SQS's short poll may answer "empty" for a non-empty queue
MAX_PEEK = 100
MAX_REPLAY_PER_CALL = 1000
PREVIEW_CHARS = 500


@dataclass(frozen=True)
class Failure:
    reason: str
    receive_count: int
    failed_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receive_count: int  # SQS's count: deliveries to consumers plus looks at the DLQ
    group_id: str | None
    sent_at: datetime | None
    body_preview: str
    body_size: int
    failure: Failure | None


@dataclass(frozen=True)
class DlqView:
    queue: str
    dlq: str
    approximate_depth: int
    messages: list[DeadLetter]


@dataclass
class ReplayResult:
    replayed: dict[str, str] = field(default_factory=dict)  # DLQ message id -> id in the source queue
    already_replayed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


class DeadLetters:
    def __init__(self, queues: QueueBackend, database: Database, spec: QueueSpec) -> None:
        self._queues = queues
        self._database = database
        self._spec = spec

    async def view(self, limit: int) -> DlqView:
        held: list[Received] = []
        try:
            held = await self._receive_up_to(min(limit, MAX_PEEK), PEEK_VISIBILITY_SEC)
        finally:
            await self._give_back(held)
        failures = await self._failures([message.message_id for message in held])
        return DlqView(
            queue=self._spec.name,
            dlq=self._spec.dlq_name,
            approximate_depth=await self._depth(),
            messages=[_dead_letter(message, failures.get(message.message_id)) for message in held],
        )

    async def replay(self, message_ids: list[str] | None) -> ReplayResult:
        """Replay the chosen messages (all when `message_ids` is None) to the source queue."""
        wanted = set(message_ids) if message_ids is not None else None
        result, seen, kept = ReplayResult(), set[str](), list[Received]()
        await self._database.execute("delete_old_dlq_replays")
        await self._database.execute("delete_old_queue_failures")
        try:
            while len(seen) < MAX_REPLAY_PER_CALL and (wanted is None or wanted - seen):
                batch = await self._receive(MAX_RECEIVE_BATCH, REPLAY_VISIBILITY_SEC)
                fresh = [message for message in batch if message.message_id not in seen]
                if not fresh:
                    break
                seen.update(message.message_id for message in fresh)
                chosen = [message for message in fresh if wanted is None or message.message_id in wanted]
                kept += [
                    message for message in fresh if wanted is not None and message.message_id not in wanted
                ]
                await self._replay_batch(chosen, result)
        finally:
            await self._give_back(kept)
        result.not_found = sorted(wanted - seen) if wanted is not None else []
        return result

    async def _replay_batch(self, messages: list[Received], result: ReplayResult) -> None:
        if not messages:
            return
        rows = await self._database.fetch_all(
            "dlq_replays_for_messages",
            {"queue": self._spec.name, "message_ids": [message.message_id for message in messages]},
        )
        done_before = {row["message_id"] for row in rows}
        for message in messages:
            if message.message_id in done_before:
                result.already_replayed.append(message.message_id)
            else:
                result.replayed[message.message_id] = await self._send_to_source(message)
            await self._queues.delete(self._spec.dlq_name, message.receipt_handle)

    async def _send_to_source(self, message: Received) -> str:
        group_id = dedup_id = None
        if self._spec.fifo:
            # A dedup id of its own: reusing the original one would let SQS drop the replay as a
            # duplicate within 5 minutes of the first send; this one drops a second replay instead.
            group_id, dedup_id = message.group_id or "replay", f"replay:{message.message_id}"
        new_id = await self._queues.send(self._spec.name, message.body, group_id=group_id, dedup_id=dedup_id)
        await self._database.execute(
            "record_dlq_replay",
            {"queue": self._spec.name, "message_id": message.message_id, "replay_message_id": new_id},
        )
        return new_id

    async def _receive_up_to(self, limit: int, visibility_sec: int) -> list[Received]:
        held: dict[str, Received] = {}
        while len(held) < limit:
            batch = await self._receive(min(MAX_RECEIVE_BATCH, limit - len(held)), visibility_sec)
            fresh = [message for message in batch if message.message_id not in held]
            if not fresh:
                break
            held.update((message.message_id, message) for message in fresh)
        return list(held.values())

    async def _receive(self, count: int, visibility_sec: int) -> list[Received]:
        return await self._queues.receive(
            self._spec.dlq_name,
            max_messages=count,
            wait_time_sec=RECEIVE_WAIT_SEC,
            visibility_timeout_sec=visibility_sec,
        )

    async def _give_back(self, messages: list[Received]) -> None:
        if messages:
            await asyncio.to_thread(
                self._queues.release, self._spec.dlq_name, [message.receipt_handle for message in messages]
            )

    async def _failures(self, message_ids: list[str]) -> dict[str, Failure]:
        if not message_ids:
            return {}
        rows = await self._database.fetch_all(
            "queue_failures_for_messages", {"queue": self._spec.name, "message_ids": message_ids}
        )
        return {
            row["message_id"]: Failure(row["reason"], row["receive_count"], row["failed_at"]) for row in rows
        }

    async def _depth(self) -> int:
        depth = await asyncio.to_thread(self._queues.depth, self._spec.dlq_name)
        return depth["visible"]


def _dead_letter(message: Received, failure: Failure | None) -> DeadLetter:
    sent = message.attributes.get("SentTimestamp")
    return DeadLetter(
        message_id=message.message_id,
        receive_count=message.receive_count,
        group_id=message.group_id,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        body_preview=message.body[:PREVIEW_CHARS],
        body_size=len(message.body.encode()),
        failure=failure,
    )
