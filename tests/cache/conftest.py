"""Both Redis clients against the test's real Redis: redis-py directly, Upstash through the REST shim."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.upstash_rest import UpstashRestShim
from tgops.cache.client import RedisClient, RedisPyClient, UpstashClient, create_redis
from tgops.config import Settings

UPSTASH_TOKEN = "test-upstash-token"
CLIENT_KINDS = ["redis-py", "upstash"]


@pytest.fixture
def upstash_shim(redis_url: str) -> Iterator[UpstashRestShim]:
    shim = UpstashRestShim(redis_url, UPSTASH_TOKEN)
    shim.start()
    yield shim
    shim.stop()


def settings_for(kind: str, redis_url: str, shim: UpstashRestShim) -> Settings:
    if kind == "upstash":
        return Settings(
            _env_file=None,
            redis_url=None,
            upstash_redis_rest_url=shim.url,
            upstash_redis_rest_token=UPSTASH_TOKEN,
        )
    return Settings(_env_file=None, redis_url=redis_url, upstash_redis_rest_url=None)


@pytest.fixture(params=CLIENT_KINDS)
async def client(
    request: pytest.FixtureRequest, redis_url: str, upstash_shim: UpstashRestShim
) -> AsyncIterator[RedisClient]:
    redis = create_redis(settings_for(request.param, redis_url, upstash_shim))
    yield redis
    await redis.aclose()


def client_at(kind: str, address: str, *, timeout_sec: float = 5.0) -> RedisClient:
    """A client aimed at `address` ("host:port"), whatever listens there."""
    if kind == "upstash":
        return UpstashClient(f"http://{address}", UPSTASH_TOKEN, timeout_sec=timeout_sec)
    return RedisPyClient(f"redis://{address}/0", timeout_sec=timeout_sec)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog does) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"
