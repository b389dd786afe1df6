"""The DM bot's commands and buttons (seed 004): points, referrals, the live list, groups, cloned bots.

Each update is handled once: its effects (points, referrals, activations, registrations) are written in
one transaction together with a marker row of `dm_updates` holding the replies, which are sent after the
commit. A redelivered update finds the marker and only re-sends replies that were not marked sent, so
no effect happens twice (a reply may, if the process died between sending it and marking it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter

from tgops.cache import keys, rate_limit
from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.db.database import Database, Session
from tgops.db.params import jsonb
from tgops.dm import cloning, replies
from tgops.dm.bots import BotGateway, BotIdentity
from tgops.dm.incoming import Incoming
from tgops.dm.replies import Reply
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.messaging.errors import RetryLater

log = logging.getLogger(__name__)

ADMIN_STATUSES = ("administrator", "creator")
# Answers Telegram gives when a reply no longer applies; the update is done all the same.
HARMLESS_BAD_REQUESTS = ("message is not modified", "query is too old", "message to edit not found",
                         "message to delete not found", "message can't be deleted")  # fmt: skip


@dataclass
class Context:
    """One update being handled inside its transaction."""

    session: Session
    event: TelegramUpdateReceived
    incoming: Incoming
    user: dict[str, Any]  # the bot_users row after this update touched it
    new_user: bool

    @property
    def ledger_key(self) -> dict[str, int]:
        return {"bot_id": self.event.bot_id, "update_id": self.event.update_id}


class DmBot:
    def __init__(
        self, settings: Settings, db: Database, redis: RedisClient, bot: BotIdentity, gateway: BotGateway
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.bot = bot
        self.gateway = gateway

    async def handle(self, event: TelegramUpdateReceived, incoming: Incoming) -> None:
        key = {"bot_id": event.bot_id, "update_id": event.update_id}
        earlier = await self.db.fetch_one("dm_update_replies", key)
        if earlier is not None:
            if earlier["replied_at"] is None:
                await self._send([Reply.from_json(item) for item in earlier["replies"]], key)
            return
        over_limit = incoming.counts_as_command and not await self._within_rate_limit(incoming)
        async with self.db.transaction() as session:
            claimed = await session.fetch_one(
                "dm_claim_update", key | {"user_id": incoming.user_id, "command": incoming.label}
            )
            if claimed is None:  # a concurrent delivery of the same update won
                return
            answers = await self._answer(session, event, incoming, over_limit)
            await session.execute(
                "dm_record_replies", key | {"replies": jsonb([a.as_json() for a in answers])}
            )
        log.info(
            "dm update handled",
            extra={"bot_id": event.bot_id, "update_id": event.update_id, "command": incoming.label,
                   "replies": len(answers), "rate_limited": over_limit},
        )  # fmt: skip
        await self._send(answers, key)

    # -- rate limit -----------------------------------------------------------------------------------

    async def _within_rate_limit(self, incoming: Incoming) -> bool:
        decision = await rate_limit.hit(
            self.redis,
            keys.rate_limit("dm", incoming.user_id),
            limit=self.settings.dm_rate_limit_commands,
            window_sec=self.settings.dm_rate_limit_window_sec,
        )
        return decision.allowed

    async def _first_refusal(self, incoming: Incoming) -> bool:
        """One polite refusal per window, then silence until the window passes."""
        return await self.redis.set(
            keys.rate_limit("dm-refused", incoming.user_id),
            "1",
            nx=True,
            ex=self.settings.dm_rate_limit_window_sec,
        )

    # -- answering ------------------------------------------------------------------------------------

    async def _answer(
        self, session: Session, event: TelegramUpdateReceived, incoming: Incoming, over_limit: bool
    ) -> list[Reply]:
        if over_limit:
            return await self._refuse_for_rate(incoming)
        if incoming.in_group and incoming.command not in ("init", "activate"):
            return [] if incoming.callback_id is None else [replies.answer_callback(incoming.callback_id)]
        if (
            incoming.command_bot
            and self.bot.username
            and incoming.command_bot.lower() != self.bot.username.lower()
        ):
            return []  # "/start@OtherBot": meant for another bot in the same group
        is_command = incoming.command is not None or incoming.callback_id is not None
        user = await session.fetch_one(
            "dm_touch_user",
            {"user_id": incoming.user_id, "username": incoming.username, "first_name": incoming.first_name,
             "initial_points": self.settings.dm_daily_points, "commands": int(is_command)},
        )  # fmt: skip
        assert user is not None
        context = Context(session, event, incoming, user, new_user=user["created"])
        if context.new_user:
            await self._ledger(context, self.settings.dm_daily_points, "initial")
        elif is_command:
            await self._grant_daily_points(context)
        if incoming.managed_bot is not None:
            return await cloning.adopt_managed_bot(self, context)
        if incoming.callback_id is not None:
            return await self._button(context)
        if incoming.command is not None:
            return await self._command(context)
        return await self._text(context)

    async def _refuse_for_rate(self, incoming: Incoming) -> list[Reply]:
        first = await self._first_refusal(incoming)
        if incoming.callback_id is not None:
            return [replies.answer_callback(incoming.callback_id, replies.SLOW_DOWN if first else None)]
        if first and not incoming.in_group:
            return [replies.message(incoming.chat_id, replies.SLOW_DOWN)]
        return []

    async def _grant_daily_points(self, context: Context) -> None:
        points = self.settings.dm_daily_points
        granted = await context.session.fetch_one(
            "dm_grant_daily_points", {"user_id": context.incoming.user_id, "points": points}
        )
        if granted is not None:
            await self._ledger(context, points, "daily")

    async def _ledger(self, context: Context, delta: int, reason: str, user_id: int | None = None) -> None:
        if delta:
            await context.session.execute(
                "dm_ledger_entry",
                context.ledger_key
                | {"user_id": user_id or context.incoming.user_id, "delta": delta, "reason": reason},
            )

    async def _command(self, context: Context) -> list[Reply]:
        incoming = context.incoming
        match incoming.command:
            case "start":
                return await self._start(context)
            case "live":
                return await self._live(context, page=0, charge=True)
            case "account" | "me":
                return [await self._account_reply(context)]
            case "clone" | "newbot":
                return await cloning.begin(self, context)
            case "bots":
                return await cloning.list_bots(self, context)
            case "cancel":
                return await cloning.cancel(self, context)
            case "init":
                return await self._init_group(context)
            case "activate":
                return await self._activate(context)
            case _:
                return [replies.message(incoming.chat_id, replies.HELP)]

    async def _text(self, context: Context) -> list[Reply]:
        if await cloning.awaiting_token(self, context):
            return await cloning.receive_token(self, context)
        if context.incoming.in_group or not context.incoming.text:
            return []
        return [replies.message(context.incoming.chat_id, replies.HELP, replies.MENU)]

    async def _button(self, context: Context) -> list[Reply]:
        incoming = context.incoming
        action, _, argument = (incoming.callback_data or "").partition(":")
        answer = replies.answer_callback(incoming.callback_id or "")
        match action:
            case "menu":
                return [answer, self._show(context, replies.welcome(incoming.first_name, context.user["points"],
                                                                    referred_by=None), replies.MENU)]  # fmt: skip
            case "live" if not argument:
                return await self._live(context, page=0, charge=True)
            case "live" if argument.isdigit():
                return await self._live(context, page=int(argument), charge=False)
            case "account":
                return [answer, await self._account_reply(context, edit=True)]
            case "clone":
                return [answer, *await cloning.begin(self, context)]
            case "bots":
                return [answer, *await cloning.list_bots(self, context)]
            case "rmbot" if argument.isdigit():
                return [answer, *await cloning.remove_bot(self, context, int(argument))]
            case _:
                return [replies.answer_callback(incoming.callback_id or "", replies.STALE_BUTTON)]

    def _show(self, context: Context, text: str, markup: dict[str, Any] | None) -> Reply:
        """Edit the message a button was on, in place; else send a new one."""
        incoming = context.incoming
        if incoming.callback_id is not None and incoming.message_id is not None:
            return replies.edit(incoming.chat_id, incoming.message_id, text, markup)
        return replies.message(incoming.chat_id, text, markup)

    async def _start(self, context: Context) -> list[Reply]:
        incoming = context.incoming
        referrer = int(incoming.args) if incoming.args.isdigit() else None
        credited = None
        if context.new_user and referrer is not None and referrer != incoming.user_id:
            points = self.settings.dm_referral_points
            row = await context.session.fetch_one(
                "dm_credit_referral", {"user_id": incoming.user_id, "referrer_id": referrer, "points": points}
            )
            if row is not None:
                credited = referrer
                await self._ledger(context, points, "referral", user_id=referrer)
        text = replies.welcome(incoming.first_name, context.user["points"], referred_by=credited)
        return [replies.message(incoming.chat_id, text, replies.MENU)]

    async def _live(self, context: Context, *, page: int, charge: bool) -> list[Reply]:
        incoming = context.incoming
        answer = [replies.answer_callback(incoming.callback_id)] if incoming.callback_id else []
        if charge:
            cost = self.settings.dm_live_check_cost
            charged = await context.session.fetch_one(
                "dm_charge_points", {"user_id": incoming.user_id, "cost": cost}
            )
            if charged is None:
                if incoming.callback_id:
                    return [replies.answer_callback(incoming.callback_id, replies.OUT_OF_POINTS, alert=True)]
                return [replies.message(incoming.chat_id, replies.OUT_OF_POINTS)]
            if not charged["is_unlimited"]:
                await self._ledger(context, -cost, "live_check")
        size = replies.LIVE_PAGE_SIZE
        streams = await context.session.fetch_all("dm_live_page", {"limit": size, "offset": page * size})
        total = (await context.session.fetch_one("dm_live_count"))["total"]  # type: ignore[index]
        text, markup = replies.live_page(streams, page, total)
        return [*answer, self._show(context, text, markup)]

    async def _account_reply(self, context: Context, *, edit: bool = False) -> Reply:
        incoming = context.incoming
        user = await context.session.fetch_one("dm_user", {"user_id": incoming.user_id})
        bots = await context.session.fetch_all("dm_owned_bots", {"owner_user_id": incoming.user_id})
        link = f"https://t.me/{await self.username()}?start={incoming.user_id}"
        text = replies.account(user or context.user, link, bots)
        markup = replies.keyboard(replies.BACK)
        return self._show(context, text, markup) if edit else replies.message(incoming.chat_id, text, markup)

    async def username(self) -> str:
        if self.bot.username:
            return self.bot.username
        me = await self.gateway.call(Reply("get_me"))
        username = getattr(me, "username", None) or "this_bot"
        self.bot = BotIdentity(self.bot.bot_id, self.bot.token, username)
        return username

    # -- groups -----------------------------------------------------------------------------------------

    async def _member_status(self, chat_id: int, user_id: int) -> str | None:
        try:
            member = await self.gateway.call(
                Reply("get_chat_member", {"chat_id": chat_id, "user_id": user_id})
            )
        except (BadRequest, Forbidden) as error:
            log.info("getChatMember refused", extra={"chat_id": chat_id, "reason": type(error).__name__})
            return None
        return getattr(member, "status", None)

    def _bot_user_id(self) -> int | None:
        token = self.bot.token or ""
        prefix = token.split(":", 1)[0]
        return int(prefix) if prefix.isdigit() else None

    async def _init_group(self, context: Context) -> list[Reply]:
        incoming = context.incoming
        if not incoming.in_group:
            return [replies.message(incoming.chat_id, "Send /init in the group you want to register.")]
        bot_user_id = self._bot_user_id()
        bot_status = await self._member_status(incoming.chat_id, bot_user_id) if bot_user_id else None
        if bot_status not in ADMIN_STATUSES:
            return [
                self._group_reply(incoming, "Make me an administrator of this group first, then send /init.")
            ]
        if await self._member_status(incoming.chat_id, incoming.user_id) not in ADMIN_STATUSES:
            return [self._group_reply(incoming, "Only an administrator of this group can register it.")]
        row = await context.session.fetch_one(
            "dm_register_group",
            {"chat_id": incoming.chat_id, "bot_id": None if self.bot.is_main else self.bot.bot_id,
             "title": incoming.chat_title, "username": incoming.chat_username, "chat_type": incoming.chat_type},
        )  # fmt: skip
        done = "registered" if row and row["created"] else "registered again"
        return [
            self._group_reply(incoming, f"This group is {done}. An administrator can now send /activate.")
        ]

    async def _activate(self, context: Context) -> list[Reply]:
        incoming = context.incoming
        if not incoming.in_group:
            return [replies.message(incoming.chat_id, "Send /activate in a group you administer.")]
        group = await context.session.fetch_one("dm_managed_group", {"chat_id": incoming.chat_id})
        if group is None or not group["is_active"]:
            return [
                self._group_reply(
                    incoming, "This group is not registered yet: an administrator sends /init first."
                )
            ]
        if await self._member_status(incoming.chat_id, incoming.user_id) not in ADMIN_STATUSES:
            return [
                self._group_reply(incoming, "Only an administrator or the owner of this group can /activate.")
            ]
        row = await context.session.fetch_one(
            "dm_set_unlimited", {"user_id": incoming.user_id, "chat_id": incoming.chat_id}
        )
        already = bool(row and row["was_unlimited"])
        text = "You already have unlimited points." if already else "Done: you now have unlimited points."
        return [self._group_reply(incoming, text)]

    def _group_reply(self, incoming: Incoming, text: str) -> Reply:
        params: dict[str, Any] = {"chat_id": incoming.chat_id, "text": text}
        if incoming.message_id is not None:
            params["reply_parameters"] = {
                "message_id": incoming.message_id,
                "allow_sending_without_reply": True,
            }
        return Reply("send_message", params)

    # -- sending ----------------------------------------------------------------------------------------

    async def _send(self, answers: list[Reply], key: dict[str, int]) -> None:
        for answer in answers:
            try:
                await self.gateway.call(answer)
            except Forbidden:
                if answer.to_user is not None:
                    await self.db.execute("dm_mark_blocked", {"user_id": answer.to_user})
                    log.info(
                        "user blocked the bot; nothing more is sent to them",
                        extra={"user_id": answer.to_user},
                    )
            except BadRequest as error:
                if not any(text in error.message.lower() for text in HARMLESS_BAD_REQUESTS):
                    raise
            except RetryAfter as error:
                raise RetryLater(int(error.retry_after if isinstance(error.retry_after, int)
                                     else error.retry_after.total_seconds()), "Bot API flood control") from None  # fmt: skip
            except InvalidToken:
                if self.bot.is_main:
                    raise
                await cloning.deactivate_revoked(self)
                return
        await self.db.execute("dm_mark_replied", key)
