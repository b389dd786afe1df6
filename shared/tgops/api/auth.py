"""FastAPI glue for the shared-secret checks of tgops.security: the admin bearer token, and the throttle
every authentication (admin, provider, API key) goes through.

A client (by IP: API Gateway's source address on Lambda) that failed `auth_failure_limit` times within
`auth_failure_window_sec` is answered 429 with `Retry-After` until the window ends, whatever it sends,
so a right guess looks no different from a wrong one. With Redis away the throttle is skipped: the
secret itself is still checked.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tgops.api.deps import RuntimeDep
from tgops.api.errors import Refused
from tgops.cache import keys
from tgops.cache.errors import CacheError
from tgops.cache.rate_limit import hit
from tgops.runtime import Runtime
from tgops.security import secrets_match

log = logging.getLogger(__name__)
THROTTLE_SCOPE = "auth"


def _client_key(request: Request) -> str:
    return keys.rate_limit(THROTTLE_SCOPE, request.client.host if request.client else "unknown")


def _throttled(retry_after_ms: int) -> Refused:
    return Refused(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "too many failed authentications from this client; retry later",
        headers={"Retry-After": str(max(1, math.ceil(retry_after_ms / 1000)))},
    )


async def refuse_throttled_client(runtime: Runtime, request: Request) -> None:
    """Before checking a secret: 429 when this client has spent its failures for the window."""
    redis, key = runtime.redis(), _client_key(request)
    try:
        failures = await redis.get(key)
        if failures is not None and int(failures) >= runtime.settings.auth_failure_limit:
            raise _throttled(await redis.pttl(key))
    except CacheError as error:
        log.warning("authentication throttle not checked: %s", error)


async def count_failed_authentication(runtime: Runtime, request: Request) -> None:
    """After a wrong or missing secret: count it; 429 when it is one too many."""
    settings = runtime.settings
    try:
        decision = await hit(
            runtime.redis(),
            _client_key(request),
            limit=settings.auth_failure_limit,
            window_sec=settings.auth_failure_window_sec,
        )
    except CacheError as error:
        log.warning("failed authentication not counted: %s", error)
        return
    if not decision.allowed:
        raise _throttled(decision.reset_ms)


_bearer = HTTPBearer(auto_error=False, description="the admin token (TGOPS_ADMIN_TOKEN)")


async def require_admin(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    await refuse_throttled_client(runtime, request)
    token = credentials.credentials if credentials else None
    if not secrets_match(token, runtime.settings.admin_token.get_secret_value()):
        await count_failed_authentication(runtime, request)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong admin bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)
"""Use as `dependencies=[AdminDep]` on an admin router or route."""
