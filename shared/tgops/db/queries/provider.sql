-- Provider pull (seed 002): accounts sync, task generation, leasing, reports, counts.

-- name: upsert_telegram_accounts
INSERT INTO telegram_accounts (provider_account_id, phone, is_active, meta)
SELECT item.provider_account_id, item.phone, item.is_active, item.meta
FROM jsonb_to_recordset(%(accounts)s::jsonb)
    AS item (provider_account_id text, phone text, is_active boolean, meta jsonb)
ON CONFLICT (provider_account_id) DO UPDATE
SET phone = EXCLUDED.phone, is_active = EXCLUDED.is_active, meta = EXCLUDED.meta, updated_at = now();

-- name: lock_due_orders
-- SKIP LOCKED: a second generator running at once takes other orders, never the same one.
SELECT o.id, o.remote_order_id, o.remote_service_id, o.link, o.status, o.remains, o.action, o.per_call, o.post_id,
       coalesce((SELECT sum(t.per_call) FROM telegram_tasks t
                 WHERE t.order_id = o.id AND t.status IN ('queued', 'leased', 'pending')), 0)::int AS open_quantity
FROM provider_orders o
WHERE o.next_run_at <= now() AND o.remains > 0 AND o.status IN ('awaiting', 'in_progress', 'pending')
ORDER BY o.next_run_at
LIMIT %(limit)s
FOR UPDATE OF o SKIP LOCKED;

-- name: highest_account_id
SELECT coalesce(max(id), 0) AS id FROM telegram_accounts;

-- name: candidate_accounts
-- Accounts with an open task for this action are left out: one outstanding task per account and
-- action, even once its reserve lock has expired.
SELECT a.id, a.provider_account_id
FROM telegram_accounts a
WHERE a.is_active AND a.provider_account_id IS NOT NULL AND a.id > %(after_id)s AND a.id <= %(up_to_id)s
  AND NOT EXISTS (SELECT 1 FROM telegram_tasks t
                  WHERE t.telegram_account_id = a.id AND t.action = %(action)s
                    AND t.status IN ('queued', 'leased', 'pending'))
ORDER BY a.id
LIMIT %(limit)s;

-- name: insert_telegram_task
INSERT INTO telegram_tasks (id, order_id, action, link_hash, telegram_account_id, provider_account_id, per_call, payload)
VALUES (%(id)s, %(order_id)s, %(action)s, %(link_hash)s, %(telegram_account_id)s, %(provider_account_id)s,
        %(per_call)s, %(payload)s);

-- name: advance_order
UPDATE provider_orders
SET next_run_at = next_run_at + make_interval(secs => interval_seconds),
    status = CASE WHEN %(task_created)s AND status = 'awaiting' THEN 'in_progress' ELSE status END,
    updated_at = now()
WHERE id = %(order_id)s;

-- name: lease_tasks
-- available_at is leased_until while leased, so an expired lease is pullable through the same index.
-- The rows are matched by ctid: this statement has just locked them, so the versions it found stay
-- current (a row changed between the snapshot and the lock is left for the next pull).
-- Postgres writes the tasks as seed 002's JSON array (plus lease_version and leased_until), so the
-- API passes the text through instead of decoding and re-encoding every task. attempt counts
-- earlier leases (0 on the first pull, as in the seed); the stored column counts this one too.
WITH leased AS (
    UPDATE telegram_tasks AS t
    SET status = 'leased',
        leased_until = now() + make_interval(secs => %(lease_sec)s),
        available_at = now() + make_interval(secs => %(lease_sec)s),
        attempt = t.attempt + 1,
        lease_version = t.lease_version + 1,
        updated_at = now()
    WHERE t.ctid = ANY(ARRAY(
        SELECT ctid
        FROM telegram_tasks
        WHERE status IN ('queued', 'leased', 'pending') AND available_at <= now()
        ORDER BY available_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING t.id, t.order_id, t.action, t.link_hash, t.telegram_account_id, t.provider_account_id,
              t.per_call, t.payload, t.attempt, t.lease_version, t.leased_until
)
SELECT count(*)::int AS count,
       coalesce(json_agg(json_build_object(
           'task_id', l.id,
           'order_id', l.order_id,
           'action', l.action,
           'link', l.payload ->> 'link',
           'account', json_build_object('provider_account_id', l.provider_account_id, 'phone', a.phone),
           'per_call', l.per_call,
           'post_id', (l.payload ->> 'post_id')::bigint,
           'panel_order_id', (l.payload ->> 'panel_order_id')::bigint,
           'link_hash', l.link_hash,
           'attempt', l.attempt - 1,
           'lease_version', l.lease_version,
           'leased_until', l.leased_until
       )), '[]')::text AS tasks
FROM leased l
LEFT JOIN telegram_accounts a ON a.id = l.telegram_account_id;

-- name: finish_reported_tasks
-- Applies a batch of reports in one statement. Each task is looked up and locked by its id on its own
-- (LATERAL), in the order of the reports, which the caller sorts by id, so two batches sharing tasks
-- cannot deadlock, and then updated by ctid. A plain join of the reports to the table lets stale
-- statistics ("no task is leased") pick a scan of the whole table with every report checked against
-- every row: 160 ms instead of 10 ms for 1,000 reports. The rows are found by `ctid = ANY(...)`, a
-- TID scan whatever the planner guesses of how many reports apply.
-- Which reports apply:
--   * done is a fact (the action happened): it applies to any task once leased that is not done yet,
--     whatever lease it names, even after a failed (a stale one, or the task withdrawn), exactly once;
--   * failed, retry (queued) and pending apply only to the lease that holds the task: the one the report
--     names, or, for a report naming none (seed 002's shape), a task leased only once or whose lease
--     ran out; a versionless report never finalises a newer lease that is live.
-- status: done / failed (final), queued (failed with retry_after), pending (still working: lease
-- extended). reported_lease_version records which lease a final or requeueing report belonged to.
WITH held AS MATERIALIZED (
    SELECT task.row_id, task.previous_status, r.*
    FROM jsonb_to_recordset(%(reports)s)
        AS r (task_id char(26), status text, lease_version integer, result jsonb, retry_after integer,
              provider_task_id text)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, status AS previous_status, lease_version, leased_until
        FROM telegram_tasks WHERE id = r.task_id FOR UPDATE
    ) AS task
    WHERE CASE WHEN r.status = 'done' THEN task.previous_status <> 'done' AND task.lease_version >= 1
          ELSE task.previous_status IN ('leased', 'pending')
               AND (task.lease_version = r.lease_version
                    OR (r.lease_version IS NULL AND (task.lease_version = 1 OR task.leased_until <= now())))
          END
)
UPDATE telegram_tasks AS t
SET status = r.status,
    result = r.result,
    provider_task_id = coalesce(r.provider_task_id, t.provider_task_id),
    reported_lease_version = CASE WHEN r.status = 'pending' THEN t.reported_lease_version ELSE t.lease_version END,
    finished_at = CASE WHEN r.status IN ('done', 'failed') THEN now() END,
    leased_until = CASE r.status
        WHEN 'queued' THEN NULL
        WHEN 'pending' THEN now() + make_interval(secs => %(lease_sec)s)
        ELSE t.leased_until END,
    available_at = CASE r.status
        WHEN 'queued' THEN now() + make_interval(secs => coalesce(r.retry_after, 0))
        WHEN 'pending' THEN now() + make_interval(secs => %(lease_sec)s)
        ELSE t.available_at END,
    updated_at = now()
FROM held AS r
WHERE t.ctid = ANY(ARRAY(SELECT row_id FROM held)) AND t.ctid = r.row_id
RETURNING t.id, t.order_id, t.action, t.link_hash, t.telegram_account_id, t.per_call, r.previous_status;

-- name: reported_tasks_not_applied
-- Why reports matched no lease: unknown task, already finished, leased again, or not leased.
SELECT id, status, lease_version, reported_lease_version, leased_until
FROM telegram_tasks
WHERE id = ANY(%(ids)s::char(26)[]);

-- name: note_lost_reservations
-- A done report whose account another task holds now: still done and counted (a done is a fact), but
-- COMMIT charged the account nothing; the result says so.
UPDATE telegram_tasks
SET result = coalesce(result, '{}'::jsonb) || '{"reservation_lost": true}'::jsonb
WHERE id = ANY(%(ids)s::char(26)[]);

-- name: take_done_from_orders
-- Orders are locked in id order first, so concurrent report batches touching the same orders
-- cannot deadlock. Each order's new state goes to the panel's outbox in the same statement (one round
-- trip per batch on the report path), with the fields of `record_panel_update` in orders.sql.
WITH done AS (
    SELECT * FROM jsonb_to_recordset(%(orders)s) AS d (order_id bigint, quantity integer)
),
locked AS MATERIALIZED (
    SELECT o.id FROM provider_orders o JOIN done ON done.order_id = o.id ORDER BY o.id FOR UPDATE OF o
),
taken AS (
    UPDATE provider_orders AS o
    SET remains = greatest(o.remains - done.quantity, 0),
        status = CASE WHEN o.remains - done.quantity <= 0 AND o.status IN ('awaiting', 'in_progress', 'pending')
                      THEN 'completed' ELSE o.status END,
        updated_at = now()
    FROM done JOIN locked ON locked.id = done.order_id
    WHERE o.id = done.order_id
    RETURNING o.id, o.remote_order_id, o.status, o.start_count, o.remains, o.provider_last_error, o.finish_reason
)
INSERT INTO order_panel_updates (order_id, remote_order_id, change, fields)
SELECT id, remote_order_id, 'progress', jsonb_build_object(
    'status', status,
    'start_count', start_count,
    'remains', remains,
    'reason', CASE status WHEN 'depends_failed' THEN provider_last_error WHEN 'partial' THEN finish_reason END)
FROM taken
ORDER BY id;

-- name: task_status_counts
SELECT status, count(*)::int AS tasks FROM telegram_tasks GROUP BY status;

-- name: expired_lease_count
SELECT count(*)::int AS tasks
FROM telegram_tasks
WHERE status IN ('leased', 'pending') AND available_at <= now();
