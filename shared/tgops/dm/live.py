"""The live list the DM bot shows: who is live now, published by an outside checker through the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from tgops.db.params import jsonb

if TYPE_CHECKING:
    from tgops.db.database import Database


async def publish(db: Database, streams: list[dict[str, Any]], mode: Literal["replace", "upsert"]) -> None:
    """`upsert`: these are live (others unchanged); `replace`: these and only these are live."""
    async with db.transaction() as session:
        await session.execute("live_streams_upsert", {"streams": jsonb(streams)})
        if mode == "replace":
            await session.execute("live_streams_end_others", {"streams": jsonb(streams)})


async def listing(db: Database, *, live_only: bool, limit: int) -> list[dict[str, Any]]:
    return await db.fetch_all("live_streams_list", {"live_only": live_only, "limit": limit})
