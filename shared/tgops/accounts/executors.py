"""The setup tasks' Telegram side: each reads the account's current state first and sends a change only
when it is not already right. Runs inside `MtprotoPool.call_on`, so the pool's lock, throttle and failure
policy apply; FLOOD_WAIT, PEER_FLOOD and auth errors are raised to it. Story limits arrive as plain
BadRequestErrors: they are caught here and become an outcome, so the pool never takes them for an
unknown error of the account.

Photos and stories record what they set (photo or story id, the media's SHA-256) in the task's result, so
a rerun can tell. Worker-side only (imports Telethon).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from telethon import errors
from telethon.password import compute_digest
from telethon.tl import functions, types

from tgops.accounts.media import Media
from tgops.telegram.sessions import MtprotoClient

PHOTOS_READ = 100
STORY_PERIOD_SEC = 86400  # the only period a non-Premium account may post with
PART_SIZE = 512 * 1024
BIG_FILE_BYTES = 10 * 1024 * 1024
WEEKLY_STORY_FLOOD = re.compile(r"^STORY_SEND_FLOOD_WEEKLY_(\d+)$")


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    status: Literal["done", "retry", "failed"]
    changed: bool = False
    result: dict[str, Any] | None = None
    error_code: str | None = None
    reason: str | None = None
    retry_in_sec: int | None = None


@dataclass(frozen=True)
class TaskContext:
    """What one task needs, gathered before the account is taken (media already fetched)."""

    task_type: str
    task_id: int = 0
    recorded: dict[str, Any] = field(default_factory=dict)  # what an earlier run set (result_json)
    first_name: str | None = None
    last_name: str = ""
    enable_2fa: bool = False
    password: str | None = field(default=None, repr=False)
    hint: str = ""
    media: Media | None = None
    story_limit_retry_sec: int = 86400

    @property
    def random_id(self) -> int:
        """Stable per task and media: Telegram's duplicate check if the same story is sent twice."""
        seed = f"{self.task_type}:{self.media.sha256 if self.media else ''}:{self.task_id}"
        return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big", signed=True)


def done(*, changed: bool, **result: Any) -> TaskOutcome:
    return TaskOutcome("done", changed=changed, result=result or None)


def failed(code: str, reason: str) -> TaskOutcome:
    return TaskOutcome("failed", error_code=code, reason=reason)


async def execute(context: TaskContext, client: MtprotoClient) -> TaskOutcome:
    return await EXECUTORS[context.task_type](client, context)


# -- the executors ------------------------------------------------------------------------------------------


async def ensure_2fa(client: MtprotoClient, context: TaskContext) -> TaskOutcome:
    current = await client(functions.account.GetPasswordRequest())
    if current.has_password:
        return done(changed=False, has_password=True)
    if not context.enable_2fa:
        return done(changed=False, has_password=False, note="enabling 2FA is off (TGOPS_SETUP_2FA_ENABLE)")
    if not context.password:
        return failed(
            "PASSWORD_MISSING",
            "2FA is to be enabled but no password is given (task payload or TGOPS_SETUP_2FA_PASSWORD)",
        )
    algo = current.new_algo
    algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=algo.salt1 + os.urandom(32), salt2=algo.salt2, g=algo.g, p=algo.p
    )
    settings = types.account.PasswordInputSettings(
        new_algo=algo, new_password_hash=compute_digest(algo, context.password), hint=context.hint
    )
    await client(
        functions.account.UpdatePasswordSettingsRequest(
            password=types.InputCheckPasswordEmpty(), new_settings=settings
        )
    )
    return done(changed=True, has_password=True)


async def update_name(client: MtprotoClient, context: TaskContext) -> TaskOutcome:
    if not context.first_name:
        return failed(
            "NAME_NOT_CONFIGURED", "no first name (task payload first_name or TGOPS_SETUP_FIRST_NAME)"
        )
    [me] = await client(functions.users.GetUsersRequest([types.InputUserSelf()]))
    wanted = (context.first_name, context.last_name or "")
    if ((me.first_name or ""), (me.last_name or "")) == wanted:
        return done(changed=False)
    await client(functions.account.UpdateProfileRequest(first_name=wanted[0], last_name=wanted[1]))
    return done(changed=True)


def _privacy(
    key: type, wanted: type, wanted_input: type
) -> Callable[[MtprotoClient, TaskContext], Awaitable[TaskOutcome]]:
    async def ensure(client: MtprotoClient, context: TaskContext) -> TaskOutcome:
        current = await client(functions.account.GetPrivacyRequest(key=key()))
        if [type(rule) for rule in current.rules] == [wanted]:
            return done(changed=False)
        await client(functions.account.SetPrivacyRequest(key=key(), rules=[wanted_input()]))
        return done(changed=True)

    return ensure


async def set_photo(client: MtprotoClient, context: TaskContext) -> TaskOutcome:
    """Done when the photo this task set is still among the account's photos (the JPG and the animated
    photo both live there; the newest is the one shown)."""
    media = context.media
    animated = context.task_type == "set_photo_animated"
    photos = await client(
        functions.photos.GetUserPhotosRequest(
            user_id=types.InputUserSelf(), offset=0, max_id=0, limit=PHOTOS_READ
        )
    )
    recorded = context.recorded
    kept = any(photo.id == recorded.get("photo_id") for photo in photos.photos)
    if kept and recorded.get("sha256") == media.sha256:
        return done(changed=False, **_kept(recorded))
    uploaded = await upload(client, media)
    if animated:
        request = functions.photos.UploadProfilePhotoRequest(video=uploaded, video_start_ts=0.0)
    else:
        request = functions.photos.UploadProfilePhotoRequest(file=uploaded)
    answer = await client(request)
    return done(changed=True, photo_id=answer.photo.id, sha256=media.sha256, media=media.name)


async def post_story(client: MtprotoClient, context: TaskContext) -> TaskOutcome:
    media = context.media
    recorded = context.recorded
    if recorded.get("story_id") and recorded.get("sha256") == media.sha256:
        return done(changed=False, **_kept(recorded))
    uploaded = await upload(client, media)
    if context.task_type == "story_video":
        attributes = [
            types.DocumentAttributeVideo(
                duration=media.duration_sec, w=media.width, h=media.height, supports_streaming=True
            )
        ]
        story_media = types.InputMediaUploadedDocument(
            file=uploaded, mime_type="video/mp4", attributes=attributes
        )
    else:
        story_media = types.InputMediaUploadedPhoto(file=uploaded)
    try:
        answer = await client(
            functions.stories.SendStoryRequest(
                peer=types.InputPeerSelf(),
                media=story_media,
                privacy_rules=[types.InputPrivacyValueAllowAll()],
                random_id=context.random_id,
                period=STORY_PERIOD_SEC,
            )
        )
    except errors.RPCError as error:
        outcome = _story_limit(error, context)
        if outcome is None:
            raise
        return outcome
    return done(changed=True, story_id=_story_id(answer), sha256=media.sha256, media=media.name)


def _story_limit(error: errors.RPCError, context: TaskContext) -> TaskOutcome | None:
    message = getattr(error, "message", "") or ""
    if message == "STORIES_TOO_MUCH":
        return TaskOutcome(
            "retry",
            error_code=message,
            reason="too many active stories",
            retry_in_sec=context.story_limit_retry_sec,
        )
    if weekly := WEEKLY_STORY_FLOOD.match(message):
        return TaskOutcome(
            "retry", error_code="STORY_SEND_FLOOD_WEEKLY", reason="weekly story limit reached",
            retry_in_sec=int(weekly.group(1)),
        )  # fmt: skip
    if message == "PREMIUM_ACCOUNT_REQUIRED":
        return failed(message, "Telegram allows stories on this account only with Premium")
    return None


def _story_id(answer: Any) -> int | None:
    for update in getattr(answer, "updates", []):
        if isinstance(update, types.UpdateStoryID):
            return update.id
        if isinstance(update, types.UpdateStory):
            return update.story.id
    return None


def _kept(recorded: dict[str, Any]) -> dict[str, Any]:
    return {name: recorded[name] for name in ("photo_id", "story_id", "sha256", "media") if name in recorded}


async def upload(client: MtprotoClient, media: Media) -> types.InputFile | types.InputFileBig:
    """Telegram's upload in parts, as TelegramClient.upload_file does it, through the one client call."""
    file_id = int.from_bytes(os.urandom(8), "big", signed=True)
    data = media.data
    parts = max(1, -(-len(data) // PART_SIZE))
    big = len(data) > BIG_FILE_BYTES
    for part in range(parts):
        chunk = data[part * PART_SIZE : (part + 1) * PART_SIZE]
        if big:
            await client(functions.upload.SaveBigFilePartRequest(file_id, part, parts, chunk))
        else:
            await client(functions.upload.SaveFilePartRequest(file_id, part, chunk))
    if big:
        return types.InputFileBig(file_id, parts, media.name)
    return types.InputFile(file_id, parts, media.name, hashlib.md5(data).hexdigest())


EXECUTORS: dict[str, Callable[[MtprotoClient, TaskContext], Awaitable[TaskOutcome]]] = {
    "ensure_2fa": ensure_2fa,
    "update_name": update_name,
    "privacy_phone_hidden": _privacy(
        types.InputPrivacyKeyPhoneNumber, types.PrivacyValueDisallowAll, types.InputPrivacyValueDisallowAll
    ),
    "privacy_last_seen_everybody": _privacy(
        types.InputPrivacyKeyStatusTimestamp, types.PrivacyValueAllowAll, types.InputPrivacyValueAllowAll
    ),
    "set_photo_jpg": set_photo,
    "set_photo_animated": set_photo,
    "story_image": post_story,
    "story_video": post_story,
}
