"""The Bot API client of the group bots and the DM bot: python-telegram-bot's typed `Bot`, one per token,
behind a rate limiter every consumer of that bot shares through Redis.

Limits, per bot token (held in Redis, so every Lambda and worker obeys the same ones):
- two lanes that never wait for each other: `BULK` (broadcasts, periodic posts) at
  `TGOPS_BROADCAST_RATE_PER_SEC`, and `PRIORITY` (replies, join-request decisions) at what is left of
  Telegram's 30 calls/s; a share of the 30/s (`TGOPS_BOT_PRIORITY_RESERVED_SHARE`) is never given
  to broadcasts, whatever the configured rate;
- per-chat spacing: `TGOPS_BROADCAST_GROUP_SPACING_SEC` for groups (never under 3 s, Telegram's
  20 messages a minute per group), `TGOPS_BROADCAST_PRIVATE_SPACING_SEC` for private chats;
- a 429's `retry_after` pauses the bot for every consumer, then the call is retried.

A group migrated to a supergroup (`ChatMigrated`) is followed: the `on_migrated` hook stores the new
id and the call goes to it. Chat failures (403 kicked or blocked, 400 chat not found) are raised to
the caller as the chat's failure (`is_chat_failure`).

Without a real token (unset, or the "change-me" placeholder) every call is recorded in the
`bot_outbox` table with its parameters instead of being sent (`tgops outbox` lists them), answered
with a plausible success so the whole flow runs locally.

The token is part of every Bot API URL; `tgops.logs.RedactingFilter` keeps it out of httpx's and
python-telegram-bot's log lines, and the token never appears in keys or rows (`bot_key` is a hash).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from tgops.cache import keys
from tgops.cache.scripts import script
from tgops.config import PLACEHOLDER, Settings
from tgops.db.params import jsonb
from tgops.logs import redact_request_loggers

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.db.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

TELEGRAM_CALLS_PER_SEC = 30  # per bot, all chats together
TELEGRAM_GROUP_SPACING_SEC = 3.0  # 20 messages a minute per group
PACING_MARGIN = 1.04  # a little under each rate, so network jitter never pushes a second over it
MAX_FLOOD_RETRIES = 5
BULK_LEAD_MS = 100  # a bulk slot is reserved this far ahead: time for the broadcaster's in-flight marker
CHAT_FAILURES = (
    "chat not found",
    "bot was kicked",
    "bot was blocked",
    "bot is not a member",
    "not enough rights",
    "have no rights",
    "chat_write_forbidden",
    "group chat was deactivated",
    "user is deactivated",
    "peer_id_invalid",
    "need administrator rights",
)


class Lane(str, Enum):
    PRIORITY = "priority"  # replies, commands, join-request decisions: never behind a broadcast
    BULK = "bulk"  # broadcasts and periodic posts


def bot_key(token: str) -> str:
    """What keys and rows name a bot by: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def has_real_token(token: str | None) -> bool:
    return bool(token) and token != PLACEHOLDER


def is_chat_failure(error: TelegramError) -> bool:
    """A failure of that chat (kicked, blocked, gone, no rights), not of the job or the bot."""
    if isinstance(error, Forbidden):
        return True
    return isinstance(error, BadRequest) and any(text in error.message.lower() for text in CHAT_FAILURES)


def may_have_been_delivered(error: TelegramError) -> bool:
    """True when the request may have reached Telegram and taken effect (no answer came back)."""
    if not isinstance(error, NetworkError) or isinstance(error, (BadRequest, Forbidden)):
        return False
    cause = type(error.__cause__).__name__ if error.__cause__ else ""
    # Connecting failed or no connection was free: nothing was sent.
    return cause not in ("ConnectError", "ConnectTimeout", "PoolTimeout") and "Bad Gateway" not in str(error)


# --- the shared limiter -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pacing:
    bulk_interval_ms: int
    priority_interval_ms: int
    group_spacing_ms: int
    private_spacing_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Pacing:
        bulk_ceiling = TELEGRAM_CALLS_PER_SEC * (1 - settings.bot_priority_reserved_share)
        bulk_rate = min(settings.broadcast_rate_per_sec, bulk_ceiling)
        priority_rate = TELEGRAM_CALLS_PER_SEC - bulk_rate
        group_spacing = max(settings.broadcast_group_spacing_sec, TELEGRAM_GROUP_SPACING_SEC)
        return cls(
            bulk_interval_ms=_interval_ms(bulk_rate),
            priority_interval_ms=_interval_ms(priority_rate),
            group_spacing_ms=round(group_spacing * PACING_MARGIN * 1000),
            private_spacing_ms=round(settings.broadcast_private_spacing_sec * PACING_MARGIN * 1000),
        )

    def interval_ms(self, lane: Lane) -> int:
        return self.bulk_interval_ms if lane is Lane.BULK else self.priority_interval_ms

    def spacing_ms(self, chat_id: int) -> int:
        return self.group_spacing_ms if chat_id < 0 else self.private_spacing_ms


def _interval_ms(rate_per_sec: float) -> int:
    return max(1, round(1000 * PACING_MARGIN / rate_per_sec))


class SendLimiter:
    """Slots for one bot's calls, shared through Redis by every consumer of the bot."""

    def __init__(self, redis: RedisClient, key: str, pacing: Pacing) -> None:
        self._redis = redis
        self._key = key
        self._pacing = pacing

    async def reserve(self, lane: Lane, chat_id: int | None) -> float:
        """Reserve this call's slot (its lane, its chat's spacing, no 429 pause): the loop time to call at."""
        spacing = self._pacing.spacing_ms(chat_id) if chat_id is not None else 0
        lane_key = keys.bot_lane(self._key, lane.value)
        chat_key = keys.bot_chat_spacing(self._key, chat_id) if chat_id is not None else lane_key
        loop = asyncio.get_running_loop()
        while True:
            reserved, wait_ms = await script("bot_send_slot").run(
                self._redis,
                [lane_key, chat_key, keys.bot_pause(self._key)],
                [self._pacing.interval_ms(lane), spacing],
            )
            if int(reserved):
                return loop.time() + int(wait_ms) / 1000
            await asyncio.sleep(int(wait_ms) / 1000)

    async def wait_for(self, slot: float) -> bool:
        """Sleep until the slot; False when a 429 paused the bot meanwhile (reserve again)."""
        paused = asyncio.ensure_future(self._redis.pttl(keys.bot_pause(self._key)))  # asked while sleeping
        await asyncio.sleep(max(0.0, slot - asyncio.get_running_loop().time()))
        return await paused <= 0

    async def acquire(self, lane: Lane, chat_id: int | None) -> None:
        """Wait until a call may go now."""
        while not await self.wait_for(await self.reserve(lane, chat_id)):
            pass

    async def pause(self, seconds: float) -> None:
        await script("bot_pause").run(
            self._redis, [keys.bot_pause(self._key)], [max(1, round(seconds * 1000))]
        )


# --- the dry-run outbox -------------------------------------------------------------------------


class OutboxRequest(BaseRequest):
    """python-telegram-bot's HTTP boundary, writing each call to `bot_outbox` instead of sending it."""

    def __init__(self, db: Database, key: str) -> None:
        self._db = db
        self._key = key

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout=None,
        write_timeout=None,
        connect_timeout=None,
        pool_timeout=None,
    ) -> tuple[int, bytes]:
        import json

        endpoint = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        chat_id = params.get("chat_id")
        row = await self._db.fetch_one(
            "bot_outbox_insert",
            {
                "bot_key": self._key,
                "method": endpoint,
                "chat_id": chat_id if isinstance(chat_id, int) else None,
                "params": jsonb(params),
            },
        )
        result = _dry_run_result(endpoint, params, row["id"])
        return 200, json.dumps({"ok": True, "result": result}).encode()


async def list_outbox(db: Database, *, method: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest recorded calls, latest first."""
    return await db.fetch_all("bot_outbox_list", {"method": method, "limit": limit})


def _dry_run_result(method: str, params: dict[str, Any], outbox_id: int) -> Any:
    chat_id = params.get("chat_id", 0)
    chat = {"id": chat_id, "type": "supergroup" if isinstance(chat_id, int) and chat_id < 0 else "private"}
    if method in ("sendMessage", "sendPhoto"):
        return {"message_id": outbox_id, "date": int(time.time()), "chat": chat}
    if method == "getMe":
        return {"id": 1, "is_bot": True, "first_name": "dry run", "username": "dry_run_bot"}
    if method == "getChatMemberCount":
        return 0
    if method == "getChatAdministrators":
        return []
    if method == "getChatMember":
        user = {"id": params.get("user_id", 0), "is_bot": False, "first_name": "?"}
        return {"status": "member", "user": user}
    if method == "getChat":
        return {**chat, "title": "dry run", "accent_color_id": 0, "max_reaction_count": 0}
    return True


# --- the client -----------------------------------------------------------------------------------

MigrationHook = Callable[[int, int], Awaitable[None]]


class BotClient:
    """One bot: its typed `Bot` and its share of the limits. `call` is the one way to reach the Bot API."""

    def __init__(
        self,
        bot: Bot,
        key: str,
        limiter: SendLimiter,
        *,
        dry_run: bool = False,
        on_migrated: MigrationHook | None = None,
    ) -> None:
        self.bot = bot
        self.key = key
        self.limiter = limiter
        self.dry_run = dry_run
        self._on_migrated = on_migrated

    async def call(
        self,
        request: Callable[[Bot, int | None], Awaitable[T]],
        *,
        chat_id: int | None,
        lane: Lane,
        prepare: Callable[[int | None], Awaitable[None]] | None = None,
    ) -> T:
        """`await request(bot, chat_id)` under the limits, after any 429 pause and migration.

        `chat_id` is the chat the call writes to (spaced per chat), or None for calls that send no
        message (decisions, deletions, lookups), which only take a slot of their lane. `prepare(chat_id)`
        runs once the slot is reserved and before it comes (e.g. an in-flight marker), so the call itself
        goes out on time.
        """
        floods = 0
        while True:
            slot = await self.limiter.reserve(lane, chat_id)
            if prepare is not None:
                await prepare(chat_id)
            if not await self.limiter.wait_for(slot):
                continue
            try:
                return await request(self.bot, chat_id)
            except RetryAfter as error:
                floods += 1
                seconds = _retry_after_sec(error)
                log.warning("bot %s got 429: every consumer pauses %.1fs", self.key, seconds)
                await self.limiter.pause(seconds)
                if floods > MAX_FLOOD_RETRIES:
                    raise
            except ChatMigrated as error:
                if chat_id is None:
                    raise
                old, chat_id = chat_id, error.new_chat_id
                log.info("chat %s migrated to %s", old, chat_id)
                if self._on_migrated is not None:
                    await self._on_migrated(old, chat_id)


def _retry_after_sec(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # python-telegram-bot 22 warns that the type will be a timedelta
        warnings.simplefilter("ignore")
        retry_after = error.retry_after
    return retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)


# One Bot per token and event loop: its HTTP connection pool belongs to the loop that opened it.
_bots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Bot]] = (
    weakref.WeakKeyDictionary()
)


def _bot_for(token: str, settings: Settings, db: Database) -> Bot:
    loop = asyncio.get_running_loop()
    bots = _bots.setdefault(loop, {})
    dry_run = not has_real_token(token)
    cache_key = (token, f"outbox:{id(db)}" if dry_run else settings.telegram_bot_api_base_url)
    bot = bots.get(cache_key)
    if bot is None:
        if dry_run:
            request: BaseRequest = OutboxRequest(db, bot_key(token or PLACEHOLDER))
        else:
            timeout = settings.bot_api_timeout_sec
            request = HTTPXRequest(read_timeout=timeout, write_timeout=timeout, connect_timeout=timeout)
        bot = Bot(token or PLACEHOLDER, base_url=settings.telegram_bot_api_base_url, request=request)
        bots[cache_key] = bot
    return bot


def bot_client(
    token: str,
    settings: Settings,
    redis: RedisClient,
    db: Database,
    *,
    on_migrated: MigrationHook | None = None,
) -> BotClient:
    """The client of one bot token (its Bot reused for the life of the event loop)."""
    key = bot_key(token or PLACEHOLDER)
    return BotClient(
        _bot_for(token, settings, db),
        key,
        SendLimiter(redis, key, Pacing.from_settings(settings)),
        dry_run=not has_real_token(token),
        on_migrated=on_migrated,
    )


# --- no token in a log line: the request loggers redact where each record is made (tgops.logs) ---------

redact_request_loggers()
