"""`PUT /api/live_streams` and `GET /api/live_streams` (API key): who is live, for the DM bot's live list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tgops.api.api_keys import API_KEY_RESPONSES, ApiKeyDep
from tgops.api.deps import RuntimeDep
from tgops.api.errors import BAD_BODY
from tgops.broadcast.jobs import HTTP_URL, VISIBLE_TEXT, StrictModel
from tgops.dm import live

MAX_STREAMS = 1000

router = APIRouter(prefix="/api/live_streams", tags=["live streams"], responses=API_KEY_RESPONSES)


class LiveStreamIn(StrictModel):
    platform: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")] = "instagram"
    username: Annotated[str, Field(min_length=1, max_length=128, pattern=VISIBLE_TEXT)]
    title: Annotated[str, Field(max_length=255, pattern=VISIBLE_TEXT)] | None = None
    url: Annotated[str, Field(max_length=2048, pattern=HTTP_URL)] | None = None


class LiveStreamsPut(StrictModel):
    mode: Literal["replace", "upsert"] = Field(
        "replace", description="replace: exactly these are live now; upsert: these are live, others unchanged"
    )
    streams: Annotated[list[LiveStreamIn], Field(max_length=MAX_STREAMS)]


class LiveStreamsPublished(BaseModel):
    mode: Literal["replace", "upsert"]
    published: int


class LiveStreamOut(BaseModel):
    platform: str
    username: str
    title: str | None
    url: str | None
    is_live: bool
    started_at: datetime
    ended_at: datetime | None


class LiveStreamList(BaseModel):
    items: list[LiveStreamOut]


@router.put("", responses=BAD_BODY)
async def publish_live_streams(
    request: LiveStreamsPut, runtime: RuntimeDep, _: ApiKeyDep
) -> LiveStreamsPublished:
    """Publish who is live now; the DM bot's live list shows it at once."""
    unique = {(stream.platform, stream.username): stream.model_dump() for stream in request.streams}
    await live.publish(await runtime.database(), list(unique.values()), request.mode)
    return LiveStreamsPublished(mode=request.mode, published=len(unique))


@router.get("")
async def list_live_streams(
    runtime: RuntimeDep,
    _: ApiKeyDep,
    live_only: Annotated[bool, Query(description="only streams live now")] = True,
    limit: Annotated[int, Query(ge=1, le=MAX_STREAMS)] = 100,
) -> LiveStreamList:
    rows = await live.listing(await runtime.database(), live_only=live_only, limit=limit)
    return LiveStreamList(items=[LiveStreamOut(**row) for row in rows])
