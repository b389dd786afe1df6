"""The topology's queues on Postgres: the durable local queue backend of `tgops dev`.

Why Postgres rather than a persistent SQS emulator: `tgops dev` already runs an embedded Postgres whose
data survives Ctrl-C and `kill -9` (a committed send is on disk, crash recovery replays the WAL), so
durability costs no new process, no new dependency and no second data directory to keep consistent.
The semantics the AWS path relies on are a few rules on two tables, enforced by the database's own
locks: receive claims rows with `FOR UPDATE SKIP LOCKED`, so several consumers never get one message
twice. The emulators on offer either keep messages in memory (moto, ElasticMQ's default) or need a JVM
or a container, and moto's send slows down as a queue grows (bench/local_queues.py measures both).

What it keeps of SQS (tests/messaging/test_queue_backends.py runs one suite on both backends):
- a visibility timeout per queue from the topology, overridable per receive; a DLQ's is SQS's 30 s;
- receive counts, and redrive: a message already received MAX_RECEIVE_COUNT times moves to its
  `<queue>-dlq` (same message id and count) when it would be received again;
- FIFO queues: a group's messages come in send order, never while an earlier one is in flight;
  a MessageDeduplicationId sent again within 5 minutes is accepted and dropped;
- DelaySeconds on standard queues; long polling (`wait_time_sec`, by short sleeps);
- receipt handles that stop working once the message is received again;
- retention (4 days by default, 14 in a DLQ) and `check_send`'s validation.

The async methods use a small connection pool of their own, opened on first use; the blocking ones
(set_visibility, release, depth, approximate_depths, ensure_queues) a short-lived connection each.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from tgops.config import Settings
from tgops.db.database import Database, Row
from tgops.db.errors import DatabaseError
from tgops.db.queries import query
from tgops.messaging.errors import MAX_VISIBILITY_TIMEOUT_SEC, QueueUnavailable
from tgops.messaging.sqs import (
    DLQ_RETENTION_SEC,
    MAX_RECEIVE_BATCH,
    MAX_WAIT_TIME_SEC,
    Received,
    check_send,
)
from tgops.messaging.topology import MAX_RECEIVE_COUNT, QUEUES, QueueSpec

DEDUP_INTERVAL_SEC = 300
DLQ_VISIBILITY_TIMEOUT_SEC = 30  # SQS's default; ensure_queues sets no other on a DLQ
POLL_FIRST_PAUSE_SEC = 0.05
POLL_MAX_PAUSE_SEC = 0.5
PURGE_EVERY_SEC = 60
POOL_MAX_SIZE = 4
CONNECT_TIMEOUT_SEC = 5


@dataclass(frozen=True)
class _Queue:
    physical_name: str
    spec: QueueSpec
    is_dlq: bool

    @property
    def visibility_timeout_sec(self) -> int:
        return DLQ_VISIBILITY_TIMEOUT_SEC if self.is_dlq else self.spec.visibility_timeout_sec


class PgQueues:
    """The QueueBackend protocol (tgops.messaging.backend) on the tables of db/queries/local_queues.sql."""

    def __init__(
        self, database_url: str, *, queue_prefix: str = "tgops-", specs: Iterable[QueueSpec] = QUEUES
    ) -> None:
        self.database_url = database_url
        self.specs = tuple(specs)
        self._queues: dict[str, _Queue] = {}
        for spec in self.specs:
            self._queues[spec.name] = _Queue(spec.physical_name(queue_prefix), spec, is_dlq=False)
            self._queues[spec.dlq_name] = _Queue(spec.physical_dlq_name(queue_prefix), spec, is_dlq=True)
        self._database: Database | None = None
        self._opening = asyncio.Lock()
        self._next_purge = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PgQueues:
        if not settings.database_url:
            raise QueueUnavailable("the Postgres queue backend needs TGOPS_DATABASE_URL")
        return cls(settings.database_url, queue_prefix=settings.queue_prefix)

    def _queue(self, queue: str) -> _Queue:
        try:
            return self._queues[queue]
        except KeyError:
            raise KeyError(f"unknown queue {queue!r}; known: {', '.join(self._queues)}") from None

    def physical_name(self, queue: str) -> str:
        return self._queue(queue).physical_name

    async def send(
        self,
        queue: str,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        delay_sec: int = 0,
    ) -> str:
        target = self._queue(queue)
        if target.is_dlq:
            raise KeyError(f"unknown queue {queue!r}: messages reach a DLQ only by redrive")
        check_send(target.spec, group_id, dedup_id, delay_sec)
        message_id = str(uuid.uuid4())
        params = {
            "queue": target.physical_name,
            "message_id": message_id,
            "body": body,
            "retention_sec": target.spec.retention_sec,
        }
        async with self._errors(f"send to {target.physical_name}") as database:
            if not target.spec.fifo:
                await database.execute("send_local_message", params | {"delay_sec": delay_sec})
                return message_id
            fifo = {"group_id": group_id, "dedup_id": dedup_id, "dedup_window_sec": DEDUP_INTERVAL_SEC}
            sent = await database.fetch_one("send_local_fifo_message", params | fifo)
            if sent is None:  # a duplicate: accepted and dropped, answered with the first one's id
                sent = await database.fetch_one("local_dedup_message_id", params | fifo)
            if sent is None:  # its first send expired between the two statements: the caller sends again
                raise QueueUnavailable(
                    f"send to {target.physical_name}: deduplication id {dedup_id} just expired"
                )
            return sent["message_id"]

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = MAX_RECEIVE_BATCH,
        wait_time_sec: int = MAX_WAIT_TIME_SEC,
        visibility_timeout_sec: int | None = None,
    ) -> list[Received]:
        source = self._queue(queue)
        visibility_sec = (
            source.visibility_timeout_sec if visibility_timeout_sec is None else visibility_timeout_sec
        )
        _check_visibility(visibility_sec)
        params = {
            "queue": source.physical_name,
            "fifo": source.spec.fifo,
            "dlq": None if source.is_dlq else self.physical_name(source.spec.dlq_name),
            "max_receive_count": MAX_RECEIVE_COUNT,
            "dlq_retention_sec": DLQ_RETENTION_SEC,
            "max_messages": max(1, min(max_messages, MAX_RECEIVE_BATCH)),
            "visibility_sec": visibility_sec,
        }
        deadline = time.monotonic() + max(0, min(wait_time_sec, MAX_WAIT_TIME_SEC))
        pause = POLL_FIRST_PAUSE_SEC
        while True:
            rows = await self._claim(params)
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return [_received(row) for row in rows]
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_MAX_PAUSE_SEC)

    async def _claim(self, params: Mapping[str, Any]) -> list[Row]:
        async with self._errors(f"receive from {params['queue']}") as database:
            if time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + PURGE_EVERY_SEC
                await database.execute("delete_expired_local_messages")
            if not params["fifo"]:
                return await database.fetch_all("receive_local_messages", params)
            async with database.transaction() as transaction:
                await transaction.execute("lock_local_fifo_receives", params)
                return await transaction.fetch_all("receive_local_messages", params)

    async def delete(self, queue: str, receipt_handle: str) -> None:
        """Delete a received message. A handle that no longer works (the message was received again or
        deleted) deletes nothing and raises nothing, as in SQS."""
        name = self.physical_name(queue)
        async with self._errors(f"delete from {name}") as database:
            await database.execute("delete_local_message", {"queue": name, "receipt_handle": receipt_handle})

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_sec: int) -> None:
        target = self._queue(queue)
        _check_visibility(timeout_sec)
        params = _visibility_params(target, receipt_handle, timeout_sec)
        async with self._errors(f"change visibility in {target.physical_name}") as database:
            changed = await database.execute("change_local_visibility", params)
        if not changed:
            raise _stale_handle(target, "change visibility in")

    def set_visibility(self, queue: str, receipt_handle: str, timeout_sec: int) -> None:
        """Blocking ChangeMessageVisibility, for callers without an event loop."""
        target = self._queue(queue)
        _check_visibility(timeout_sec)
        params = _visibility_params(target, receipt_handle, timeout_sec)
        with self._connection(f"change visibility in {target.physical_name}") as connection:
            changed = connection.execute(query("change_local_visibility"), params).rowcount
        if not changed:
            raise _stale_handle(target, "change visibility in")

    def release(self, queue: str, receipt_handles: Iterable[str]) -> list[str]:
        """Make held messages visible again now; return the receipt handles that no longer work."""
        handles = list(receipt_handles)
        name = self.physical_name(queue)
        if not handles:
            return []
        with self._connection(f"release messages in {name}") as connection:
            params = {"queue": name, "receipt_handles": handles}
            released = {
                row["receipt_handle"] for row in connection.execute(query("release_local_messages"), params)
            }
        return [handle for handle in handles if handle not in released]

    def depth(self, queue: str) -> dict[str, int]:
        """Visible, in-flight and delayed counts of one queue or DLQ (logical name)."""
        return self._depths([queue])[queue]

    def approximate_depths(self) -> dict[str, dict[str, int]]:
        """Visible, in-flight and delayed counts of every queue and DLQ, by logical name."""
        return self._depths(list(self._queues))

    def _depths(self, queues: list[str]) -> dict[str, dict[str, int]]:
        by_physical_name = {self.physical_name(queue): queue for queue in queues}
        with self._connection("read queue depths") as connection:
            rows = connection.execute(query("local_queue_depths"), {"queues": list(by_physical_name)})
            counts = {row["queue"]: row for row in rows}
        empty = {"visible": 0, "in_flight": 0, "delayed": 0}
        return {
            queue: {key: int(counts.get(name, empty)[key]) for key in empty}
            for name, queue in by_physical_name.items()
        }

    def ensure_queues(self) -> dict[str, str]:
        """Create the tables if they are missing and drop expired messages; return logical -> physical name.

        Queues are rows, not objects: each queue of the topology exists once the tables do.
        """
        with self._connection("create the local queue tables") as connection:
            connection.execute(query("create_local_queue_tables"))
            connection.execute(query("delete_expired_local_messages"))
        return {queue: target.physical_name for queue, target in self._queues.items()}

    async def aclose(self) -> None:
        if self._database is not None:
            await self._database.close()
            self._database = None

    @contextmanager
    def _connection(self, action: str) -> Iterator[psycopg.Connection[DictRow]]:
        try:
            with psycopg.connect(
                self.database_url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_SEC
            ) as connection:
                yield connection
        except psycopg.Error as error:
            raise QueueUnavailable(f"{action}: {_first_line(error)}") from error

    @asynccontextmanager
    async def _errors(self, action: str) -> AsyncIterator[Database]:
        try:
            yield await self._pool()
        except DatabaseError as error:
            raise QueueUnavailable(f"{action}: {error}") from error

    async def _pool(self) -> Database:
        if self._database is None:
            async with self._opening:
                if self._database is None:
                    self._database = await Database.connect(
                        self.database_url, min_size=1, max_size=POOL_MAX_SIZE, timeout_sec=CONNECT_TIMEOUT_SEC
                    )
        return self._database


def _check_visibility(timeout_sec: int) -> None:
    if not 0 <= timeout_sec <= MAX_VISIBILITY_TIMEOUT_SEC:
        raise ValueError(
            f"visibility timeout must be between 0 and {MAX_VISIBILITY_TIMEOUT_SEC}s, got {timeout_sec}"
        )


def _visibility_params(target: _Queue, receipt_handle: str, timeout_sec: int) -> dict[str, Any]:
    return {
        "queue": target.physical_name,
        "fifo": target.spec.fifo,
        "receipt_handle": receipt_handle,
        "timeout_sec": timeout_sec,
    }


def _stale_handle(target: _Queue, action: str) -> QueueUnavailable:
    return QueueUnavailable(
        f"{action} {target.physical_name}: the receipt handle no longer works "
        "(the message was deleted or received again)"
    )


def _received(row: Row) -> Received:
    attributes = {
        "ApproximateReceiveCount": str(row["receive_count"]),
        "SentTimestamp": str(_millis(row["sent_at"])),
        "ApproximateFirstReceiveTimestamp": str(_millis(row["first_received_at"])),
    }
    if row["group_id"] is not None:
        attributes |= {
            "MessageGroupId": row["group_id"],
            "MessageDeduplicationId": row["dedup_id"],
            "SequenceNumber": str(row["seq"]),
        }
    return Received(
        message_id=row["message_id"],
        receipt_handle=row["receipt_handle"],
        body=row["body"],
        receive_count=row["receive_count"],
        attributes=attributes,
    )


def _millis(moment) -> int:
    return int(moment.timestamp() * 1000)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
