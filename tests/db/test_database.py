import pytest

from tgops.db import queries
from tgops.db.database import Database
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
