"""Fixed-window counters in Redis, one atomic Lua call each: rate limits (cache/lua/rate_limit.lua) and
plain counts that expire (cache/lua/count_in_window.lua).

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


async def count_in_window(client: RedisClient, key: str, *, window_sec: int) -> int:
    """Count one event in `key`, which expires `window_sec` after its first event."""
    return int(await script("count_in_window").run(client, [key], [window_sec * 1000]))
