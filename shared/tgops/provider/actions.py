"""What each provider action is allowed and what a success costs, from the settings."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from tgops.config import Settings

SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
# Link state gating (seed 002): subscribe only where not subscribed, unsubscribe only where subscribed.
FORBIDDEN_STATE = {"subscribe": SUBSCRIBED}
REQUIRED_STATE = {"unsubscribe": SUBSCRIBED}
STATE_AFTER_SUCCESS = {"subscribe": SUBSCRIBED, "unsubscribe": UNSUBSCRIBED}


@dataclass(frozen=True)
class ActionRules:
    action: str
    cooldown_sec: int
    daily_cap: int  # 0: no cap
    one_shot: bool
    forbidden_state: str
    required_state: str
    state_after_success: str
    state_ttl_sec: int


def rules_for(settings: Settings, action: str) -> ActionRules:
    return ActionRules(
        action=action,
        cooldown_sec=settings.provider_action_cooldown_sec.get(
            action, settings.provider_default_cooldown_sec
        ),
        daily_cap=settings.provider_action_daily_cap.get(action, settings.provider_default_daily_cap),
        one_shot=action in settings.provider_one_shot_actions,
        forbidden_state=FORBIDDEN_STATE.get(action, ""),
        required_state=REQUIRED_STATE.get(action, ""),
        state_after_success=STATE_AFTER_SUCCESS.get(action, ""),
        state_ttl_sec=settings.link_state_ttl_days * 86400,
    )


def order_action(settings: Settings, order: dict) -> str:
    return (
        order.get("action")
        or settings.provider_service_actions.get(order["remote_service_id"])
        or settings.provider_default_action
    )


def link_hash(link: str) -> str:
    return hashlib.sha256(link.encode()).hexdigest()


def cap_day(now: dt.datetime | None = None) -> dt.date:
    """Daily caps count per UTC day."""
    return (now or dt.datetime.now(dt.UTC)).date()


def seconds_until_midnight(now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(1, int((midnight - now).total_seconds()))
