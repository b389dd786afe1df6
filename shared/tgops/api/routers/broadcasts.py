"""Broadcast follow-up: a job's delivery state, deleting its messages (API key), the send log as CSV (admin).

`DELETE /api/broadcasts/{job_id}` queues the deletion (the broadcaster deletes under the bot's limits,
each message getting one outcome: deleted, already_deleted, too_old, no_rights, wrong_bot, error);
`GET /api/broadcasts/{job_id}` shows how far sending and deleting have come.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tgops.api.api_keys import API_KEY_RESPONSES, ApiKeyDep
from tgops.api.auth import AdminDep
from tgops.api.deps import RuntimeDep
from tgops.api.errors import error_responses
from tgops.broadcast.jobs import QUEUE
from tgops.broadcast.messages import BroadcastDelete
from tgops.db.errors import DatabaseUnavailable
from tgops.messaging.envelopes import encode
from tgops.messaging.errors import QueueUnavailable

router = APIRouter(tags=["broadcasts"])

JobId = Annotated[
    str, Path(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="the job id /api/send_messages gave")
]
EXPORT_PAGE = 5000
EXPORT_COLUMNS = (
    "id",
    "job_id",
    "kind",
    "chat_id",
    "message_id",
    "debug_code",
    "status",
    "error",
    "delete_outcome",
    "sent_at",
    "deleted_at",
)


class BroadcastState(BaseModel):
    job_id: str
    status: str = Field(description="sending or done")
    total: int = Field(description="chats the job was expanded to")
    deliveries: dict[str, int] = Field(
        description="ledger rows by status: pending, sent, failed, unconfirmed..."
    )
    deletions: dict[str, int] = Field(description="sent messages by delete outcome (not_deleted: none yet)")
    delete_requested: bool


class DeletionQueued(BaseModel):
    job_id: str
    to_delete: int = Field(description="messages of the job not deleted yet")


def _unavailable(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{what} is unavailable; retry later",
        headers={"Retry-After": "5"},
    )


@router.get("/api/broadcasts/{job_id}", responses={**API_KEY_RESPONSES, **error_responses(404, 503)})
async def broadcast_state(job_id: JobId, api_key: ApiKeyDep, runtime: RuntimeDep) -> BroadcastState:
    """How far a broadcast has come: its ledger by status and its deletions by outcome."""
    try:
        db = await runtime.database()
        job = await db.fetch_one("broadcast_job_get", {"job_id": job_id})
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no broadcast {job_id} has been received yet")
        deliveries = await db.fetch_all("broadcast_status_counts", {"job_id": job_id})
        deletions = await db.fetch_all("broadcast_delete_outcome_counts", {"job_id": job_id})
    except DatabaseUnavailable:
        raise _unavailable("the database") from None
    return BroadcastState(
        job_id=job_id,
        status=job["status"],
        total=job["total"],
        deliveries={row["status"]: row["count"] for row in deliveries},
        deletions={row["outcome"]: row["count"] for row in deletions},
        delete_requested=job["delete_requested_at"] is not None,
    )


@router.delete(
    "/api/broadcasts/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**API_KEY_RESPONSES, **error_responses(404, 503)},
)
async def delete_broadcast(job_id: JobId, api_key: ApiKeyDep, runtime: RuntimeDep) -> DeletionQueued:
    """Delete the messages a broadcast sent; each gets its own outcome (see GET)."""
    try:
        row = await (await runtime.database()).fetch_one("broadcast_request_delete", {"job_id": job_id})
    except DatabaseUnavailable:
        raise _unavailable("the database") from None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no broadcast {job_id} has been received yet")
    try:
        await runtime.queues().send(QUEUE, encode(BroadcastDelete(job_id=job_id)))
    except QueueUnavailable:
        raise _unavailable("the broadcast queue") from None
    return DeletionQueued(job_id=job_id, to_delete=row["to_delete"])


@router.get(
    "/admin/sent_messages.csv",
    dependencies=[AdminDep],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **error_responses(401)},
)
async def sent_messages_csv(
    runtime: RuntimeDep,
    job_id: Annotated[
        str | None, Query(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="one job only")
    ] = None,
) -> StreamingResponse:
    """Every send and delete recorded in `sent_messages`, oldest first, as CSV."""
    db = await runtime.database()

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        after_id = 0
        while True:
            page = await db.fetch_all(
                "sent_messages_export", {"after_id": after_id, "job_id": job_id, "limit": EXPORT_PAGE}
            )
            for row in page:
                writer.writerow(["" if row[column] is None else row[column] for column in EXPORT_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(page) < EXPORT_PAGE:
                return
            after_id = page[-1]["id"]

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="sent_messages.csv"'},
    )
