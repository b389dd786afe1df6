"""The queue backend every consumer, sender and the DLQ administration work through.

Two implementations keep SQS's semantics (visibility timeout, receive counts, redrive to the DLQ after
MAX_RECEIVE_COUNT receives, FIFO groups and deduplication ids): `SqsQueues` (SQS, or an emulator at
`sqs_endpoint_url`) and a Postgres-backed local backend for `tgops dev`, durable across restarts.
Queues are named by their logical names (`dm_queue`, `dm_queue-dlq`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tgops.messaging.sqs import Received


class QueueSender(Protocol):
    """What a producer needs: the send alone (SqsQueues, PgQueues and the tests' InMemoryQueues)."""

    async def send(
        self,
        queue: str,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        delay_sec: int = 0,
    ) -> str:
        """Send `body` to `queue`; return the message id."""
        ...


class QueueBackend(QueueSender, Protocol):
    """What consumers and the DLQ administration need besides."""

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 10,
        wait_time_sec: int = 20,
        visibility_timeout_sec: int | None = None,
    ) -> list[Received]: ...

    async def delete(self, queue: str, receipt_handle: str) -> None: ...

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_sec: int) -> None: ...

    def set_visibility(self, queue: str, receipt_handle: str, timeout_sec: int) -> None:
        """Blocking ChangeMessageVisibility, for callers without an event loop."""
        ...

    def release(self, queue: str, receipt_handles: Iterable[str]) -> list[str]:
        """Make held messages visible again now; return the receipt handles that could not be released."""
        ...

    def depth(self, queue: str) -> dict[str, int]:
        """Approximate counts of one queue or DLQ: {"visible": n, "in_flight": n, "delayed": n}."""
        ...

    def approximate_depths(self) -> dict[str, dict[str, int]]:
        """`depth` of every queue and DLQ of the topology, by logical name."""
        ...

    def ensure_queues(self) -> dict[str, str]:
        """Create or update every queue and DLQ of the topology; return logical name -> URL or id."""
        ...
