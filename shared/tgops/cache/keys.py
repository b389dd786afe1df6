"""Every Redis key tgops uses, built here and nowhere else (formats fixed in ARCHITECTURE.md)."""

from __future__ import annotations

import datetime as dt
import hashlib


def group_key(service_id: int | str, link: str) -> str:
    """One order group: sha1 of "service_id|normalized link"."""
    return hashlib.sha1(f"{service_id}|{link}".encode()).hexdigest()


def webhook_dedupe(bot_id: int | str, update_id: int) -> str:
    return f"webhook:{bot_id}:{update_id}"


def inspect_dispatch(group_key: str) -> str:
    return f"tg:inspect:dispatch:{group_key}"


def validate_group(group_key: str) -> str:
    return f"socpanel:validate-group:{group_key}"


def inspection(group_key: str) -> str:
    return f"tg:inspection:{group_key}"


def mtproto_lock(account_id: int) -> str:
    return f"tg:mtproto:lock:{account_id}"


def proxy_throttle(proxy_key: str) -> str:
    return f"tg:proxy:throttle:{proxy_key}"


def reserve_lock(action: str, account_id: int) -> str:
    return f"tg:lock:{action}:{account_id}"


def cooldown(action: str, account_id: int) -> str:
    return f"tg:cooldown:{action}:{account_id}"


def daily_cap(action: str, account_id: int, date: dt.date | str) -> str:
    day = date.isoformat() if isinstance(date, dt.date) else date
    return f"tg:cap:{action}:{account_id}:{day}"


def link_state(link_hash: str, account_id: int) -> str:
    return f"tg:link_state:{link_hash}:{account_id}"


def one_shot_dedupe(action: str, link_hash: str, account_id: int) -> str:
    """Set on commit of a one-shot action (seed 002); not in ARCHITECTURE.md's table."""
    return f"tg:dedupe:{action}:{link_hash}:{account_id}"


def rate_limit(scope: str, subject: int | str) -> str:
    """A counter window, e.g. rate_limit("dm", user_id); not in ARCHITECTURE.md's table."""
    return f"tg:ratelimit:{scope}:{subject}"


def task_commit(task_id: str) -> str:
    """Marks a provider task's COMMIT as applied, so a retried report consumes nothing twice."""
    return f"tg:commit:{task_id}"


def poll_lock(status: str) -> str:
    """One panel poll per order status at a time (seed 000)."""
    return f"socpanel:poll:{status}"


def validate_dispatch_lock(group_key: str) -> str:
    """Held while one poller dispatches a group's validation job (seed 000)."""
    return f"socpanel:validate-group-dispatch:{group_key}"


def unhandled_updates(update_type: str) -> str:
    """Count of webhook updates of a type no consumer handles, since its first one; expires after
    settings.webhook_unhandled_count_ttl_sec (a day)."""
    return f"webhook:unhandled:{update_type}"


def proxy_cooldown(proxy_key: str) -> str:
    """A proxy resting after a connection failure (seed 001); not in ARCHITECTURE.md's table."""
    return f"tg:proxy:cooldown:{proxy_key}"


def idempotency(scope: str, subject: int | str, key: str) -> str:
    """A client's Idempotency-Key, e.g. idempotency("send_messages", api_key_id, key); 24 h."""
    return f"tg:idempotency:{scope}:{subject}:{key}"


def dm_conversation(bot_id: int, user_id: int) -> str:
    """A multi-step DM conversation's state (bot cloning), with a TTL: a Lambda keeps nothing in memory."""
    return f"tg:dm:conversation:{bot_id}:{user_id}"


def dashboard_session(session_id: str) -> str:
    """An admin's dashboard login (its CSRF token as the value), until logout or expiry."""
    return f"tg:dashboard:session:{session_id}"


def switch(name: str) -> str:
    """A runtime switch flipped from the dashboard (tgops.switches): "1" on, "0" off, absent = default."""
    return f"tg:switch:{name}"


def bot_lane(bot_key: str, lane: str) -> str:
    """A bot's next free call time on one priority lane (ms since epoch); `bot_key` is a token hash."""
    return f"tg:bot:{bot_key}:lane:{lane}"


def bot_chat_spacing(bot_key: str, chat_id: int) -> str:
    """When a bot may next send to one chat (per-chat spacing, ms since epoch)."""
    return f"tg:bot:{bot_key}:chat:{chat_id}"


def bot_lane_calls(bot_key: str, lane: str) -> str:
    """A bot's recent calls on one lane (sorted set: call id -> the latest it can have reached Telegram, ms
    since epoch): what the limiter counts its window on."""
    return f"tg:bot:{bot_key}:lane:{lane}:calls"


def bot_chat_last_call(bot_key: str, chat_id: int) -> str:
    """A bot's last call to one chat (hash: call id, the latest it can have reached Telegram in ms)."""
    return f"tg:bot:{bot_key}:chat:{chat_id}:last"


def bot_pause(bot_key: str) -> str:
    """Set for `retry_after` after a 429: every consumer of the bot waits it out."""
    return f"tg:bot:{bot_key}:pause"


def decision_pump(bot_key: str) -> str:
    """Held by the one consumer making a bot's due join-request decisions (token lock)."""
    return f"tg:bot:{bot_key}:decision-pump"
