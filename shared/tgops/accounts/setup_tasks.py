"""The account setup tasks of seed 003: their types, which queue runs each, and the queue message.

Free of Telethon: the dispatch_setup Lambda imports this.
"""

from __future__ import annotations

from typing import Literal

from tgops.config import SetupTaskType
from tgops.messaging.envelopes import Message
from tgops.messaging.topology import SETUP_FAST, SETUP_MEDIA

TaskType = SetupTaskType
FAST_TASKS: tuple[str, ...] = (
    "ensure_2fa",
    "update_name",
    "privacy_phone_hidden",
    "privacy_last_seen_everybody",
)
MEDIA_TASKS: tuple[str, ...] = ("set_photo_jpg", "set_photo_animated", "story_image", "story_video")
ALL_TASKS: tuple[str, ...] = FAST_TASKS + MEDIA_TASKS


def queue_for(task_type: str) -> str:
    """2FA, name and privacy go to tg-setup-fast; photos and stories (uploads) to tg-setup-media."""
    if task_type in FAST_TASKS:
        return SETUP_FAST.name
    if task_type in MEDIA_TASKS:
        return SETUP_MEDIA.name
    raise ValueError(f"unknown setup task type {task_type!r}")


class RunSetupTask(Message):
    kind: Literal["run_setup_task"] = "run_setup_task"
    task_id: int
    account_id: int
    task_type: str
