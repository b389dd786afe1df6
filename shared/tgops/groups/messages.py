"""Group maintenance jobs on `tgms_queue`, queued by `group_tick` beside the groups' Telegram updates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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


class BackfillJoinRequests(Message):
    """List the join requests waiting in Telegram through the group's admin account and record those we
    missed. On `tg-inspect` (the Fargate worker holds the MTProto pool; no Lambda may import Telethon).
    A long list goes on in a fresh message from where the previous one stopped (`offset_*`)."""

    kind: Literal["group_join_backfill"] = "group_join_backfill"
    chat_id: int
    account_id: int = Field(gt=0)
    offset_date: int | None = None  # the last importer seen: Telegram's page cursor
    offset_user_id: int | None = None
    offset_user_hash: int | None = None
    recorded: int = Field(0, ge=0)  # recorded by the earlier messages of this backfill
    tries: int = Field(0, ge=0)  # failed tries so far, Telegram's flood limits not counted
