from tgops.config import get_settings
from tgops.local.services import free_port
from tgops.messaging.failures import MAX_REASON_CHARS, FailureLog


async def failures(db) -> list[tuple]:
    rows = await db.fetch_all(
        "queue_failures_for_messages", {"queue": "dm_queue", "message_ids": ["m-1"]}
    ) + await db.fetch_all("queue_failures_for_messages", {"queue": "tgms_queue", "message_ids": ["m-2"]})
    return [(row["message_id"], row["receive_count"], row["reason"]) for row in rows]


async def test_the_last_reason_of_each_message_is_kept_through_the_given_database(db):
    async def database():
        return db

    log = FailureLog(database)
    await log.record("dm_queue", "m-1", 3, "RuntimeError: first")
    await log.record("dm_queue", "m-1", 4, "BadRequest: chat not found")
    await log.record("tgms_queue", "m-2", 3, "x" * (MAX_REASON_CHARS + 50))

    rows = await failures(db)

    assert rows[0] == ("m-1", 4, "BadRequest: chat not found")
    assert rows[1][:2] == ("m-2", 3) and len(rows[1][2]) == MAX_REASON_CHARS


async def test_without_a_database_given_it_opens_one_from_the_settings(settings, db):
    log = FailureLog()
    try:
        await log.record("dm_queue", "m-1", 3, "RuntimeError: boom")
    finally:
        await log.close()

    assert await failures(db) == [("m-1", 3, "RuntimeError: boom")]


async def test_an_unreachable_database_never_breaks_the_consumer(settings, monkeypatch):
    monkeypatch.setenv("TGOPS_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    get_settings.cache_clear()
    log = FailureLog()
    try:
        assert await log.record("dm_queue", "m-1", 3, "RuntimeError: boom") is None
    finally:
        await log.close()
