-- The local queue backend of `tgops dev` (tgops.messaging.pg_queues.PgQueues): SQS's semantics on
-- two tables that PgQueues.ensure_queues() creates. Development only: no migration creates them, so
-- they never reach production's schema.
--
-- A message is visible when visible_at <= now(); otherwise it is in flight when it has been received
-- (it has a receipt handle) and delayed when it has not. Receiving gives it a new receipt handle, so
-- the previous one stops working, as SQS's do. queue is the physical name (`tgops-dm_queue.fifo`).

-- name: create_local_queue_tables
SELECT pg_advisory_xact_lock(29799, hashtext('local_queue_tables'));  -- two start-ups at once
CREATE TABLE IF NOT EXISTS local_queue_messages (
    seq                bigserial PRIMARY KEY,  -- send order; FIFO order within a group
    queue              text NOT NULL,
    message_id         text NOT NULL,          -- kept when the message moves to its DLQ, as in SQS
    body               text NOT NULL,
    group_id           text,
    dedup_id           text,
    sent_at            timestamptz NOT NULL DEFAULT now(),
    visible_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,   -- the queue's retention period
    receive_count      integer NOT NULL DEFAULT 0,
    first_received_at  timestamptz,
    receipt_handle     text UNIQUE
);
CREATE INDEX IF NOT EXISTS local_queue_messages_queue_seq ON local_queue_messages (queue, seq);
CREATE INDEX IF NOT EXISTS local_queue_messages_group
    ON local_queue_messages (queue, group_id, visible_at) WHERE group_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS local_queue_dedup (
    queue       text NOT NULL,
    dedup_id    text NOT NULL,
    message_id  text NOT NULL,
    expires_at  timestamptz NOT NULL,           -- end of the 5-minute deduplication interval
    PRIMARY KEY (queue, dedup_id)
);
ALTER TABLE local_queue_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE local_queue_dedup ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON local_queue_messages, local_queue_dedup FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON local_queue_messages, local_queue_dedup FROM authenticated;
    END IF;
END
$$;

-- name: delete_expired_local_messages
WITH expired_dedup AS (
    DELETE FROM local_queue_dedup WHERE expires_at <= now()
)
DELETE FROM local_queue_messages WHERE expires_at <= now();

-- name: send_local_message
INSERT INTO local_queue_messages (queue, message_id, body, visible_at, expires_at)
VALUES (
    %(queue)s, %(message_id)s, %(body)s,
    now() + make_interval(secs => %(delay_sec)s),
    now() + make_interval(secs => %(retention_sec)s)
);

-- name: send_local_fifo_message
-- Sends unless the deduplication id was used in this queue within the interval; returns the message
-- id only when it sent.
WITH fresh AS (
    INSERT INTO local_queue_dedup AS dedup (queue, dedup_id, message_id, expires_at)
    VALUES (%(queue)s, %(dedup_id)s, %(message_id)s, now() + make_interval(secs => %(dedup_window_sec)s))
    ON CONFLICT (queue, dedup_id) DO UPDATE
        SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at
        WHERE dedup.expires_at <= now()
    RETURNING message_id
)
INSERT INTO local_queue_messages (queue, message_id, body, group_id, dedup_id, visible_at, expires_at)
SELECT %(queue)s, message_id, %(body)s, %(group_id)s, %(dedup_id)s, now(),
       now() + make_interval(secs => %(retention_sec)s)
FROM fresh
RETURNING message_id;

-- name: local_dedup_message_id
SELECT message_id FROM local_queue_dedup WHERE queue = %(queue)s AND dedup_id = %(dedup_id)s;

-- name: lock_local_fifo_receives
-- Taken before a FIFO receive, in its transaction: the receive's next statement then sees every
-- group's messages as the previous receive left them, so no two receives hand out one group.
SELECT pg_advisory_xact_lock(29799, hashtext(%(queue)s));

-- name: receive_local_messages
-- Moves every visible message already received max_receive_count times to the DLQ (SQS's redrive),
-- then takes up to max_messages visible ones in send order (for FIFO: of groups with nothing in flight).
WITH to_dlq AS (
    UPDATE local_queue_messages AS m
    SET queue = %(dlq)s,
        seq = nextval(pg_get_serial_sequence('local_queue_messages', 'seq')),
        visible_at = now(),
        receipt_handle = NULL,
        -- SQS: a standard message keeps its enqueue time in the DLQ, a FIFO one starts anew
        expires_at = (CASE WHEN %(fifo)s THEN now() ELSE m.sent_at END)
            + make_interval(secs => %(dlq_retention_sec)s)
    WHERE m.seq IN (
        SELECT seq FROM local_queue_messages
        WHERE queue = %(queue)s AND %(dlq)s::text IS NOT NULL
          AND visible_at <= now() AND expires_at > now() AND receive_count >= %(max_receive_count)s
        FOR UPDATE SKIP LOCKED
    )
),
chosen AS (
    SELECT seq FROM local_queue_messages AS m
    WHERE queue = %(queue)s AND visible_at <= now() AND expires_at > now()
      AND (%(dlq)s::text IS NULL OR receive_count < %(max_receive_count)s)
      AND (group_id IS NULL OR NOT EXISTS (
          SELECT FROM local_queue_messages AS held
          WHERE held.queue = m.queue AND held.group_id = m.group_id AND held.visible_at > now()
      ))
    ORDER BY seq
    LIMIT %(max_messages)s
    FOR UPDATE SKIP LOCKED
),
received AS (
    UPDATE local_queue_messages AS m
    SET receive_count = m.receive_count + 1,
        receipt_handle = gen_random_uuid()::text,
        visible_at = now() + make_interval(secs => %(visibility_sec)s),
        first_received_at = coalesce(m.first_received_at, now())
    FROM chosen
    WHERE m.seq = chosen.seq
    RETURNING m.seq, m.message_id, m.receipt_handle, m.body, m.group_id, m.dedup_id, m.receive_count,
              m.sent_at, m.first_received_at
)
SELECT * FROM received ORDER BY seq;

-- name: delete_local_message
DELETE FROM local_queue_messages WHERE queue = %(queue)s AND receipt_handle = %(receipt_handle)s;

-- name: change_local_visibility
-- On a FIFO queue it waits for a receive in progress (shared against lock_local_fifo_receives), so a
-- receive never sees a group's first message free while this call is hiding it again.
WITH fifo_guard AS (
    SELECT pg_advisory_xact_lock_shared(29799, hashtext(%(queue)s)) WHERE %(fifo)s
)
UPDATE local_queue_messages
SET visible_at = now() + make_interval(secs => %(timeout_sec)s)
WHERE queue = %(queue)s AND receipt_handle = %(receipt_handle)s
  AND (NOT %(fifo)s OR EXISTS (SELECT FROM fifo_guard));

-- name: release_local_messages
UPDATE local_queue_messages
SET visible_at = now()
WHERE queue = %(queue)s AND receipt_handle = ANY(%(receipt_handles)s)
RETURNING receipt_handle;

-- name: local_queue_depths
SELECT queue,
       count(*) FILTER (WHERE visible_at <= now()) AS visible,
       count(*) FILTER (WHERE visible_at > now() AND receipt_handle IS NOT NULL) AS in_flight,
       count(*) FILTER (WHERE visible_at > now() AND receipt_handle IS NULL) AS delayed
FROM local_queue_messages
WHERE queue = ANY(%(queues)s) AND expires_at > now()
GROUP BY queue;
