-- name: broadcast_job_insert
-- The first receive of a job writes it; a redelivery finds it and expands nothing again.
INSERT INTO broadcast_jobs (job_id, job, bot_key) VALUES (%(job_id)s, %(job)s, %(bot_key)s)
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id;

-- name: broadcast_job_get
SELECT * FROM broadcast_jobs WHERE job_id = %(job_id)s;

-- name: broadcast_expand_active_groups
-- Every active managed group that allows the message, once each.
INSERT INTO broadcast_deliveries (job_id, chat_id, target_chat_id, debug_code)
SELECT %(job_id)s, chat_id, chat_id, next_debug_code()
FROM managed_groups
WHERE is_active AND final_message_allowed
ORDER BY chat_id
ON CONFLICT DO NOTHING;

-- name: broadcast_expand_listed_chats
-- The listed chats; a managed group that is inactive or refuses messages is skipped, with the reason.
INSERT INTO broadcast_deliveries (job_id, chat_id, target_chat_id, debug_code, status, error, finished_at)
SELECT %(job_id)s, listed.chat_id, listed.chat_id, next_debug_code(),
       CASE WHEN g.id IS NULL OR (g.is_active AND g.final_message_allowed) THEN 'pending' ELSE 'skipped' END,
       CASE WHEN g.id IS NULL OR (g.is_active AND g.final_message_allowed) THEN NULL
            WHEN NOT g.is_active THEN 'group inactive' ELSE 'final_message_allowed is off' END,
       CASE WHEN g.id IS NULL OR (g.is_active AND g.final_message_allowed) THEN NULL ELSE now() END
FROM unnest(%(chat_ids)s::bigint[]) AS listed (chat_id)
LEFT JOIN managed_groups g ON g.chat_id = listed.chat_id
ON CONFLICT DO NOTHING;

-- name: broadcast_job_set_total
UPDATE broadcast_jobs SET total = (SELECT count(*) FROM broadcast_deliveries WHERE job_id = %(job_id)s)
WHERE job_id = %(job_id)s;

-- name: broadcast_mark_stale_unconfirmed
-- A send in flight for this long had its holder die between the call and its answer: it may have
-- gone out, so it is never sent again.
UPDATE broadcast_deliveries
SET status = 'unconfirmed', error = 'the consumer stopped during the send; delivery unknown',
    finished_at = now(), lease_token = NULL
WHERE job_id = %(job_id)s AND status = 'sending'
  AND claimed_at < now() - make_interval(secs => %(after_sec)s);

-- name: broadcast_lease
-- Pending rows nobody else holds, leased to this run. Rows of a group deactivated since the job was
-- expanded are skipped at send time.
UPDATE broadcast_deliveries d
SET lease_token = %(token)s, lease_until = now() + make_interval(secs => %(lease_sec)s)
FROM (
    SELECT job_id, chat_id FROM broadcast_deliveries
    WHERE job_id = %(job_id)s AND status = 'pending' AND (lease_until IS NULL OR lease_until < now())
    ORDER BY chat_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS picked
WHERE d.job_id = picked.job_id AND d.chat_id = picked.chat_id
RETURNING d.chat_id, d.target_chat_id, d.debug_code,
    (SELECT g.is_active AND g.final_message_allowed FROM managed_groups g WHERE g.chat_id = d.target_chat_id)
        AS group_allows;

-- name: broadcast_mark_sending
-- The in-flight marker, set just before the Bot API call, only by the run holding the lease.
UPDATE broadcast_deliveries
SET status = 'sending', target_chat_id = %(target_chat_id)s, claimed_at = now(), attempts = attempts + 1
WHERE job_id = %(job_id)s AND chat_id = %(chat_id)s AND lease_token = %(token)s
  AND status IN ('pending', 'sending')
RETURNING chat_id;

-- name: broadcast_mark_done
UPDATE broadcast_deliveries
SET status = %(status)s, message_id = %(message_id)s, target_chat_id = %(target_chat_id)s,
    error = %(error)s, finished_at = now(), lease_token = NULL
WHERE job_id = %(job_id)s AND chat_id = %(chat_id)s;

-- name: broadcast_release_untried
-- A run ending frees the rows it leased and never tried. A row left `sending` keeps its marker: its
-- call may have gone out (the run was cancelled during it).
UPDATE broadcast_deliveries SET lease_token = NULL, lease_until = NULL
WHERE job_id = %(job_id)s AND lease_token = %(token)s AND status = 'pending';

-- name: broadcast_release_unsent
-- One row back to pending after a definite non-send (429 after the retries, no connection made).
UPDATE broadcast_deliveries SET status = 'pending', lease_token = NULL, lease_until = NULL
WHERE job_id = %(job_id)s AND chat_id = %(chat_id)s AND lease_token = %(token)s
  AND status IN ('pending', 'sending');

-- name: broadcast_open_count
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'sending') AS sending
FROM broadcast_deliveries WHERE job_id = %(job_id)s AND status IN ('pending', 'sending');

-- name: broadcast_job_finish
UPDATE broadcast_jobs SET status = 'done', finished_at = now()
WHERE job_id = %(job_id)s AND status <> 'done';

-- name: broadcast_status_counts
SELECT status, count(*) AS count FROM broadcast_deliveries WHERE job_id = %(job_id)s GROUP BY status;

-- name: broadcast_delete_outcome_counts
SELECT coalesce(delete_outcome, 'not_deleted') AS outcome, count(*) AS count
FROM sent_messages WHERE job_id = %(job_id)s AND status IN ('sent', 'deleted', 'delete_failed')
GROUP BY 1;

-- name: broadcast_request_delete
UPDATE broadcast_jobs SET delete_requested_at = now() WHERE job_id = %(job_id)s
RETURNING (SELECT count(*) FROM sent_messages s
           WHERE s.job_id = %(job_id)s AND s.status = 'sent' AND s.delete_outcome IS NULL) AS to_delete;

-- name: sent_message_insert
INSERT INTO sent_messages (job_id, chat_id, message_id, debug_code, status, error, bot_key, kind)
VALUES (%(job_id)s, %(chat_id)s, %(message_id)s, %(debug_code)s, %(status)s, %(error)s, %(bot_key)s, %(kind)s)
ON CONFLICT (debug_code) DO NOTHING;

-- name: sent_messages_to_delete
SELECT id, chat_id, message_id, bot_key, sent_at, now() - sent_at AS age
FROM sent_messages
WHERE job_id = %(job_id)s AND status = 'sent' AND delete_outcome IS NULL AND id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: sent_message_deleted
UPDATE sent_messages
SET status = CASE WHEN %(outcome)s IN ('deleted', 'already_deleted') THEN 'deleted' ELSE 'delete_failed' END,
    delete_outcome = %(outcome)s, error = %(error)s,
    deleted_at = CASE WHEN %(outcome)s IN ('deleted', 'already_deleted') THEN now() END
WHERE id = %(id)s AND delete_outcome IS NULL;

-- name: sent_messages_export
-- Keyset pages for the CSV export, optionally one job.
SELECT id, job_id, kind, chat_id, message_id, debug_code, status, error, delete_outcome, sent_at, deleted_at
FROM sent_messages
WHERE id > %(after_id)s AND (%(job_id)s::text IS NULL OR job_id = %(job_id)s::text)
ORDER BY id
LIMIT %(limit)s;
