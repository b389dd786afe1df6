"""Two Redis clients behind one narrow protocol: redis-py for workers and local runs, Upstash REST for Lambda.

Values are str. Both turn driver errors into tgops.cache.errors. Each driver is imported when its client is
built, so a Lambda on Upstash does not pay redis-py's import on a cold start, nor a worker upstash-redis's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tgops.cache.errors import NoScriptError, RedisCommandError, RedisUnavailable
from tgops.config import SettingsError

if TYPE_CHECKING:
    from tgops.config import Settings

MAX_CONNECTIONS = 1000
DEFAULT_TIMEOUT_SEC = 5.0

# Upstash answers these as command errors, yet each means the database will not serve us at all.
UPSTASH_UNAVAILABLE_PREFIXES = (
    "WRONGPASS",
    "NOAUTH",
    "ERR max daily request limit exceeded",
    "ERR max requests limit exceeded",
)


class RedisClient(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(
        self, key: str, value: str | int, *, nx: bool = False, ex: int | None = None, px: int | None = None
    ) -> bool:
        """True when the value was written (False when `nx` found the key already there)."""

    async def delete(self, *keys: str) -> int: ...

    async def pttl(self, key: str) -> int:
        """Milliseconds left; -1 when the key has no TTL, -2 when it does not exist."""

    async def incr(self, key: str) -> int: ...

    async def expire(self, key: str, seconds: int) -> bool: ...

    async def evalsha(self, sha: str, keys: list[str], args: list) -> Any: ...

    async def script_load(self, script: str) -> str: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class _DriverClient:
    """The commands both drivers spell alike; each subclass sends them in `_command`, translating errors."""

    async def _command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def get(self, key: str) -> str | None:
        return await self._command("get", key)

    async def set(
        self, key: str, value: str | int, *, nx: bool = False, ex: int | None = None, px: int | None = None
    ) -> bool:
        return bool(await self._command("set", key, value, nx=nx, ex=ex, px=px))

    async def delete(self, *keys: str) -> int:
        return await self._command("delete", *keys) if keys else 0

    async def pttl(self, key: str) -> int:
        return await self._command("pttl", key)

    async def incr(self, key: str) -> int:
        return await self._command("incr", key)

    async def expire(self, key: str, seconds: int) -> bool:
        return bool(await self._command("expire", key, seconds))

    async def script_load(self, script: str) -> str:
        return await self._command("script_load", script)


# Running one of these twice leaves Redis as running it once did; INCR, SET NX and scripts do not.
IDEMPOTENT_COMMANDS = frozenset({"get", "pttl", "ping", "script_load", "delete", "expire"})


@dataclass(frozen=True)
class _Pending:
    name: str
    args: tuple
    kwargs: dict
    answer: asyncio.Future

    @property
    def idempotent(self) -> bool:
        return self.name in IDEMPOTENT_COMMANDS or (self.name == "set" and not self.kwargs.get("nx"))


class RedisPyClient(_DriverClient):
    """redis-py over a pooled TCP connection (workers, local runs)."""

    def __init__(
        self, url: str, *, timeout_sec: float = DEFAULT_TIMEOUT_SEC, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        from redis.asyncio import ConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError

        # No retry inside the driver: it would resend any command whose connection dropped, and one
        # that Redis ran before the drop would run twice (a SET NX then answers "exists", an INCR
        # counts twice). `_send` resends only the commands that running twice cannot change.
        retry = Retry(NoBackoff(), 0, supported_errors=(ConnectionError,))
        # redis-py 8 caps a pool at 100 connections and fails the next command; a worker driving many
        # accounts at once needs more. (A BlockingConnectionPool waits instead, but bench/ingress.py
        # measured the webhook path at 1,369 requests/s with it against 1,944 with this one.)
        pool = ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            decode_responses=True,
            socket_timeout=timeout_sec,
            socket_connect_timeout=timeout_sec,
            retry=retry,
        )
        self._redis = Redis.from_pool(pool)  # owns the pool: aclose() closes its connections
        # Commands asked for in one turn of the event loop, sent together at the end of the turn.
        self._batch: list[_Pending] = []
        self._sending: set[asyncio.Task] = set()

    async def _command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        from redis import exceptions

        loop = asyncio.get_running_loop()
        if not self._batch:
            loop.call_soon(self._send_batch)
        pending = _Pending(name, args, kwargs, loop.create_future())
        self._batch.append(pending)
        try:
            return await pending.answer
        except exceptions.NoScriptError as error:
            raise NoScriptError(str(error)) from error
        except (exceptions.ConnectionError, exceptions.TimeoutError) as error:
            raise RedisUnavailable(str(error) or type(error).__name__) from error
        except exceptions.RedisError as error:
            raise RedisCommandError(str(error)) from error

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        from redis.exceptions import ConnectionError

        try:
            try:
                results = await self._results(batch)
            except ConnectionError as error:
                results = await self._resend_idempotent(batch, error)
        except asyncio.CancelledError:
            for pending in batch:
                pending.answer.cancel()
            raise
        except Exception as error:  # noqa: BLE001 -- each caller gets the error as its answer
            results = [error] * len(batch)
        for pending, result in zip(batch, results):
            if pending.answer.done():  # its caller was cancelled
                continue
            if isinstance(result, Exception):
                pending.answer.set_exception(result)
            else:
                pending.answer.set_result(result)

    async def _resend_idempotent(self, batch: list[_Pending], error: Exception) -> list[Any]:
        """Once more, on a new connection, the commands of a batch whose connection dropped that are
        safe to run twice; the others answer the error (they may have run)."""
        again = [pending for pending in batch if pending.idempotent]
        if not again:
            return [error] * len(batch)
        try:
            resent = dict(zip(map(id, again), await self._results(again)))
        except Exception as second:  # noqa: BLE001 -- each caller gets the error as its answer
            resent = dict.fromkeys(map(id, again), second)
        return [resent.get(id(pending), error) for pending in batch]

    async def _results(self, batch: list[_Pending]) -> list[Any]:
        """One command as it is; several as one pipeline: one write, one read and one pooled connection
        instead of a round trip each (redis-py has no automatic pipelining). A command's error is its
        result, so each caller gets its own answer."""
        if len(batch) == 1:
            return [await getattr(self._redis, batch[0].name)(*batch[0].args, **batch[0].kwargs)]
        pipeline = self._redis.pipeline(transaction=False)
        for pending in batch:
            getattr(pipeline, pending.name)(*pending.args, **pending.kwargs)
        return await pipeline.execute(raise_on_error=False)

    async def evalsha(self, sha: str, keys: list[str], args: list) -> Any:
        return await self._command("evalsha", sha, len(keys), *keys, *args)

    async def ping(self) -> bool:
        return bool(await self._command("ping"))

    async def aclose(self) -> None:
        await self._redis.aclose()


class UpstashClient(_DriverClient):
    """upstash-redis over HTTPS: no connection to hold, so it suits Lambda."""

    def __init__(self, url: str, token: str, *, timeout_sec: float = DEFAULT_TIMEOUT_SEC) -> None:
        from upstash_redis.asyncio import Redis

        # No retries inside the driver, for the same reason as RedisPyClient; the driver has no timeout
        # of its own, hence `_command`'s.
        self._redis = Redis(url, token, rest_retries=0, allow_telemetry=False)
        self._timeout_sec = timeout_sec

    async def _command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        import httpx
        from upstash_redis.errors import UpstashError

        try:
            async with asyncio.timeout(self._timeout_sec):
                return await getattr(self._redis, name)(*args, **kwargs)
        except UpstashError as error:
            raise _upstash_error(str(error)) from error
        # A reply that is not JSON comes from something in front of Upstash (a 502 page, a proxy).
        except (httpx.HTTPError, json.JSONDecodeError, TimeoutError) as error:
            raise RedisUnavailable(str(error) or type(error).__name__) from error

    async def evalsha(self, sha: str, keys: list[str], args: list) -> Any:
        return await self._command("evalsha", sha, keys, args)

    async def ping(self) -> bool:
        return await self._command("ping") == "PONG"

    async def aclose(self) -> None:
        await self._redis.close()


def _upstash_error(message: str) -> Exception:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith(UPSTASH_UNAVAILABLE_PREFIXES):
        return RedisUnavailable(message)
    return RedisCommandError(message)


def create_redis(settings: Settings) -> RedisClient:
    """Upstash when its REST URL and token are set, else redis-py on TGOPS_REDIS_URL."""
    if settings.uses_upstash:
        token = settings.upstash_redis_rest_token.get_secret_value()
        return UpstashClient(settings.upstash_redis_rest_url, token)
    if settings.redis_url:
        return RedisPyClient(settings.redis_url)
    raise SettingsError(
        "TGOPS_REDIS_URL is not set (nor TGOPS_UPSTASH_REDIS_REST_URL with TGOPS_UPSTASH_REDIS_REST_TOKEN)"
    )
