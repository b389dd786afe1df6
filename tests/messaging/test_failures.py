import psycopg

from tgops.config import get_settings
from tgops.local.services import free_port
from tgops.messaging.failures import MAX_REASON_CHARS, record_final_failure


def failures(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT queue, message_id, receive_count, reason FROM queue_message_failures ORDER BY message_id"
        ).fetchall()


def test_the_last_reason_of_each_message_is_kept(settings, database_url):
    record_final_failure("dm_queue", "m-1", 3, "RuntimeError: first")
    record_final_failure("dm_queue", "m-1", 4, "BadRequest: chat not found")
    record_final_failure("tgms_queue", "m-2", 3, "x" * (MAX_REASON_CHARS + 50))

    rows = failures(database_url)

    assert rows[0] == ("dm_queue", "m-1", 4, "BadRequest: chat not found")
    assert rows[1][:3] == ("tgms_queue", "m-2", 3) and len(rows[1][3]) == MAX_REASON_CHARS


def test_an_unreachable_database_never_breaks_the_consumer(settings, monkeypatch):
    monkeypatch.setenv("TGOPS_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    get_settings.cache_clear()

    assert record_final_failure("dm_queue", "m-1", 3, "RuntimeError: boom") is None
