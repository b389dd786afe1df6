"""Issue 16 item 7: a broadcast is queued at most once per Idempotency-Key, whatever fails after the send."""

from __future__ import annotations

import pytest

from tgops.broadcast import submit as submit_module
from tgops.broadcast.jobs import BroadcastJob, TextContent
from tgops.broadcast.submit import IdempotencyConflict, fingerprint, submit
from tgops.cache import keys
from tgops.cache.errors import RedisUnavailable
from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.sqs import InMemoryQueues

KEY = "client-key-1"


def job() -> BroadcastJob:
    return BroadcastJob(content=TextContent(type="text", text="hello"), api_key_id=7)


class MarkFails:
    """The real client, except that writing the final `queued` state fails (Redis dropped the reply)."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    async def set(self, key, value, **kwargs):
        if str(value).startswith("queued:"):
            raise RedisUnavailable("connection reset")
        return await self._client.set(key, value, **kwargs)

    async def evalsha(self, sha, keys_, args):
        if any(str(arg).startswith("queued:") for arg in args):
            raise RedisUnavailable("connection reset")
        return await self._client.evalsha(sha, keys_, args)


async def test_a_claim_whose_mark_failed_outlives_the_send_so_a_late_retry_queues_nothing(redis_client):
    queues = InMemoryQueues()
    first = await submit(job(), queues, MarkFails(redis_client), KEY)

    key = keys.idempotency(submit_module.SCOPE, 7, KEY)
    # The claim must last as long as a queued key would: a retry an hour later still finds it.
    assert await redis_client.pttl(key) > (submit_module.QUEUED_TTL_SEC - 60) * 1000
    with pytest.raises(IdempotencyConflict):
        await submit(job(), queues, redis_client, KEY)
    assert [message.body for message in queues.sent] == [queues.sent[0].body]
    assert first.replayed is False


async def test_a_failed_send_never_releases_a_claim_that_is_no_longer_its_own(redis_client):
    key = keys.idempotency(submit_module.SCOPE, 7, KEY)
    mine = job()

    class SlowThenDown:
        async def send(self, queue, body, **_):
            # While this send hung, our claim was lost and another request holds the key now.
            await redis_client.set(key, f"pending:{fingerprint(mine)}:someone-else", ex=3600)
            raise QueueUnavailable("timed out")

    with pytest.raises(QueueUnavailable):
        await submit(mine, SlowThenDown(), redis_client, KEY)

    assert await redis_client.get(key) == f"pending:{fingerprint(mine)}:someone-else"


async def test_a_send_that_failed_frees_its_own_claim_for_a_retry(redis_client):
    class Down:
        async def send(self, queue, body, **_):
            raise QueueUnavailable("endpoint down")

    with pytest.raises(QueueUnavailable):
        await submit(job(), Down(), redis_client, KEY)
    queues = InMemoryQueues()
    retried = await submit(job(), queues, redis_client, KEY)

    assert retried.replayed is False and len(queues.sent) == 1
    replay = await submit(job(), queues, redis_client, KEY)
    assert replay.replayed is True and replay.job_id == retried.job_id and len(queues.sent) == 1
