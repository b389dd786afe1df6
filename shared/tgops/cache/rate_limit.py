"""Fixed-window rate limits in Redis: one atomic Lua call per hit (cache/lua/rate_limit.lua).

A fixed window lets a subject spend at most twice its limit across one window boundary; for
operator API keys that is acceptable, and it costs a single counter per subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tgops.cache.client import RedisClient
from tgops.cache.scripts import script


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    reset_ms: int

    @property
    def retry_after_sec(self) -> int:
        """Whole seconds to wait before the window ends (at least 1, as `Retry-After` wants)."""
        return max(1, math.ceil(self.reset_ms / 1000))


async def hit(client: RedisClient, key: str, *, limit: int, window_sec: int) -> RateDecision:
    allowed, remaining, reset_ms = await script("rate_limit").run(client, [key], [limit, window_sec * 1000])
    return RateDecision(bool(int(allowed)), int(remaining), int(reset_ms))
