-- Ingress: why a queue message was given up on, and which DLQ messages were already replayed.
-- The DLQ view joins these to the messages it peeks at by (queue, SQS message id), which SQS keeps
-- when it moves a message to its DLQ.

CREATE TABLE queue_message_failures (
    queue          text NOT NULL,
    message_id     text NOT NULL,
    receive_count  integer NOT NULL,
    reason         text NOT NULL,
    failed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX queue_message_failures_failed_at ON queue_message_failures (failed_at);

-- A replay sends the DLQ message to its source queue, records it here, then deletes it from the DLQ;
-- a second run that finds the record skips the send, so a crash between send and delete cannot
-- queue the work twice.
CREATE TABLE dlq_replays (
    queue              text NOT NULL,
    message_id         text NOT NULL,
    replay_message_id  text NOT NULL,
    replayed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX dlq_replays_replayed_at ON dlq_replays (replayed_at);

ALTER TABLE queue_message_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE dlq_replays ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON queue_message_failures, dlq_replays FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON queue_message_failures, dlq_replays FROM authenticated;
    END IF;
END
$$;
