"""Managed groups in Postgres (`managed_groups`): the rows the broadcaster and the group bot work on.

Groups are never deleted here: sent messages and join requests refer to their chats, and the
broadcaster itself deactivates a group after repeated failures. "Delete" deactivates.
The group-management rules (`set_rules`, `confirm_kick_rule`) are set here too, free of the Bot API
client, so the HTTP API's cold start loads no python-telegram-bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from tgops.db.errors import ConflictError
from tgops.db.params import jsonb

if TYPE_CHECKING:
    from tgops.db.database import Database

EDITABLE_FIELDS = (
    "title",
    "username",
    "chat_type",
    "display_name",
    "invite_link",
    "is_active",
    "final_message_allowed",
)


class ManagedGroup(BaseModel):
    id: int
    chat_id: int
    bot_id: int | None
    title: str | None
    username: str | None
    chat_type: str
    display_name: str | None
    invite_link: str | None
    phase: str
    is_active: bool
    final_message_allowed: bool
    member_count: int | None
    member_count_at: datetime | None
    consecutive_failures: int
    last_failure_at: datetime | None
    last_failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    # Group management (issue 13): the phase and its rules, the join policy, the removal rule.
    phase_changed_at: datetime | None = None
    phase_rules: dict[str, Any] = Field(
        default_factory=dict,
        description='e.g. {"monitoring_at_members": 500, "growth_below_members": 400}',
    )
    growth_join_action: Literal["approve", "hold", "decline"] = "approve"
    monitoring_join_action: Literal["approve", "hold", "decline"] = "hold"
    decision_interval_sec: float | None = Field(None, description="null: TGOPS_GROUP_DECISION_INTERVAL_SEC")
    kick_rule: dict[str, Any] | None = Field(
        None, description='e.g. {"inactive_days": 30, "allow_user_ids": [], "confirmed": false}'
    )
    kick_checked_at: datetime | None = None
    join_gap_pending: int | None = Field(None, description="join requests waiting in Telegram never received")
    join_gap_detected_at: datetime | None = None
    admin_account_id: int | None = Field(
        None,
        description="the fleet account that is an admin of the group: missed join requests are backfilled",
    )
    join_backfill_requested_at: datetime | None = None
    join_backfill_at: datetime | None = Field(None, description="the last backfill that went to the end")
    join_backfill_recorded: int | None = Field(None, description="missed requests the last backfill recorded")
    join_backfill_error: str | None = Field(None, description="why the last backfill could not run")
    join_backfill_error_at: datetime | None = None


@dataclass(frozen=True)
class GroupPage:
    items: list[ManagedGroup]
    total: int
    next_cursor: int | None  # pass as `after_id` for the next page; None on the last page


class GroupExists(Exception):
    def __init__(self, chat_id: int, existing_id: int | None) -> None:
        super().__init__(f"a managed group with chat_id {chat_id} already exists (id {existing_id})")
        self.chat_id = chat_id
        self.existing_id = existing_id


async def list_groups(db: Database, *, after_id: int, limit: int, is_active: bool | None) -> GroupPage:
    async with db.session() as session:
        # One extra row tells whether another page follows without a second query.
        rows = await session.fetch_all(
            "group_list", {"after_id": after_id, "limit": limit + 1, "is_active": is_active}
        )
        total = (await session.fetch_one("group_count", {"is_active": is_active}))["total"]
    items = [ManagedGroup(**row) for row in rows[:limit]]
    next_cursor = items[-1].id if len(rows) > limit else None
    return GroupPage(items, total, next_cursor)


async def get_group(db: Database, group_id: int) -> ManagedGroup | None:
    row = await db.fetch_one("group_get", {"id": group_id})
    return ManagedGroup(**row) if row else None


async def create_group(db: Database, chat_id: int, fields: dict[str, Any]) -> ManagedGroup:
    """Insert a group; `fields` holds every editable field. Raises GroupExists for a known chat."""
    try:
        row = await db.fetch_one("group_insert", {"chat_id": chat_id, **fields})
    except ConflictError:
        existing = await db.fetch_one("group_get_by_chat_id", {"chat_id": chat_id})
        raise GroupExists(chat_id, existing["id"] if existing else None) from None
    return ManagedGroup(**row)


async def update_group(db: Database, group_id: int, changes: dict[str, Any]) -> ManagedGroup | None:
    """Apply the named changes only (a field absent from `changes` keeps its value)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    params: dict[str, Any] = {"id": group_id}
    for field in EDITABLE_FIELDS:
        params[f"set_{field}"] = field in changes
        params[field] = changes.get(field)
    row = await db.fetch_one("group_update", params)
    return ManagedGroup(**row) if row else None


async def deactivate_group(db: Database, group_id: int) -> ManagedGroup | None:
    row = await db.fetch_one("group_deactivate", {"id": group_id})
    return ManagedGroup(**row) if row else None


async def confirm_kick_rule(db: Database, group_id: int) -> dict[str, Any] | None:
    """The operator saw the preview: the rule removes members from its next run on."""
    return await db.fetch_one("group_confirm_kick_rule", {"id": group_id})


RULE_FIELDS = (
    "phase_rules",
    "growth_join_action",
    "monitoring_join_action",
    "decision_interval_sec",
    "kick_rule",
    "phase",
    "admin_account_id",
)


DECISION_INTERVAL_DIGITS = 3  # milliseconds: finer would underflow the column's float4


class UnknownAccount(ValueError):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"no fleet account with id {account_id}")


async def set_rules(db: Database, group_id: int, **rules: Any) -> dict[str, Any] | None:
    """Set the named rules of one group (a rule not named keeps its value; None clears a nullable one):
    phase rules, join actions, decision interval, removal rule, phase, admin account. A removal rule
    set here is unconfirmed: its next run is a preview again. Raises UnknownAccount."""
    unknown = set(rules) - set(RULE_FIELDS)
    if unknown:
        raise ValueError(f"not a group rule: {', '.join(sorted(unknown))}")
    account_id = rules.get("admin_account_id")
    if account_id is not None and not await _account_exists(db, account_id):
        raise UnknownAccount(account_id)
    if rules.get("decision_interval_sec") is not None:  # a `real` column: what it cannot hold is rounded
        rules["decision_interval_sec"] = round(
            float(rules["decision_interval_sec"]), DECISION_INTERVAL_DIGITS
        )
    if "phase_rules" in rules and rules["phase_rules"] is None:
        rules["phase_rules"] = {}  # no rules: the phase changes only when set
    if rules.get("kick_rule") is not None:
        rules["kick_rule"] = {**rules["kick_rule"], "confirmed": False}
    params: dict[str, Any] = {"id": group_id}
    for name in RULE_FIELDS:
        value = rules.get(name)
        params[f"set_{name}"] = name in rules
        params[name] = jsonb(value) if name in ("phase_rules", "kick_rule") and value is not None else value
    return await db.fetch_one("group_set_rules", params)


async def _account_exists(db: Database, account_id: int) -> bool:
    return (await db.fetch_one("group_admin_account_exists", {"account_id": account_id}))["exists"]
