"""Queueing a broadcast job, at most once per client `Idempotency-Key`.

A client that timed out and retries must not post to every group twice. With a key, the first
request claims it in Redis (`pending`), queues the job, then marks it `queued`; a retry with the same
key and the same request gets the first job's id back and queues nothing.

The pending claim lives as long as a queued one (24 h): if the mark fails or the process dies after
the send, the job may well be queued, so a retry is refused as "still being queued" rather than
queueing a second broadcast. Only a send known to have failed frees the key, and only while the key
still holds this request's own claim (a token-checked release).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgops.broadcast.jobs import QUEUE, BroadcastJob
from tgops.cache import keys
from tgops.cache.errors import CacheError
from tgops.cache.scripts import script
from tgops.messaging.envelopes import encode

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.messaging.backend import QueueSender

QUEUED_TTL_SEC = 24 * 3600
PENDING_TTL_SEC = QUEUED_TTL_SEC  # outlives the send: a claim whose outcome is unknown refuses retries
SCOPE = "send_messages"


class IdempotencyConflict(Exception):
    """The key was used for another request, or its first request is still being queued."""


class IdempotencyUnavailable(Exception):
    """Redis cannot hold the key now, so the at-most-once promise cannot be kept."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    replayed: bool  # True: an earlier request with this key queued the job


def fingerprint(job: BroadcastJob) -> str:
    """What makes two requests the same broadcast (not the job id or time they were given)."""
    request = job.model_dump_json(include={"content", "buttons", "chat_ids"})
    return hashlib.sha256(request.encode()).hexdigest()


async def submit(
    job: BroadcastJob, queues: QueueSender, redis: RedisClient | None, idempotency_key: str | None = None
) -> Submitted:
    """Queue `job`; with an idempotency key (and `redis` to hold it), at most once per key."""
    if idempotency_key is None:
        await queues.send(QUEUE, encode(job))
        return Submitted(job.job_id, replayed=False)
    if redis is None:
        raise IdempotencyUnavailable("no Redis to hold the key")

    key = keys.idempotency(SCOPE, job.api_key_id or 0, idempotency_key)
    request = fingerprint(job)
    claim = f"pending:{request}:{job.job_id}"
    try:
        claimed = await redis.set(key, claim, nx=True, ex=PENDING_TTL_SEC)
        if not claimed:
            return _earlier(await redis.get(key), request)
    except CacheError as error:
        raise IdempotencyUnavailable(str(error)) from error

    try:
        await queues.send(QUEUE, encode(job))
    except Exception:
        await _release(redis, key, claim)
        raise
    with contextlib.suppress(CacheError):  # queued all the same; the pending claim still refuses a retry
        queued = f"queued:{request}:{job.job_id}"
        await script("claim_replace").run(redis, [key], [claim, queued, QUEUED_TTL_SEC * 1000])
    return Submitted(job.job_id, replayed=False)


def _earlier(stored: str | None, request: str) -> Submitted:
    if stored is None:  # the claim expired between our SET and GET
        raise IdempotencyConflict("the first request with this Idempotency-Key is still being queued; retry")
    state, stored_request, job_id = stored.split(":", 2)
    if stored_request != request:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
    if state != "queued":
        raise IdempotencyConflict("the first request with this Idempotency-Key is still being queued; retry")
    return Submitted(job_id, replayed=True)


async def _release(redis: RedisClient, key: str, claim: str) -> None:
    """Free the key for a retry, unless it no longer holds this request's claim."""
    with contextlib.suppress(CacheError):  # the client sees the send fail; its retry meets a conflict
        await script("lock_release").run(redis, [key], [claim])
