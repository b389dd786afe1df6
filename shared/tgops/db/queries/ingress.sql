-- name: active_bot_webhook_secret_hash
SELECT webhook_secret_hash FROM bots WHERE id = %(bot_id)s AND is_active;

-- name: claim_webhook_update
-- A row older than the dedupe window counts as absent, exactly as an expired Redis key would.
INSERT INTO webhook_dedupe (bot_id, update_id) VALUES (%(bot_id)s, %(update_id)s)
ON CONFLICT (bot_id, update_id) DO UPDATE SET seen_at = now()
    WHERE webhook_dedupe.seen_at < now() - make_interval(secs => %(ttl_sec)s)
RETURNING seen_at;

-- name: release_webhook_update
DELETE FROM webhook_dedupe WHERE bot_id = %(bot_id)s AND update_id = %(update_id)s;

-- name: delete_expired_webhook_updates
DELETE FROM webhook_dedupe WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM webhook_dedupe
    WHERE seen_at < now() - make_interval(secs => %(ttl_sec)s)
    LIMIT %(limit)s
));

-- name: record_queue_failure
INSERT INTO queue_message_failures (queue, message_id, receive_count, reason)
VALUES (%(queue)s, %(message_id)s, %(receive_count)s, %(reason)s)
ON CONFLICT (queue, message_id) DO UPDATE
    SET receive_count = EXCLUDED.receive_count, reason = EXCLUDED.reason, failed_at = now();

-- name: queue_failures_for_messages
SELECT message_id, receive_count, reason, failed_at FROM queue_message_failures
WHERE queue = %(queue)s AND message_id = ANY(%(message_ids)s);

-- name: dlq_replays_for_messages
SELECT message_id, replay_message_id FROM dlq_replays
WHERE queue = %(queue)s AND message_id = ANY(%(message_ids)s);

-- name: record_dlq_replay
INSERT INTO dlq_replays (queue, message_id, replay_message_id)
VALUES (%(queue)s, %(message_id)s, %(replay_message_id)s)
ON CONFLICT (queue, message_id) DO NOTHING;

-- name: delete_old_queue_failures
-- Past SQS's longest retention (14 days) no DLQ message can still refer to these rows.
DELETE FROM queue_message_failures WHERE failed_at < now() - interval '14 days';

-- name: delete_old_dlq_replays
DELETE FROM dlq_replays WHERE replayed_at < now() - interval '14 days';
