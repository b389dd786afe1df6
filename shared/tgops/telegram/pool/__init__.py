"""The MTProto account pool: one asyncio process drives many Telethon accounts, within Telegram's limits.

Split by responsibility:
- `selection`: which account a call tries next, and when its proxy's throttle slot frees;
- `gate`: the account's lock, its proxy's rest and throttle slot, its claim in Postgres;
- `clients`: the connected clients, kept only while this process owns the account's lock;
- `failures`: what an error means for the account (the table in tgops.telegram.errors);
- `calls`: MtprotoPool, tying them together within a deadline per mode.
The Telethon requests behind the lookups live in tgops.telegram.lookups.
Worker-only (imports Telethon).
"""

from tgops.telegram.pool.calls import ACCOUNT_UNAVAILABLE, DEADLINE_EXCEEDED, MtprotoPool
from tgops.telegram.pool.failures import Operation
from tgops.telegram.pool.metrics import PoolMetrics
from tgops.telegram.pool.selection import (
    CANDIDATE_REFRESH_SEC,
    NO_AVAILABLE_ACCOUNTS,
    THROTTLE_SLOT_UNAVAILABLE,
    Mode,
)

__all__ = [
    "ACCOUNT_UNAVAILABLE",
    "CANDIDATE_REFRESH_SEC",
    "DEADLINE_EXCEEDED",
    "NO_AVAILABLE_ACCOUNTS",
    "THROTTLE_SLOT_UNAVAILABLE",
    "Mode",
    "MtprotoPool",
    "Operation",
    "PoolMetrics",
]
