"""The one narrow wrapper every database call goes through.

It takes a pooled connection (psycopg 3 async pool, `dict_row`), runs a named query from
db/queries/*.sql and turns driver errors into tgops.db.errors. Each connection is checked when taken from
the pool (one that the server closed while a Lambda was frozen is replaced, not handed out) and carries
its role's timeouts, so no statement or lock wait holds a request or a job past its budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tgops.db.errors import ConflictError, DatabaseError, DatabaseUnavailable
from tgops.db.queries import query

if TYPE_CHECKING:
    from tgops.config import Settings

Row = dict[str, Any]
Role = Literal["api", "worker"]


@dataclass(frozen=True)
class SessionTimeouts:
    """Postgres's statement_timeout, lock_timeout and idle_in_transaction_session_timeout; 0 means none."""

    statement_ms: int
    lock_ms: int
    idle_in_transaction_ms: int = 0

    @classmethod
    def for_role(cls, settings: Settings, role: Role) -> SessionTimeouts:
        return cls(
            statement_ms=getattr(settings, f"database_{role}_statement_timeout_ms"),
            lock_ms=getattr(settings, f"database_{role}_lock_timeout_ms"),
            idle_in_transaction_ms=settings.database_idle_in_transaction_timeout_ms,
        )

    def as_params(self) -> dict[str, str]:
        return {
            "statement_ms": str(self.statement_ms),
            "lock_ms": str(self.lock_ms),
            "idle_in_transaction_ms": str(self.idle_in_transaction_ms),
        }


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    try:
        yield
    except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as error:
        raise ConflictError(_first_line(error)) from error
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise DatabaseUnavailable(_first_line(error)) from error
    except psycopg.Error as error:
        raise DatabaseError(_first_line(error)) from error


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class Session:
    """Named queries on one connection (inside a transaction when opened by `Database.transaction`)."""

    def __init__(self, connection: psycopg.AsyncConnection) -> None:
        self._connection = connection

    async def fetch_one(self, name: str, params: Mapping[str, Any] | None = None) -> Row | None:
        async with translated_errors():
            cursor = await self._connection.execute(query(name), params or {})
            return await cursor.fetchone()

    async def fetch_all(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async with translated_errors():
            cursor = await self._connection.execute(query(name), params or {})
            return await cursor.fetchall()

    async def execute(self, name: str, params: Mapping[str, Any] | None = None) -> int:
        async with translated_errors():
            cursor = await self._connection.execute(query(name), params or {})
            return cursor.rowcount

    async def execute_many(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        async with translated_errors(), self._connection.cursor() as cursor:
            await cursor.executemany(query(name), list(rows))


class Database:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        transaction_pooler: bool = False,
        timeout_sec: float = 5.0,
        timeouts: SessionTimeouts | None = None,
    ) -> Database:
        # A transaction pooler (Supabase :6543) hands each transaction a different backend, so
        # server-side prepared statements would vanish between calls: never prepare there. For the same
        # reason a session setting would land on whichever backend ran it: behind the pooler the
        # timeouts belong on the database role (ALTER ROLE ... SET statement_timeout = ...).
        kwargs: dict[str, Any] = {"row_factory": dict_row, "autocommit": True}
        if transaction_pooler:
            kwargs["prepare_threshold"] = None
        configure = None
        if timeouts is not None and not transaction_pooler:
            params = timeouts.as_params()

            async def configure(connection: psycopg.AsyncConnection) -> None:
                await connection.execute(query("set_session_timeouts"), params)

        pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            timeout=timeout_sec,
            open=False,
            configure=configure,
            check=AsyncConnectionPool.check_connection,
        )
        async with translated_errors():
            await pool.open(wait=min_size > 0, timeout=timeout_sec)
        return cls(pool)

    @classmethod
    async def from_settings(cls, settings: Settings, role: Role = "worker") -> Database:
        """API requests (role "api") give up on a statement or a lock sooner than workers and jobs."""
        if not settings.database_url:
            raise DatabaseUnavailable("TGOPS_DATABASE_URL is not set")
        return await cls.connect(
            settings.database_url,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
            transaction_pooler=settings.uses_transaction_pooler,
            timeout_sec=settings.database_connect_timeout_sec,
            timeouts=SessionTimeouts.for_role(settings, role),
        )

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """One pooled connection in autocommit mode: each statement commits on its own."""
        async with translated_errors(), self._pool.connection() as connection:
            yield Session(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One pooled connection inside one transaction: all or nothing."""
        async with translated_errors(), self._pool.connection() as connection, connection.transaction():
            yield Session(connection)

    async def fetch_one(self, name: str, params: Mapping[str, Any] | None = None) -> Row | None:
        async with self.session() as session:
            return await session.fetch_one(name, params)

    async def fetch_all(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async with self.session() as session:
            return await session.fetch_all(name, params)

    async def execute(self, name: str, params: Mapping[str, Any] | None = None) -> int:
        async with self.session() as session:
            return await session.execute(name, params)

    async def ping(self) -> bool:
        row = await self.fetch_one("ping")
        return bool(row and row["ok"] == 1)
