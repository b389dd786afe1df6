"""A queue sender that records every send call (duplicates included) and can be told to fail."""

from __future__ import annotations

from dataclasses import dataclass, field

from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.sqs import InMemoryQueues, SentMessage


@dataclass
class RecordingQueues:
    """Unlike InMemoryQueues it does not drop FIFO duplicates, so a test sees every send we made."""

    failures_left: int = 0
    calls: list[SentMessage] = field(default_factory=list)
    _checked: InMemoryQueues = field(default_factory=InMemoryQueues)

    async def send(self, queue, body, *, group_id=None, dedup_id=None, delay_sec=0) -> str:
        if self.failures_left:
            self.failures_left -= 1
            raise QueueUnavailable(f"send to {queue}: simulated outage")
        message_id = await self._checked.send(
            queue, body, group_id=group_id, dedup_id=dedup_id, delay_sec=delay_sec
        )
        self.calls.append(SentMessage(queue, body, message_id, group_id, dedup_id, delay_sec))
        return message_id

    def to(self, queue: str) -> list[SentMessage]:
        return [call for call in self.calls if call.queue == queue]
