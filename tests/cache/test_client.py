"""One contract, both clients (redis-py and Upstash REST), against a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.cache.conftest import CLIENT_KINDS, UPSTASH_TOKEN, client_at
from tests.fakes.upstash_rest import UpstashRestShim
from tgops.cache.client import RedisClient, RedisPyClient, UpstashClient, create_redis
from tgops.cache.errors import NoScriptError, RedisCommandError, RedisUnavailable
from tgops.cache.scripts import LuaScript, script
from tgops.config import Settings, SettingsError
from tgops.local.services import free_port


class ReplyDroppingProxy:
    """A TCP proxy in front of the test Redis that loses one reply, as a dropped connection does.

    The first command that is one of `verbs` is forwarded and run by Redis; its reply is thrown away and the
    client's connection closed before it arrives. Everything else, later connections included, passes.
    """

    def __init__(self, redis_url: str, *verbs: str) -> None:
        address = urlsplit(redis_url)
        self._upstream = (address.hostname, address.port)
        self._path = address.path
        self._verbs = [f"\r\n{verb}\r\n".encode() for verb in verbs]
        self._armed = True
        self._dropping = False
        self.dropped = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._path}"

    async def __aexit__(self, *_) -> None:
        self._server.close()

    async def _serve(self, client_reader, client_writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)

        async def to_redis() -> None:
            while data := await client_reader.read(65536):
                if self._armed and any(verb in data.upper() for verb in self._verbs):
                    self._armed, self._dropping = False, True
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def to_client() -> None:
            while data := await upstream_reader.read(65536):
                if self._dropping:  # the command ran; its answer is lost with the connection
                    self._dropping = False
                    self.dropped.set()
                    return
                client_writer.write(data)
                await client_writer.drain()

        forward = asyncio.ensure_future(to_redis())
        try:
            await to_client()
        finally:
            forward.cancel()
            client_writer.close()
            upstream_writer.close()


RETURN_TYPES = LuaScript("return_types", (Path(__file__).parent / "return_types.lua").read_text())


def flush_scripts(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as admin:
        admin.script_flush()


async def test_get_returns_what_set_wrote(client: RedisClient) -> None:
    assert await client.get("greeting") is None
    assert await client.set("greeting", "héllo ✓") is True
    assert await client.get("greeting") == "héllo ✓"


async def test_set_nx_writes_only_when_the_key_is_absent(client: RedisClient) -> None:
    assert await client.set("claim", "first", nx=True) is True
    assert await client.set("claim", "second", nx=True) is False
    assert await client.get("claim") == "first"


async def test_set_with_ex_or_px_gives_the_key_that_ttl(client: RedisClient) -> None:
    await client.set("in-seconds", "v", ex=100)
    await client.set("in-millis", "v", px=5000)
    assert 5000 < await client.pttl("in-seconds") <= 100_000
    assert 0 < await client.pttl("in-millis") <= 5000


async def test_pttl_tells_a_missing_key_from_one_without_ttl(client: RedisClient) -> None:
    assert await client.pttl("missing") == -2
    await client.set("forever", "v")
    assert await client.pttl("forever") == -1


async def test_delete_counts_the_keys_it_removed(client: RedisClient) -> None:
    await client.set("a", "1")
    await client.set("b", "2")
    assert await client.delete("a", "b", "missing") == 2
    assert await client.get("a") is None
    assert await client.delete() == 0


async def test_incr_counts_up_from_zero(client: RedisClient) -> None:
    assert await client.incr("counter") == 1
    assert await client.incr("counter") == 2
    assert await client.get("counter") == "2"


async def test_incr_on_text_raises_a_command_error(client: RedisClient) -> None:
    await client.set("text", "not a number")
    with pytest.raises(RedisCommandError):
        await client.incr("text")


async def test_expire_sets_a_ttl_on_existing_keys_only(client: RedisClient) -> None:
    await client.set("k", "v")
    assert await client.expire("k", 100) is True
    assert 0 < await client.pttl("k") <= 100_000
    assert await client.expire("missing", 100) is False


async def test_script_load_returns_the_locally_computed_sha(client: RedisClient) -> None:
    lock_release = script("lock_release")
    assert await client.script_load(lock_release.source) == lock_release.sha


async def test_evalsha_returns_integers_strings_lists_and_nil(client: RedisClient) -> None:
    await client.script_load(RETURN_TYPES.source)
    assert await client.evalsha(RETURN_TYPES.sha, ["a-key"], ["héllo", 41]) == [1, "a-key", "héllo", 42]
    assert await client.evalsha(RETURN_TYPES.sha, [], []) is None


async def test_a_lua_script_loads_itself_again_after_script_flush(
    client: RedisClient, redis_url: str
) -> None:
    await client.script_load(RETURN_TYPES.source)
    flush_scripts(redis_url)
    with pytest.raises(NoScriptError):
        await client.evalsha(RETURN_TYPES.sha, [], [])
    assert await RETURN_TYPES.run(client, ["a-key"], ["x", 1]) == [1, "a-key", "x", 2]


async def test_ping(client: RedisClient) -> None:
    assert await client.ping() is True


@pytest.mark.parametrize("kind", CLIENT_KINDS)
async def test_a_refused_connection_raises_unavailable(kind: str) -> None:
    client = client_at(kind, f"127.0.0.1:{free_port()}")
    with pytest.raises(RedisUnavailable):
        await client.get("k")
    await client.aclose()


@pytest.mark.parametrize("kind", CLIENT_KINDS)
async def test_a_server_that_never_answers_raises_unavailable(kind: str, silent_server: str) -> None:
    client = client_at(kind, silent_server, timeout_sec=0.3)
    with pytest.raises(RedisUnavailable):
        await client.ping()
    await client.aclose()


async def test_upstash_with_a_wrong_token_raises_unavailable(upstash_shim: UpstashRestShim) -> None:
    client = UpstashClient(upstash_shim.url, "wrong-token")
    with pytest.raises(RedisUnavailable, match="WRONGPASS"):
        await client.get("k")
    await client.aclose()


async def test_upstash_answering_with_an_error_page_raises_unavailable(upstash_shim: UpstashRestShim) -> None:
    client = UpstashClient(upstash_shim.url, UPSTASH_TOKEN)
    upstash_shim.outage = True
    with pytest.raises(RedisUnavailable):
        await client.get("k")
    await client.aclose()


async def test_create_redis_prefers_upstash_when_its_url_and_token_are_set(redis_url: str) -> None:
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        upstash_redis_rest_url="https://example.upstash.io",
        upstash_redis_rest_token=UPSTASH_TOKEN,
    )
    client = create_redis(settings)
    assert isinstance(client, UpstashClient)
    await client.aclose()


async def test_create_redis_uses_redis_py_for_a_redis_url(redis_url: str) -> None:
    client = create_redis(Settings(_env_file=None, redis_url=redis_url, upstash_redis_rest_url=None))
    assert isinstance(client, RedisPyClient)
    await client.aclose()


def test_create_redis_without_any_redis_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="TGOPS_REDIS_URL"):
        create_redis(Settings(_env_file=None, redis_url=None, upstash_redis_rest_url=None))


async def test_redis_py_sends_concurrent_commands_as_one_pipeline_each_with_its_own_answer(
    redis_url: str,
) -> None:
    client = RedisPyClient(redis_url)
    await client.set("counter", "text")  # opens the one connection the pipeline then reuses
    with redis.Redis.from_url(redis_url) as admin:
        connections_before = admin.info("stats")["total_connections_received"]
        results = await asyncio.gather(
            *(client.set("claimed", "1", nx=True, ex=60) for _ in range(50)),
            client.incr("counter"),
            client.evalsha("0" * 40, [], []),
            client.get("claimed"),
            return_exceptions=True,
        )
        connections_opened = admin.info("stats")["total_connections_received"] - connections_before
    await client.aclose()

    claims, (incr_error, script_error, value) = results[:50], results[50:]
    assert claims.count(True) == 1 and claims.count(False) == 49
    assert isinstance(incr_error, RedisCommandError)
    assert isinstance(script_error, NoScriptError)
    assert value == "1"
    assert connections_opened == 0  # one command at a time would have opened one connection each


async def test_redis_py_fails_every_command_of_a_pipeline_whose_connection_is_refused() -> None:
    client = RedisPyClient(f"redis://127.0.0.1:{free_port()}/0", timeout_sec=1)
    results = await asyncio.gather(*(client.get(f"k{n}") for n in range(5)), return_exceptions=True)
    await client.aclose()

    assert all(isinstance(result, RedisUnavailable) for result in results), results


async def test_redis_py_answers_the_others_when_one_caller_is_cancelled(redis_url: str) -> None:
    client = RedisPyClient(redis_url)
    cancelled = asyncio.ensure_future(client.set("a", "1"))
    kept = asyncio.ensure_future(client.set("b", "2"))
    await asyncio.sleep(0)
    cancelled.cancel()

    assert await asyncio.wait_for(kept, 5) is True
    assert await client.get("b") == "2"
    await client.aclose()


@pytest.mark.parametrize("verb", ["INCRBY", "EVALSHA"])  # redis-py sends INCR as INCRBY 1
async def test_a_command_whose_reply_was_lost_is_not_sent_again(redis_url, verb):
    """A replayed INCR counts twice; a replayed script runs twice. Neither may be resent blindly."""
    counter = script("rate_limit")
    with redis.Redis.from_url(redis_url) as direct:
        direct.script_load(counter.source)  # so the EVALSHA that is dropped is the one that counts
    async with ReplyDroppingProxy(redis_url, verb) as url:
        client = RedisPyClient(url)
        try:
            await client.ping()
            with pytest.raises(RedisUnavailable):
                await (
                    client.incr("hits") if verb == "INCRBY" else counter.run(client, ["hits"], [10, 60000])
                )
        finally:
            await client.aclose()

    with redis.Redis.from_url(redis_url, decode_responses=True) as direct:
        assert direct.get("hits") == "1"


async def test_an_idempotent_command_whose_connection_dropped_is_retried(redis_url):
    async with ReplyDroppingProxy(redis_url, "GET") as url:
        client = RedisPyClient(url)
        try:
            await client.set("greeting", "hello")
            assert await client.get("greeting") == "hello"
        finally:
            await client.aclose()
