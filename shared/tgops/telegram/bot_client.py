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

The invariant, as Telegram sees it: no second holds more of a lane's calls than its rate, and no
chat gets two calls closer than its spacing, however late a consumer wakes or a call travels. A call
reaches Telegram between the moment the limiter lets it go and the moment its answer comes back;
the limiter counts every earlier call at the latest of those (`SendLimiter`).

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
import math
import time
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

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
PACING_MARGIN = 1.04  # slots a little under each rate: calls answered within it are never held back
MAX_FLOOD_RETRIES = 5
BULK_LEAD_MS = 100  # a bulk slot is reserved this far ahead: time for the broadcaster's in-flight marker
IN_FLIGHT_POLL_MS = 5  # a call held back by one still unanswered asks again this soon
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


def describe_failure(error: TelegramError) -> str:
    """The error as it is kept for the operator: its kind, then Telegram's words. A 403's description
    already begins with "Forbidden: ", which is not repeated."""
    kind = type(error).__name__
    return error.message if error.message.startswith(f"{kind}: ") else f"{kind}: {error.message}"


def may_have_been_delivered(error: TelegramError) -> bool:
    """True when the request may have reached Telegram and taken effect (no answer came back)."""
    if not isinstance(error, NetworkError) or isinstance(error, (BadRequest, Forbidden)):
        return False
    cause = type(error.__cause__).__name__ if error.__cause__ else ""
    # Connecting failed or no connection was free: nothing was sent.
    return cause not in ("ConnectError", "ConnectTimeout", "PoolTimeout") and "Bad Gateway" not in str(error)


# --- the shared limiter -------------------------------------------------------------------------


class Window(NamedTuple):
    """No window of `ms` holds more than `sends` calls: a rate, as Telegram counts it."""

    sends: int
    ms: int

    @classmethod
    def of(cls, rate_per_sec: float) -> Window:
        sends = max(1, math.floor(rate_per_sec))
        return cls(sends, math.ceil(1000 * sends / rate_per_sec))


@dataclass(frozen=True)
class Pacing:
    """The limits of one bot: slots are booked with `PACING_MARGIN` to spare; departures are held to
    the limits themselves (`bulk_window`, `priority_window`, `group_gap_ms`, `private_gap_ms`)."""

    bulk_interval_ms: int
    priority_interval_ms: int
    group_spacing_ms: int
    private_spacing_ms: int
    bulk_window: Window
    priority_window: Window
    group_gap_ms: int
    private_gap_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Pacing:
        bulk_ceiling = TELEGRAM_CALLS_PER_SEC * (1 - settings.bot_priority_reserved_share)
        bulk_rate = min(settings.broadcast_rate_per_sec, bulk_ceiling)
        priority_rate = TELEGRAM_CALLS_PER_SEC - bulk_rate
        group_spacing = max(settings.broadcast_group_spacing_sec, TELEGRAM_GROUP_SPACING_SEC)
        private_spacing = settings.broadcast_private_spacing_sec
        return cls(
            bulk_interval_ms=_interval_ms(bulk_rate),
            priority_interval_ms=_interval_ms(priority_rate),
            group_spacing_ms=round(group_spacing * PACING_MARGIN * 1000),
            private_spacing_ms=round(private_spacing * PACING_MARGIN * 1000),
            bulk_window=Window.of(bulk_rate),
            priority_window=Window.of(priority_rate),
            group_gap_ms=math.ceil(group_spacing * 1000),
            private_gap_ms=math.ceil(private_spacing * 1000),
        )

    def interval_ms(self, lane: Lane) -> int:
        return self.bulk_interval_ms if lane is Lane.BULK else self.priority_interval_ms

    def window(self, lane: Lane) -> Window:
        return self.bulk_window if lane is Lane.BULK else self.priority_window

    def spacing_ms(self, chat_id: int) -> int:
        return self.group_spacing_ms if chat_id < 0 else self.private_spacing_ms

    def gap_ms(self, chat_id: int) -> int:
        return self.group_gap_ms if chat_id < 0 else self.private_gap_ms


def _interval_ms(rate_per_sec: float) -> int:
    return max(1, round(1000 * PACING_MARGIN / rate_per_sec))


class Departure(Enum):
    GO = 1
    WAIT = 0
    PAUSED = -1


class SendLimiter:
    """One bot's calls, limited for every consumer of the bot through Redis, in three steps.

    `reserve` books the call a slot: its lane's slots an interval apart, its chat's after its spacing
    (both with the margin). When the slot comes, `depart` lets the call go only if no window of its
    lane and no spacing of its chat can be broken at Telegram, counting each earlier call at the latest
    it can have reached Telegram: in flight, any time; answered (`arrived`), by its answer. So a caller
    that wakes late, or a call slow on the wire, holds back the calls after it instead of crowding
    them. The margin keeps this from delaying calls when answers come back within it (40 ms at 5/s).
    `now_ms` comes only from tests that drive the clock; otherwise Redis's clock is the one clock.
    """

    def __init__(self, redis: RedisClient, key: str, pacing: Pacing, *, in_flight_ms: int = 30_000) -> None:
        self._redis = redis
        self._key = key
        self._pacing = pacing
        self._in_flight_ms = in_flight_ms

    async def try_reserve(
        self, lane: Lane, chat_id: int | None, now_ms: int | None = None
    ) -> tuple[bool, int]:
        """(True, ms until the reserved slot) or (False, ms to wait before asking again)."""
        spacing = self._pacing.spacing_ms(chat_id) if chat_id is not None else 0
        lane_key = keys.bot_lane(self._key, lane.value)
        chat_key = keys.bot_chat_spacing(self._key, chat_id) if chat_id is not None else lane_key
        lead = BULK_LEAD_MS if lane is Lane.BULK else 0
        reserved, wait_ms = await script("bot_send_slot").run(
            self._redis,
            [lane_key, chat_key, keys.bot_pause(self._key)],
            [self._pacing.interval_ms(lane), spacing, lead, *_clock(now_ms)],
        )
        return bool(int(reserved)), int(wait_ms)

    async def try_depart(
        self, lane: Lane, chat_id: int | None, call_id: str, now_ms: int | None = None
    ) -> tuple[Departure, int]:
        """Whether the call goes now (then it is held in flight), and else how long to wait."""
        window = self._pacing.window(lane)
        gap = self._pacing.gap_ms(chat_id) if chat_id is not None else 0
        lane_key = keys.bot_lane_calls(self._key, lane.value)
        status, wait_ms = await script("bot_send_depart").run(
            self._redis,
            [lane_key, self._chat_key(chat_id, lane_key), keys.bot_pause(self._key)],
            [
                window.sends,
                window.ms,
                gap,
                call_id,
                IN_FLIGHT_POLL_MS,
                self._in_flight_ms,
                *_clock(now_ms),
            ],
        )
        return Departure(int(status)), int(wait_ms)

    async def arrived(self, lane: Lane, chat_id: int | None, call_id: str, now_ms: int | None = None) -> None:
        """The call was answered or failed: it reached Telegram, if at all, by now."""
        lane_key = keys.bot_lane_calls(self._key, lane.value)
        await script("bot_send_arrived").run(
            self._redis,
            [lane_key, self._chat_key(chat_id, lane_key)],
            [call_id, int(chat_id is not None), *_clock(now_ms)],
        )

    async def reserve(self, lane: Lane, chat_id: int | None) -> float:
        """Reserve this call's slot (its lane, its chat's spacing, no 429 pause): the loop time to call at."""
        loop = asyncio.get_running_loop()
        while True:
            reserved, wait_ms = await self.try_reserve(lane, chat_id)
            if reserved:
                return loop.time() + wait_ms / 1000
            await asyncio.sleep(wait_ms / 1000)

    async def depart(self, slot: float, lane: Lane, chat_id: int | None, call_id: str) -> None:
        """Sleep until the slot, then until the call may go (after any 429 pause), and let it go."""
        await asyncio.sleep(max(0.0, slot - asyncio.get_running_loop().time()))
        while True:
            departure, wait_ms = await self.try_depart(lane, chat_id, call_id)
            if departure is Departure.GO:
                return
            await asyncio.sleep(wait_ms / 1000)

    async def pause(self, seconds: float) -> None:
        await script("bot_pause").run(
            self._redis, [keys.bot_pause(self._key)], [max(1, round(seconds * 1000))]
        )

    def _chat_key(self, chat_id: int | None, lane_key: str) -> str:
        return keys.bot_chat_last_call(self._key, chat_id) if chat_id is not None else lane_key


def _clock(now_ms: int | None) -> list[int]:
    return [] if now_ms is None else [now_ms]


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
            call_id = uuid.uuid4().hex
            await self.limiter.depart(slot, lane, chat_id, call_id)
            try:
                return await self._sent(request, chat_id, lane, call_id)
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

    async def _sent(
        self,
        request: Callable[[Bot, int | None], Awaitable[T]],
        chat_id: int | None,
        lane: Lane,
        call_id: str,
    ) -> T:
        try:
            return await request(self.bot, chat_id)
        finally:
            await self.limiter.arrived(lane, chat_id, call_id)


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
        SendLimiter(
            redis,
            key,
            Pacing.from_settings(settings),
            # connecting, writing and reading may each take the timeout: by then the call is given up
            in_flight_ms=math.ceil(3 * settings.bot_api_timeout_sec * 1000),
        ),
        dry_run=not has_real_token(token),
        on_migrated=on_migrated,
    )


# --- no token in a log line: the request loggers redact where each record is made (tgops.logs) ---------

redact_request_loggers()
