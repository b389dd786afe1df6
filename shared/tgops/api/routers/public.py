"""The public API for operators (API key in `X-API-Key`): broadcasts and managed groups.

`DELETE /api/groups/{id}` deactivates the group rather than dropping its row: sent messages and join
requests refer to its chat, and `PATCH` with `"is_active": true` brings it back. `PATCH` also sets the
group's management rules (phase and its rules, join policy, removal rule, admin account); a removal rule
removes nobody until `POST /api/groups/{id}/kick_rule/confirm` after its preview.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from tgops.api.api_keys import API_KEY_RESPONSES, ApiKeyDep
from tgops.api.deps import RuntimeDep
from tgops.api.errors import BAD_BODY, SERVICE_UNAVAILABLE, ErrorResponse
from tgops.broadcast.jobs import (
    HTTP_URL,
    MAX_CHAT_ID,
    QUEUE,
    VISIBLE_TEXT,
    BroadcastJob,
    Buttons,
    ChatIds,
    Content,
    StrictModel,
)
from tgops.broadcast.submit import IdempotencyConflict, IdempotencyUnavailable, submit
from tgops.cache.errors import RedisUnavailable
from tgops.groups import repository
from tgops.groups.repository import RULE_FIELDS, GroupExists, ManagedGroup, UnknownAccount
from tgops.validation import json_integer

MAX_DB_ID = 2**63 - 1


router = APIRouter(
    prefix="/api",
    responses={
        **API_KEY_RESPONSES,
        **SERVICE_UNAVAILABLE,
    },
)


# --- broadcasts ---------------------------------------------------------------------------------


class SendMessagesRequest(StrictModel):
    content: Content
    buttons: Buttons = []
    chat_ids: ChatIds = Field(None, description="omit to send to every active managed group")


class SendMessagesAccepted(BaseModel):
    job_id: str
    replayed: bool = Field(description="true: an earlier request with this Idempotency-Key queued the job")
    queue: str
    target: Literal["all_active_groups", "chat_ids"]
    chat_count: int | None = Field(description="how many chats were listed; null for every active group")


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[A-Za-z0-9_.:\-]{1,128}$",
        description="retrying with the same key and body queues nothing new and answers the first job id",
    ),
]


@router.post(
    "/send_messages",
    tags=["broadcasts"],
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **BAD_BODY,
        409: {"model": ErrorResponse, "description": "the Idempotency-Key belongs to another request"},
    },
)
async def send_messages(
    request: SendMessagesRequest,
    api_key: ApiKeyDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> SendMessagesAccepted:
    """Queue one broadcast job; the broadcaster sends it under Telegram's rate limits."""
    job = BroadcastJob(
        content=request.content, buttons=request.buttons, chat_ids=request.chat_ids, api_key_id=api_key.id
    )
    try:
        submitted = await submit(
            job, runtime.queues(), runtime.redis() if idempotency_key else None, idempotency_key
        )
    except IdempotencyConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except IdempotencyUnavailable as error:
        raise RedisUnavailable(f"the Idempotency-Key cannot be recorded: {error}") from error
    return SendMessagesAccepted(
        job_id=submitted.job_id,
        replayed=submitted.replayed,
        queue=QUEUE,
        target="chat_ids" if job.chat_ids is not None else "all_active_groups",
        chat_count=len(job.chat_ids) if job.chat_ids is not None else None,
    )


# --- managed groups -----------------------------------------------------------------------------

GroupChatId = Annotated[
    int,
    Field(ge=-MAX_CHAT_ID, le=-1, description="the group's Telegram chat id"),
    BeforeValidator(json_integer),
]
DisplayText = Annotated[str, Field(min_length=1, max_length=255, pattern=VISIBLE_TEXT)]
Username = Annotated[
    str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{3,31}$", description="public @username, no @")
]
ChatType = Literal["group", "supergroup", "channel"]
InviteLink = Annotated[str, Field(max_length=512, pattern=HTTP_URL)]
GroupId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


def _without_default(schema: dict) -> None:
    schema.pop("default", None)


def _optional() -> object:
    """A PATCH field that may be left out but not set to null (its column is NOT NULL)."""
    return Field(None, json_schema_extra=_without_default)


class GroupCreate(StrictModel):
    chat_id: GroupChatId
    title: DisplayText | None = None
    username: Username | None = None
    chat_type: ChatType = "supergroup"
    display_name: DisplayText | None = None
    invite_link: InviteLink | None = None
    is_active: StrictBool = True
    final_message_allowed: StrictBool = Field(True, description="the broadcaster may post to this group")


MemberCount = Annotated[int, Field(ge=0, le=10**9), BeforeValidator(json_integer)]
UserId = Annotated[int, Field(ge=1, le=MAX_CHAT_ID), BeforeValidator(json_integer)]
JoinAction = Literal["approve", "hold", "decline"]
# json_integer refuses true and "1", which lax number parsing would take.
DecisionInterval = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False), BeforeValidator(json_integer)]
AccountId = Annotated[int, Field(ge=1, le=MAX_CHAT_ID), BeforeValidator(json_integer)]  # JSON-safe ids


class PhaseRules(StrictModel):
    """When the phase changes by itself, at the hourly member count; a rule left out never fires."""

    monitoring_at_members: MemberCount | None = Field(None, description="growth -> monitoring at this count")
    growth_below_members: MemberCount | None = Field(
        None, description="monitoring -> growth below this count"
    )

    def flapping(self) -> str | None:
        """Why these rules would move the phase back and forth every hour, or None. (Not a field
        constraint: JSON Schema cannot say it, and the schema must accept what the route accepts.)"""
        high, low = self.monitoring_at_members, self.growth_below_members
        if high is not None and low is not None and low > high:
            return "growth_below_members must not be above monitoring_at_members: the phase would flap"
        return None


class KickRule(StrictModel):
    """Inactive-member removal: members watched this long without a message are removed, sparing admins,
    the bot and `allow_user_ids`. Setting a rule makes it unconfirmed: its next run is a preview."""

    inactive_days: int = Field(ge=1, le=3650)
    allow_user_ids: list[UserId] = Field(default_factory=list, max_length=1000)


class GroupUpdate(StrictModel):
    """The fields to change; a field left out keeps its value. Setting is_active clears the failure streak."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    title: DisplayText | None = None
    username: Username | None = None
    chat_type: ChatType = _optional()
    display_name: DisplayText | None = None
    invite_link: InviteLink | None = None
    is_active: StrictBool = _optional()
    final_message_allowed: StrictBool = _optional()
    phase: Literal["growth", "monitoring"] = _optional()
    phase_rules: PhaseRules = _optional()
    growth_join_action: JoinAction = _optional()
    monitoring_join_action: JoinAction = _optional()
    decision_interval_sec: DecisionInterval | None = Field(
        None, description="seconds between decisions; null: the default"
    )
    kick_rule: KickRule | None = Field(None, description="null: no removal")
    admin_account_id: AccountId | None = Field(
        None, description="a fleet account (mtproto_accounts) that is an admin of the group; null: none"
    )

    @model_validator(mode="after")
    def _names_a_field(self) -> GroupUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self


class GroupList(BaseModel):
    items: list[ManagedGroup]
    total: int = Field(description="groups matching the filter, on every page")
    next_cursor: int | None = Field(description="pass as `after_id` for the next page; null on the last page")


NOT_FOUND = {404: {"model": ErrorResponse, "description": "no managed group with that id"}}


def _found(group: ManagedGroup | None, group_id: int) -> ManagedGroup:
    if group is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no managed group with id {group_id}")
    return group


@router.get("/groups", tags=["groups"])
async def list_groups(
    runtime: RuntimeDep,
    _: ApiKeyDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after_id: Annotated[int, Query(ge=0, le=MAX_DB_ID, description="the previous page's next_cursor")] = 0,
    is_active: Annotated[bool | None, Query(description="only active, or only inactive, groups")] = None,
) -> GroupList:
    """Managed groups by id, one page at a time."""
    page = await repository.list_groups(
        await runtime.database(), after_id=after_id, limit=limit, is_active=is_active
    )
    return GroupList(items=page.items, total=page.total, next_cursor=page.next_cursor)


@router.post(
    "/groups",
    tags=["groups"],
    status_code=status.HTTP_201_CREATED,
    responses={**BAD_BODY, 409: {"model": ErrorResponse, "description": "a group with that chat_id exists"}},
)
async def create_group(request: GroupCreate, runtime: RuntimeDep, _: ApiKeyDep) -> ManagedGroup:
    """Register a group for broadcasts."""
    fields = request.model_dump(exclude={"chat_id"})
    try:
        return await repository.create_group(await runtime.database(), request.chat_id, fields)
    except GroupExists as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None


@router.get("/groups/{group_id}", tags=["groups"], responses=NOT_FOUND)
async def get_group(group_id: GroupId, runtime: RuntimeDep, _: ApiKeyDep) -> ManagedGroup:
    return _found(await repository.get_group(await runtime.database(), group_id), group_id)


@router.patch(
    "/groups/{group_id}",
    tags=["groups"],
    responses={
        **BAD_BODY,
        **NOT_FOUND,
        409: {
            "model": ErrorResponse,
            "description": "admin_account_id names no fleet account, or the phase rules contradict",
        },
    },
)
async def update_group(
    group_id: GroupId, request: GroupUpdate, runtime: RuntimeDep, _: ApiKeyDep
) -> ManagedGroup:
    """Change the active flag, the final-message flag, the display fields or the management rules."""
    db = await runtime.database()
    changes = request.model_dump(exclude_unset=True)
    rules = {name: changes.pop(name) for name in RULE_FIELDS if name in changes}
    if request.kick_rule is not None:
        rules["kick_rule"] = request.kick_rule.model_dump()  # whole: its defaults included
    if request.phase_rules is not None:
        if reason := request.phase_rules.flapping():
            raise HTTPException(status.HTTP_409_CONFLICT, reason)
        rules["phase_rules"] = request.phase_rules.model_dump(exclude_none=True)
    group: ManagedGroup | None = None
    if rules:  # first: an unknown account refuses the whole request before anything is written
        try:
            row = await repository.set_rules(db, group_id, **rules)
        except UnknownAccount as error:  # well-formed, but it names no account: the state refuses it
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        group = _found(ManagedGroup(**row) if row else None, group_id)
    if changes:
        group = _found(await repository.update_group(db, group_id, changes), group_id)
    return group


@router.post(
    "/groups/{group_id}/kick_rule/confirm",
    tags=["groups"],
    responses={
        **NOT_FOUND,
        409: {"model": ErrorResponse, "description": "no removal rule, or its preview has not run yet"},
    },
)
async def confirm_kick_rule(group_id: GroupId, runtime: RuntimeDep, _: ApiKeyDep) -> ManagedGroup:
    """The operator saw the preview ("would remove N"): the rule removes members from its next run on."""
    db = await runtime.database()
    group = _found(await repository.get_group(db, group_id), group_id)
    if group.kick_rule is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the group has no removal rule to confirm")
    if group.kick_checked_at is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the removal rule has not run its preview yet; confirm after it has"
        )
    row = await repository.confirm_kick_rule(db, group_id)
    return _found(ManagedGroup(**row) if row else None, group_id)


@router.delete("/groups/{group_id}", tags=["groups"], responses=NOT_FOUND)
async def deactivate_group(group_id: GroupId, runtime: RuntimeDep, _: ApiKeyDep) -> ManagedGroup:
    """Deactivate the group (the row stays; PATCH `is_active: true` restores it); answers the group."""
    return _found(await repository.deactivate_group(await runtime.database(), group_id), group_id)
