import asyncio

import psycopg
import pytest

from tgops.db import queries
from tgops.db.database import Database, SessionTimeouts
from tgops.db.errors import ConflictError, DatabaseError, DatabaseUnavailable, QueryNotFound


def test_parse_queries_reads_named_blocks():
    parsed = queries.parse_queries("-- name: one\nSELECT 1;\n\n-- name: two\nSELECT 2;\n")
    assert parsed == {"one": "SELECT 1;", "two": "SELECT 2;"}


def test_parse_queries_refuses_duplicates_and_empty_bodies():
    with pytest.raises(ValueError, match="twice"):
        queries.parse_queries("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")
    with pytest.raises(ValueError, match="no SQL"):
        queries.parse_queries("-- name: one\n\n-- name: two\nSELECT 2;\n")


def test_unknown_query_name():
    with pytest.raises(QueryNotFound):
        queries.query("no_such_query")


async def test_ping_and_named_queries(db):
    assert await db.ping() is True
    row = await db.fetch_one("ping")
    assert row == {"ok": 1}


async def test_transaction_rolls_back_on_error(db, monkeypatch):
    monkeypatch.setitem(
        queries.all_queries(),
        "t_insert",
        "INSERT INTO webhook_dedupe (bot_id, update_id) VALUES (%(bot)s, %(update)s)",
    )
    monkeypatch.setitem(queries.all_queries(), "t_count", "SELECT count(*) AS n FROM webhook_dedupe")
    await db.execute("t_insert", {"bot": 1, "update": 1})
    with pytest.raises(ConflictError):
        async with db.transaction() as tx:
            await tx.execute("t_insert", {"bot": 1, "update": 2})
            await tx.execute("t_insert", {"bot": 1, "update": 1})
    assert (await db.fetch_one("t_count"))["n"] == 1


async def test_driver_errors_become_package_errors(db, monkeypatch):
    monkeypatch.setitem(queries.all_queries(), "t_bad", "SELECT * FROM no_such_table")
    with pytest.raises(DatabaseError) as raised:
        await db.fetch_all("t_bad")
    assert not isinstance(raised.value, (ConflictError, DatabaseUnavailable))


async def test_unreachable_database():
    with pytest.raises(DatabaseUnavailable):
        await Database.connect("postgresql://postgres@127.0.0.1:1/postgres", timeout_sec=1)


async def test_transaction_pooler_mode_disables_prepared_statements(database_url):
    database = await Database.connect(database_url, transaction_pooler=True)
    try:
        async with database.session() as session:
            assert session._connection.prepare_threshold is None
            for _ in range(10):
                assert await session.fetch_one("ping") == {"ok": 1}
    finally:
        await database.close()


LOCK_ONE_ROW = "SELECT update_id FROM webhook_dedupe WHERE bot_id = 1 FOR UPDATE"


@pytest.fixture
def locked_row(database_url, monkeypatch):
    """A webhook_dedupe row locked by another session for the whole test."""
    monkeypatch.setitem(queries.all_queries(), "t_lock_row", LOCK_ONE_ROW)
    with psycopg.connect(database_url) as holder:
        holder.execute("INSERT INTO webhook_dedupe (bot_id, update_id) VALUES (1, 1)")
        holder.commit()
        holder.execute(LOCK_ONE_ROW)
        yield
        holder.rollback()


async def wait_for_lock(database: Database) -> None:
    # The bound is a guard against waiting forever (the defect), not a latency assertion.
    await asyncio.wait_for(database.fetch_one("t_lock_row"), 20)


async def test_a_lock_wait_gives_up_after_the_lock_timeout(database_url, locked_row):
    database = await Database.connect(database_url, timeouts=SessionTimeouts(statement_ms=0, lock_ms=200))
    try:
        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            await wait_for_lock(database)
    finally:
        await database.close()


async def test_a_statement_gives_up_after_the_statement_timeout(database_url, locked_row):
    database = await Database.connect(database_url, timeouts=SessionTimeouts(statement_ms=200, lock_ms=0))
    try:
        with pytest.raises(DatabaseUnavailable, match="statement timeout"):
            await wait_for_lock(database)
    finally:
        await database.close()


async def test_api_connections_take_the_api_roles_timeouts(settings, locked_row):
    short = settings.model_copy(update={"database_api_lock_timeout_ms": 200})
    database = await Database.from_settings(short, role="api")
    try:
        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            await wait_for_lock(database)
    finally:
        await database.close()


def test_each_role_has_its_own_timeouts(settings):
    api, worker = SessionTimeouts.for_role(settings, "api"), SessionTimeouts.for_role(settings, "worker")

    assert api.statement_ms < worker.statement_ms and api.lock_ms < worker.lock_ms


async def test_a_pooled_connection_the_server_dropped_is_replaced_on_checkout(database_url, monkeypatch):
    """After a Lambda freeze the pool may hold a connection the server closed: the next call still works."""
    monkeypatch.setitem(queries.all_queries(), "t_backend_pid", "SELECT pg_backend_pid() AS pid")
    database = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        pid = (await database.fetch_one("t_backend_pid"))["pid"]
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

        assert await database.ping() is True
        assert (await database.fetch_one("t_backend_pid"))["pid"] != pid
    finally:
        await database.close()


def test_the_http_api_takes_the_api_roles_timeouts_and_workers_theirs(settings):
    from tgops.api.app import create_app
    from tgops.runtime import Runtime

    assert create_app().state.runtime.database_role == "api"
    assert Runtime(settings).database_role == "worker"
