"""DLQ administration: `GET /admin/dlq/{queue}` and `POST /admin/dlq/{queue}/replay` (admin bearer token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tgops.api.auth import AdminDep
from tgops.api.deps import RuntimeDep
from tgops.api.errors import SERVICE_UNAVAILABLE, THROTTLED, ErrorResponse, error_responses
from tgops.messaging.dlq import MAX_PEEK, MAX_REPLAY_PER_CALL, DeadLetters
from tgops.messaging.topology import QUEUES_BY_NAME
from tgops.runtime import Runtime

router = APIRouter(
    prefix="/admin/dlq",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={**error_responses(401), **THROTTLED, **SERVICE_UNAVAILABLE},
)

QueueName = Literal[tuple(QUEUES_BY_NAME)]  # type: ignore[valid-type]


class FailureOut(BaseModel):
    reason: str = Field(description="why the consumer gave up on it, as it recorded")
    receive_count: int
    failed_at: datetime


class DeadLetterOut(BaseModel):
    message_id: str
    receive_count: int = Field(
        description="SQS's receive count: deliveries to consumers plus looks at the DLQ"
    )
    group_id: str | None = Field(description="FIFO message group (bot and chat)")
    sent_at: datetime | None
    body_preview: str
    body_size: int = Field(description="body length in bytes")
    failure: FailureOut | None = Field(description="null when no consumer recorded a reason")


class DlqListing(BaseModel):
    queue: str
    dlq: str
    approximate_depth: int
    messages: list[DeadLetterOut]


class ReplayRequest(BaseModel):
    message_ids: list[str] | None = Field(
        default=None, max_length=MAX_REPLAY_PER_CALL, description="the DLQ messages to replay; omit for all"
    )


class ReplayResponse(BaseModel):
    replayed: dict[str, str] = Field(description="DLQ message id -> new message id in the source queue")
    already_replayed: list[str] = Field(description="replayed by an earlier run: only removed from the DLQ")
    not_found: list[str] = Field(
        description="asked for, but not in the DLQ (gone, or held by another reader)"
    )


@router.get("/{queue}", response_model=DlqListing)
async def list_dead_letters(
    queue: QueueName,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PEEK)] = 50,
) -> DlqListing:
    """The queue's dead letters with the recorded failure reason; they stay in the DLQ."""
    view = await (await _dead_letters(runtime, queue)).view(limit)
    return DlqListing.model_validate(view, from_attributes=True)


@router.post(
    "/{queue}/replay",
    response_model=ReplayResponse,
    responses={400: {"model": ErrorResponse, "description": "the body cannot be read"}},
)
async def replay_dead_letters(
    queue: QueueName, runtime: RuntimeDep, request: ReplayRequest | None = None
) -> ReplayResponse:
    """Send all (or the chosen) dead letters back to the source queue; running it twice is safe."""
    message_ids = request.message_ids if request else None
    result = await (await _dead_letters(runtime, queue)).replay(message_ids)
    return ReplayResponse.model_validate(result, from_attributes=True)


async def _dead_letters(runtime: Runtime, queue: str) -> DeadLetters:
    return DeadLetters(runtime.queues(), await runtime.database(), QUEUES_BY_NAME[queue])
