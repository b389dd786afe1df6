"""API keys for the public API: made, listed and revoked by `tgops apikey`, checked on every request.

A key is 32 random bytes (urlsafe base64) behind a short `tgk_` marker. Only its SHA-256 is stored, so
the database alone never yields a usable key; a key this random needs no slow hash. Each key has its
own fixed-window rate limit in Redis, answered with 429 and `Retry-After` when spent.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from tgops.api.auth import count_failed_authentication, refuse_throttled_client
from tgops.api.deps import RuntimeDep
from tgops.api.errors import ErrorResponse
from tgops.cache import keys
from tgops.cache.errors import CacheError
from tgops.cache.rate_limit import hit
from tgops.runtime import Runtime
from tgops.security import hash_secret, secret_matches_hash

if TYPE_CHECKING:
    from tgops.db.database import Database

log = logging.getLogger(__name__)

KEY_MARKER = "tgk_"
SHOWN_PREFIX_LENGTH = 10  # the marker and six random characters: enough to tell keys apart in a list
RATE_LIMIT_SCOPE = "api_key"


class ApiKeyRecord(BaseModel):
    """What the database holds about a key: never the key itself."""

    id: int
    name: str
    key_prefix: str
    rate_limit_per_window: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    record: ApiKeyRecord
    key: str  # shown once, at creation


@dataclass(frozen=True)
class ActiveKey:
    id: int
    name: str
    rate_limit_per_window: int | None


def generate_key() -> str:
    return KEY_MARKER + secrets.token_urlsafe(32)


async def create_api_key(db: Database, name: str, rate_limit_per_window: int | None = None) -> NewApiKey:
    key = generate_key()
    row = await db.fetch_one(
        "api_key_insert",
        {
            "name": name,
            "key_prefix": key[:SHOWN_PREFIX_LENGTH],
            "key_hash": hash_secret(key),
            "rate_limit_per_window": rate_limit_per_window,
        },
    )
    return NewApiKey(ApiKeyRecord(**row), key)


async def revoke_api_key(db: Database, key_id: int) -> ApiKeyRecord | None:
    row = await db.fetch_one("api_key_revoke", {"id": key_id})
    return ApiKeyRecord(**row) if row else None


async def list_api_keys(db: Database) -> list[ApiKeyRecord]:
    return [ApiKeyRecord(**row) for row in await db.fetch_all("api_key_list")]


async def find_active_key(db: Database, key: str) -> ActiveKey | None:
    row = await db.fetch_one("api_key_find_active", {"key_hash": hash_secret(key)})
    # The lookup is by hash; the constant-time comparison keeps the check itself from leaking timing.
    if row is None or not secret_matches_hash(key, row["key_hash"]):
        return None
    return ActiveKey(row["id"], row["name"], row["rate_limit_per_window"])


_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an operator API key from `tgops apikey create`"
)


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "ApiKey"})


async def require_api_key(
    request: Request, runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> ActiveKey:
    await refuse_throttled_client(runtime, request)
    if not key:
        await count_failed_authentication(runtime, request)
        raise _unauthorized("missing X-API-Key header")
    found = await find_active_key(await runtime.database(), key)
    if found is None:
        await count_failed_authentication(runtime, request)
        raise _unauthorized("unknown or revoked API key")
    await _enforce_rate_limit(runtime, found)
    return found


async def _enforce_rate_limit(runtime: Runtime, api_key: ActiveKey) -> None:
    settings = runtime.settings
    limit = api_key.rate_limit_per_window or settings.api_key_rate_limit
    window_sec = settings.api_key_rate_window_sec
    try:
        decision = await hit(
            runtime.redis(), keys.rate_limit(RATE_LIMIT_SCOPE, api_key.id), limit=limit, window_sec=window_sec
        )
    except CacheError as error:
        # The key was checked in Postgres; an operator's request is not refused because Redis is away.
        log.warning("rate limit not applied to API key %s: %s", api_key.id, error)
        return
    if not decision.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit of {limit} requests per {window_sec}s spent for this API key",
            headers={"Retry-After": str(decision.retry_after_sec)},
        )


ApiKeyDep = Annotated[ActiveKey, Depends(require_api_key)]

RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "seconds until the key's window ends", "schema": {"type": "integer"}}
}
API_KEY_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorResponse, "description": "missing, unknown or revoked API key"},
    429: {
        "model": ErrorResponse,
        "description": "the key's rate limit is spent, or this client failed to authenticate too often",
        "headers": RETRY_AFTER_HEADER,
    },
}
"""OpenAPI entries for the statuses every API-key route can answer."""
