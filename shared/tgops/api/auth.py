"""FastAPI glue for the shared-secret checks of tgops.security: the admin bearer token, error bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from tgops.api.deps import RuntimeDep
from tgops.security import secrets_match


class ErrorResponse(BaseModel):
    """FastAPI's error body: `detail` says why the request was refused."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    return {code: {"model": ErrorResponse} for code in codes}


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
