"""The other messages on `group_message_queue` besides a `BroadcastJob` (tgops.broadcast.jobs)."""

from __future__ import annotations

from typing import Literal

from tgops.messaging.envelopes import Message


class BroadcastContinue(Message):
    """Go on sending a job already expanded (after a run's time budget, or to add a consumer)."""

    kind: Literal["broadcast_continue"] = "broadcast_continue"
    job_id: str


class BroadcastDelete(Message):
    """Delete the messages a job sent (`DELETE /api/broadcasts/{job_id}`)."""

    kind: Literal["broadcast_delete"] = "broadcast_delete"
    job_id: str
