"""Dashboard logins: the admin token is exchanged once for a session cookie (HttpOnly, SameSite=Strict).

The session lives in Redis with its CSRF token, so logout ends it everywhere and no token is kept in the
browser. Every state-changing request must carry the session's CSRF token (a form field or a header).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgops.cache import keys

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient

COOKIE = "tgops_dashboard"
TTL_SEC = 12 * 3600


@dataclass(frozen=True)
class DashboardSession:
    session_id: str
    csrf: str

    def csrf_matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())  # type: ignore[union-attr]


async def open_session(redis: RedisClient) -> DashboardSession:
    session = DashboardSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    await redis.set(keys.dashboard_session(session.session_id), session.csrf, ex=TTL_SEC)
    return session


async def find_session(redis: RedisClient, session_id: str | None) -> DashboardSession | None:
    if not session_id or len(session_id) > 100:
        return None
    csrf = await redis.get(keys.dashboard_session(session_id))
    return DashboardSession(session_id, csrf) if csrf else None


async def close_session(redis: RedisClient, session_id: str) -> None:
    await redis.delete(keys.dashboard_session(session_id))
