"""Why each queue message was given up on, kept in Postgres for the DLQ view.

Consumers call `record_final_failure` when a message fails at its last receive (SQS moves it to its
DLQ next). The call is synchronous, on a connection of its own, because it runs both inside a Lambda
batch (no event loop running) and, through a thread, beside a worker's loop; final failures are rare
enough that a pool would only hold connections for nothing. It never raises: a reason that cannot be
stored is logged, and the message still reaches its DLQ.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SEC = 3
MAX_REASON_CHARS = 2000


def record_final_failure(queue: str, message_id: str, receive_count: int, reason: str) -> None:
    try:
        _record(queue, message_id, receive_count, reason[:MAX_REASON_CHARS])
    except Exception as error:  # noqa: BLE001 -- never let bookkeeping change what happens to the message
        log.warning("could not record why message %s of %s failed (%s): %s", message_id, queue, reason, error)


def _record(queue: str, message_id: str, receive_count: int, reason: str) -> None:
    import psycopg

    from tgops.config import get_settings
    from tgops.db.queries import query

    url = get_settings().database_url
    if not url:
        log.info("no database configured: the failure reason of %s is only logged", message_id)
        return
    params = {"queue": queue, "message_id": message_id, "receive_count": receive_count, "reason": reason}
    # prepare_threshold=None: Supabase's transaction pooler cannot keep prepared statements.
    with psycopg.connect(
        url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SEC, prepare_threshold=None
    ) as conn:
        conn.execute(query("record_queue_failure"), params)
