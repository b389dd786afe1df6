-- Orders from the SMM panel, their link validation and their lifecycle (tgops.orders).

-- name: upsert_provider_order
-- Who owns an order's fields (ARCHITECTURE.md), in this one place: the panel owns link, quantity,
-- service and cancellation, so a poll always takes them; tgops owns the verdict, start count, remains
-- and execution status, so a poll takes remains and start count only before the order has started,
-- and never changes our status except to cancel an unfinished order. A link changed before the order
-- started is validated again (a new reason to dispatch, even after a job gave up). An order first seen
-- executing is due at once. `previous_*` are the row as it was before this poll (NULL when new).
-- `being_sent` and `recently_failed` are judged by the database clock, the one every poller shares.
WITH previous AS (
    SELECT status, raw_link FROM provider_orders WHERE remote_order_id = %(remote_order_id)s
)
INSERT INTO provider_orders AS o (
    remote_order_id, remote_service_id, raw_link, link, quantity, remains, start_count, status,
    provider_last_error, validation_result, next_run_at, started_at, post_id
) VALUES (
    %(remote_order_id)s, %(remote_service_id)s, %(raw_link)s, %(link)s, %(quantity)s, %(remains)s,
    %(start_count)s, %(status)s, %(error)s, %(validation_result)s,
    CASE WHEN %(status)s IN ('awaiting', 'in_progress', 'pending') THEN now() END,
    CASE WHEN %(status)s IN ('awaiting', 'in_progress', 'pending', 'completed', 'partial') THEN now() END,
    %(post_id)s
)
ON CONFLICT (remote_order_id) DO UPDATE SET
    remote_service_id = EXCLUDED.remote_service_id,
    raw_link = EXCLUDED.raw_link,
    link = EXCLUDED.link,
    post_id = EXCLUDED.post_id,
    quantity = EXCLUDED.quantity,
    remains = CASE WHEN o.started_at IS NULL THEN EXCLUDED.remains ELSE o.remains END,
    start_count = CASE WHEN o.started_at IS NULL THEN coalesce(EXCLUDED.start_count, o.start_count)
                       ELSE o.start_count END,
    status = CASE
        WHEN o.status IN ('completed', 'partial', 'canceled') THEN o.status
        WHEN EXCLUDED.status = 'canceled' THEN 'canceled'
        WHEN o.started_at IS NULL AND o.link <> EXCLUDED.link
            THEN CASE WHEN EXCLUDED.status = 'depends_failed' THEN 'depends_failed' ELSE 'validating' END
        WHEN o.status = 'validating' AND EXCLUDED.status = 'depends_failed' THEN 'depends_failed'
        ELSE o.status
    END,
    provider_last_error = CASE
        WHEN o.started_at IS NULL AND o.link <> EXCLUDED.link THEN EXCLUDED.provider_last_error
        WHEN o.status = 'validating' AND EXCLUDED.status = 'depends_failed' THEN EXCLUDED.provider_last_error
        ELSE o.provider_last_error
    END,
    validation_result = CASE
        WHEN o.started_at IS NULL AND o.link <> EXCLUDED.link THEN EXCLUDED.validation_result
        WHEN o.status = 'validating' AND EXCLUDED.status = 'depends_failed' THEN EXCLUDED.validation_result
        ELSE o.validation_result
    END,
    validation_gave_up_at = CASE WHEN o.link <> EXCLUDED.link THEN NULL ELSE o.validation_gave_up_at END,
    provider_last_error_at = CASE WHEN o.link <> EXCLUDED.link THEN NULL ELSE o.provider_last_error_at END,
    validation_claimed_until = CASE WHEN o.link <> EXCLUDED.link THEN NULL ELSE o.validation_claimed_until END,
    updated_at = now()
RETURNING
    id, remote_order_id, remote_service_id, link, status, remains, dispatch_note,
    (xmax = 0) AS created,
    (SELECT status FROM previous) AS previous_status,
    (SELECT raw_link FROM previous) AS previous_raw_link,
    (validation_gave_up_at IS NOT NULL) AS gave_up,
    (validation_claimed_until IS NOT NULL AND validation_claimed_until > now()) AS being_sent,
    (provider_last_error_at IS NOT NULL
        AND provider_last_error_at > now() - make_interval(secs => %(recent_error_sec)s)) AS recently_failed;

-- name: note_dispatch_skip
-- Remembers why an order was not dispatched; returns a row only when the reason is new, so it is logged once.
UPDATE provider_orders SET dispatch_note = %(reason)s
WHERE id = %(id)s AND dispatch_note IS DISTINCT FROM %(reason)s
RETURNING id;

-- name: claim_validation_group
-- The group lock in Redis makes the caller the group's only validator, so orders it claimed on an
-- earlier try of the same job are claimed again.
UPDATE provider_orders SET
    provider_sending_at = now(),
    validation_claimed_until = now() + make_interval(secs => %(claim_sec)s),
    dispatch_note = NULL,
    updated_at = now()
WHERE id IN (
    SELECT id FROM provider_orders
    WHERE remote_service_id = %(remote_service_id)s AND link = %(link)s AND status = 'validating' AND remains > 0
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, remote_order_id;

-- name: renew_validation_claim
-- The running job's heartbeat: its claim stays fresh while it works, and only while it works.
UPDATE provider_orders SET validation_claimed_until = now() + make_interval(secs => %(claim_sec)s)
WHERE id = ANY(%(ids)s) AND status = 'validating';

-- name: finish_validation
UPDATE provider_orders SET
    status = %(status)s,
    validation_result = %(validation_result)s,
    validated_at = now(),
    provider_sending_at = NULL,
    validation_claimed_until = NULL,
    provider_last_error = %(error)s,
    updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'validating'
RETURNING id;

-- name: record_validation_retry
-- The claim stays while the job waits for its next try, so the poller must not dispatch again.
UPDATE provider_orders SET
    provider_last_error = %(error)s,
    provider_last_error_at = now(),
    validation_claimed_until = now() + make_interval(secs => %(claim_sec)s),
    updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'validating';

-- name: release_validation_claim
-- The job gave up: the orders stay validating, and polling sends no new job until their link changes.
UPDATE provider_orders SET
    provider_sending_at = NULL,
    validation_claimed_until = NULL,
    validation_gave_up_at = now(),
    provider_last_error = %(error)s,
    provider_last_error_at = now(),
    updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'validating';

-- name: start_orders
-- How an order starts, in this one place: validated (depends_ok), it becomes awaiting and due now,
-- with its service's execution rule and its start count.
UPDATE provider_orders SET
    status = 'awaiting',
    next_run_at = now(),
    started_at = now(),
    action = coalesce(%(action)s, action),
    per_call = %(per_call)s,
    interval_seconds = %(interval_seconds)s,
    start_count = CASE %(start_count_source)s
        WHEN 'participants' THEN coalesce((validation_result ->> 'participants_count')::int, start_count)
        WHEN 'zero' THEN 0
        ELSE start_count END,
    updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'depends_ok'
RETURNING id, remote_order_id, remote_service_id;

-- name: record_panel_update
-- What the panel hears: the fields tgops owns, as they are now, one outbox row per order for this
-- change. take_done_from_orders (provider.sql) writes the same fields inline, to spare the report path
-- a round trip: change both together.
INSERT INTO order_panel_updates (order_id, remote_order_id, change, fields)
SELECT id, remote_order_id, %(change)s, jsonb_build_object(
    'status', status,
    'start_count', start_count,
    'remains', remains,
    'reason', CASE status WHEN 'depends_failed' THEN provider_last_error WHEN 'partial' THEN finish_reason END)
FROM provider_orders
WHERE id = ANY(%(ids)s)
ORDER BY id;

-- name: withdraw_order_tasks
-- An order canceled or ended: its open tasks are withdrawn (failed), so no pull returns them again.
-- A done reported for one later is still applied (a done is a fact).
UPDATE telegram_tasks SET
    status = 'failed',
    result = jsonb_build_object('error', %(reason)s::text, 'withdrawn', true),
    finished_at = now(),
    updated_at = now()
WHERE order_id = %(order_id)s AND status IN ('queued', 'leased', 'pending')
RETURNING id, action, link_hash, telegram_account_id;

-- name: order_by_id
SELECT * FROM provider_orders WHERE id = %(id)s;

-- name: provider_order_by_remote_id
SELECT * FROM provider_orders WHERE remote_order_id = %(remote_order_id)s;

-- name: recent_provider_orders
-- `tgops panel orders` and `tgops orders list`: the newest orders, their status, why they failed,
-- and what the inspection found.
SELECT id, remote_order_id, remote_service_id, link, quantity, remains, start_count, status,
       coalesce(finish_reason, provider_last_error) AS reason,
       validation_result ->> 'chat_type' AS chat_type,
       validation_result ->> 'title' AS title,
       (validation_result ->> 'participants_count')::bigint AS participants_count,
       validated_at, started_at, finished_at,
       (SELECT count(*) FROM order_panel_updates u WHERE u.order_id = o.id AND u.sent_at IS NULL)::int
           AS panel_updates_pending
FROM provider_orders o
WHERE %(status)s::text IS NULL OR status = %(status)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: order_tasks
SELECT id, action, status, provider_account_id, per_call, attempt, lease_version, payload, result,
       created_at, finished_at
FROM telegram_tasks
WHERE order_id = %(order_id)s
ORDER BY created_at, id;

-- name: order_panel_updates
SELECT id, change, fields, created_at, attempts, last_error, available_at, sent_at
FROM order_panel_updates
WHERE order_id = %(order_id)s
ORDER BY id;

-- name: note_link_failures
-- Failed reports with a definite link error: at the threshold an executing order pauses and asks for
-- its link to be inspected again (once per pause).
UPDATE provider_orders AS o SET
    link_failures = o.link_failures + f.failures,
    next_run_at = CASE WHEN o.link_failures + f.failures >= %(threshold)s THEN NULL ELSE o.next_run_at END,
    recheck_requested_at = CASE WHEN o.link_failures + f.failures >= %(threshold)s THEN now()
                                ELSE o.recheck_requested_at END,
    updated_at = now()
FROM jsonb_to_recordset(%(orders)s) AS f (order_id bigint, failures integer)
WHERE o.id = f.order_id AND o.status IN ('awaiting', 'in_progress', 'pending') AND o.recheck_requested_at IS NULL;

-- name: claim_rechecks
UPDATE provider_orders SET recheck_sent_at = now()
WHERE id IN (
    SELECT id FROM provider_orders
    WHERE recheck_requested_at IS NOT NULL AND recheck_sent_at IS NULL
      AND status IN ('awaiting', 'in_progress', 'pending')
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING id, remote_service_id, link;

-- name: unclaim_recheck
UPDATE provider_orders SET recheck_sent_at = NULL WHERE id = %(id)s;

-- name: resume_after_recheck
-- The link is still there: the order runs on.
UPDATE provider_orders SET
    link_failures = 0, recheck_requested_at = NULL, recheck_sent_at = NULL, next_run_at = now(), updated_at = now()
WHERE id = %(id)s AND status IN ('awaiting', 'in_progress', 'pending');

-- name: end_partial
-- The link is gone: the order ends partial with what it still lacked and why.
UPDATE provider_orders SET
    status = 'partial', finish_reason = %(reason)s, finished_at = now(), next_run_at = NULL,
    recheck_requested_at = NULL, recheck_sent_at = NULL, updated_at = now()
WHERE id = %(id)s AND status IN ('awaiting', 'in_progress', 'pending')
RETURNING id;

-- name: claim_panel_updates
-- The oldest unsent update of each order (never a later one before it), when it is due and no flusher
-- holds it; claimed for a while, so a flusher that dies lets another send it again (same key).
UPDATE order_panel_updates AS u SET claimed_until = now() + make_interval(secs => %(claim_sec)s)
WHERE u.id IN (
    SELECT head.id FROM (
        SELECT DISTINCT ON (order_id) id, available_at, claimed_until
        FROM order_panel_updates
        WHERE sent_at IS NULL
        ORDER BY order_id, id
    ) AS head
    WHERE head.available_at <= now() AND (head.claimed_until IS NULL OR head.claimed_until <= now())
    ORDER BY head.id
    LIMIT %(limit)s
)
AND (u.claimed_until IS NULL OR u.claimed_until <= now()) AND u.sent_at IS NULL
RETURNING u.id, u.order_id, u.remote_order_id, u.change, u.fields, u.attempts;

-- name: mark_panel_update_sent
UPDATE order_panel_updates SET sent_at = now(), claimed_until = NULL, attempts = attempts + 1
WHERE id = %(id)s;

-- name: mark_panel_update_failed
UPDATE order_panel_updates SET
    attempts = attempts + 1,
    last_error = %(error)s,
    claimed_until = NULL,
    available_at = now() + make_interval(secs => %(retry_in_sec)s)
WHERE id = %(id)s;
