"""Group maintenance jobs on `tgms_queue`, queued by `group_tick` beside the groups' Telegram updates."""

from __future__ import annotations

from typing import Literal

from tgops.ingress.messages import MAIN_BOT_ID
from tgops.messaging.envelopes import Message

QUEUE = "tgms_queue"


class GroupMaintenance(Message):
    kind: Literal["group_maintenance"] = "group_maintenance"
    chat_id: int
    task: Literal["decide", "member_count", "kick_inactive"]

    @property
    def group_id(self) -> str:
        """The chat's FIFO group, the one its updates use: maintenance runs in line with them."""
        return f"{MAIN_BOT_ID}:{self.chat_id}"
