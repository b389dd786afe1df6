"""Shared-secret checks for the API: the admin bearer token and hashed per-bot secrets.

Every comparison runs in constant time (`hmac.compare_digest`), so response timing never tells an
attacker how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from tgops.api.deps import RuntimeDep
from tgops.config import PLACEHOLDER


class ErrorResponse(BaseModel):
    """FastAPI's error body: `detail` says why the request was refused."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    return {code: {"model": ErrorResponse} for code in codes}


def secrets_match(given: str | None, expected: str) -> bool:
    if not given or not expected or expected == PLACEHOLDER:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def hash_secret(secret: str) -> str:
    """What the database stores instead of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches_hash(given: str | None, stored_hash: str | None) -> bool:
    if not given or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(given).encode(), stored_hash.encode())


_bearer = HTTPBearer(auto_error=False, description="the admin token (TGOPS_ADMIN_TOKEN)")


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = credentials.credentials if credentials else None
    if not secrets_match(token, runtime.settings.admin_token.get_secret_value()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong admin bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)
"""Use as `dependencies=[AdminDep]` on an admin router or route."""
