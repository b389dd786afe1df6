"""Runtime switches: flipped from the dashboard, kept in Redis, obeyed by the workers within seconds.

Each switch has a default used while Redis holds no value for it. Readers keep what they read for
READ_CACHE_SEC, so a busy consumer asks Redis once every few seconds, not once per message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgops.cache import keys

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.config import Settings
    from tgops.messaging.sqs import Received
    from tgops.runtime import Runtime

log = logging.getLogger(__name__)
READ_CACHE_SEC = 2.0
PAUSED_RECHECK_SEC = 60


@dataclass(frozen=True)
class Switch:
    name: str
    label: str
    description: str


PAUSE_BROADCASTS = Switch("pause_broadcasts", "Pause broadcasts", "the broadcaster sends nothing; jobs wait")
PAUSE_INSPECTION = Switch(
    "pause_inspection", "Pause inspection", "link validation waits; orders stay validating"
)
PAUSE_LEASING = Switch("pause_provider_leasing", "Pause provider leasing", "task pulls answer no tasks")
SETUP_ENABLED = Switch("setup_enabled", "Account setup enabled", "the setup dispatcher queues setup tasks")
SWITCHES = (PAUSE_BROADCASTS, PAUSE_INSPECTION, PAUSE_LEASING, SETUP_ENABLED)
BY_NAME = {switch.name: switch for switch in SWITCHES}

_read: dict[tuple[int, str], tuple[float, bool]] = {}


def default(switch: Switch, settings: Settings) -> bool:
    if switch is SETUP_ENABLED:
        return bool(getattr(settings, "setup_enabled", False))
    return False


async def is_on(redis: RedisClient, switch: Switch, settings: Settings) -> bool:
    # Cached per Redis client: another client (a test's, another deployment's) reads for itself.
    cache_key = (id(redis), switch.name)
    cached = _read.get(cache_key)
    if cached and time.monotonic() - cached[0] < READ_CACHE_SEC:
        return cached[1]
    stored = await redis.get(keys.switch(switch.name))
    value = default(switch, settings) if stored is None else stored == "1"
    _read[cache_key] = (time.monotonic(), value)
    return value


async def states(redis: RedisClient, settings: Settings) -> dict[str, bool]:
    """Every switch as stored now (no cache: what the dashboard shows)."""
    result = {}
    for switch in SWITCHES:
        stored = await redis.get(keys.switch(switch.name))
        result[switch.name] = default(switch, settings) if stored is None else stored == "1"
    return result


async def flip(redis: RedisClient, switch: Switch, on: bool) -> None:
    await redis.set(keys.switch(switch.name), "1" if on else "0")
    _read.pop((id(redis), switch.name), None)


async def held_while_paused(runtime: Runtime, switch: Switch, queue: str, message: Received) -> bool:
    """True when `switch` pauses this work. The message is then sent again, due in a minute, and the
    caller returns, so a pause spends none of the message's receives (three would send it to its DLQ)."""
    if not await is_on(runtime.redis(), switch, runtime.settings):
        return False
    await runtime.queues().send(queue, message.body, delay_sec=PAUSED_RECHECK_SEC)
    log.info("%s is paused: message %s comes back in %ds", queue, message.message_id, PAUSED_RECHECK_SEC,
             extra={"queue": queue, "switch": switch.name})  # fmt: skip
    return True
