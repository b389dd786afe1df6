-- The account fleet (tgops.accounts): import, login, the operator's commands, and the setup pipeline.

-- name: fleet_find_account
SELECT id, phone, is_probe, is_active, disabled_at, disabled_reason, session_encrypted,
       proxy_type, proxy_host, proxy_port, proxy_username, proxy_password_encrypted
FROM mtproto_accounts
WHERE phone = %(phone)s OR id::text = %(phone)s
ORDER BY (phone = %(phone)s) DESC
LIMIT 1;

-- name: fleet_insert_account
-- The session is written right after, sealed for the id this returns (its encryption context).
INSERT INTO mtproto_accounts (phone, is_probe, proxy_type, proxy_host, proxy_port, proxy_username)
VALUES (%(phone)s, %(is_probe)s, %(proxy_type)s, %(proxy_host)s, %(proxy_port)s, %(proxy_username)s)
ON CONFLICT (phone) DO NOTHING
RETURNING id;

-- name: fleet_set_secrets
UPDATE mtproto_accounts
SET session_encrypted = %(session_encrypted)s,
    proxy_password_encrypted = %(proxy_password_encrypted)s,
    updated_at = now()
WHERE id = %(id)s;

-- name: fleet_replace_session
-- A fresh login: the new session, and the account usable again.
UPDATE mtproto_accounts
SET session_encrypted = %(session_encrypted)s,
    is_active = true,
    disabled_at = NULL,
    disabled_reason = NULL,
    updated_at = now()
WHERE id = %(id)s;

-- name: fleet_reencrypt_secrets
-- Compare-and-set: a secret changed since it was read is left for the next run.
UPDATE mtproto_accounts
SET session_encrypted = %(session_encrypted)s,
    proxy_password_encrypted = %(proxy_password_encrypted)s,
    updated_at = now()
WHERE id = %(id)s
  AND session_encrypted IS NOT DISTINCT FROM %(old_session)s
  AND proxy_password_encrypted IS NOT DISTINCT FROM %(old_proxy_password)s;

-- name: fleet_all_secrets
SELECT id, session_encrypted, proxy_password_encrypted
FROM mtproto_accounts
WHERE id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: fleet_list_accounts
SELECT a.id, a.phone, a.is_probe, a.is_active, a.disabled_reason, a.disabled_at IS NOT NULL AS disabled,
       a.proxy_type, a.proxy_host, a.proxy_port,
       GREATEST(0, CEIL(EXTRACT(EPOCH FROM a.cooldown_until - now())))::int AS cooldown_left_sec,
       a.last_error_code,
       count(t.id) FILTER (WHERE t.status = 'done')::int AS tasks_done,
       count(t.id) FILTER (WHERE t.status = 'failed')::int AS tasks_failed,
       count(t.id)::int AS tasks_total
FROM mtproto_accounts a
LEFT JOIN mtproto_account_tasks t ON t.account_id = a.id
GROUP BY a.id
ORDER BY a.id;

-- name: fleet_enable_account
UPDATE mtproto_accounts
SET is_active = true, disabled_at = NULL, disabled_reason = NULL, updated_at = now()
WHERE id = %(id)s;

-- name: fleet_disable_account
UPDATE mtproto_accounts
SET disabled_at = COALESCE(disabled_at, now()), disabled_reason = %(reason)s, updated_at = now()
WHERE id = %(id)s;

-- name: fleet_set_proxy
UPDATE mtproto_accounts
SET proxy_type = %(proxy_type)s, proxy_host = %(proxy_host)s, proxy_port = %(proxy_port)s,
    proxy_username = %(proxy_username)s, proxy_password_encrypted = %(proxy_password_encrypted)s,
    updated_at = now()
WHERE id = %(id)s;

-- name: fleet_set_probe
UPDATE mtproto_accounts SET is_probe = %(is_probe)s, updated_at = now() WHERE id = %(id)s;

-- name: setup_upsert_tasks
-- Every required task of every active, enabled action account; the unique (account_id, task_type) keeps
-- one of each, so running this again adds nothing.
INSERT INTO mtproto_account_tasks (account_id, task_type)
SELECT a.id, task_type
FROM mtproto_accounts a
CROSS JOIN unnest(%(task_types)s::text[]) AS task_type
WHERE a.is_active AND a.disabled_at IS NULL AND NOT a.is_probe AND a.session_encrypted IS NOT NULL
ON CONFLICT (account_id, task_type) DO NOTHING;

-- name: setup_mark_enqueued
-- The tasks to queue now: open, due, of usable accounts, and not queued already (unless the message is
-- presumed lost). Marked in the same statement, so a concurrent dispatch cannot take them too.
UPDATE mtproto_account_tasks t
SET enqueued_at = now(), updated_at = now()
FROM (
    SELECT t2.id
    FROM mtproto_account_tasks t2
    JOIN mtproto_accounts a ON a.id = t2.account_id
    WHERE t2.status IN ('pending', 'retry', 'running')
      AND (t2.status <> 'running' OR t2.started_at < now() - make_interval(secs => %(stale_sec)s))
      AND (t2.retry_at IS NULL OR t2.retry_at <= now())
      AND (t2.enqueued_at IS NULL OR t2.enqueued_at < now() - make_interval(secs => %(stale_sec)s))
      AND a.is_active AND a.disabled_at IS NULL AND NOT a.is_probe
      AND t2.task_type = ANY(%(task_types)s::text[])
    -- Type by type across accounts, not account by account: consecutive messages name different accounts,
    -- so consumers are not all waiting on one account's throttle.
    ORDER BY t2.retry_at NULLS FIRST, array_position(%(task_types)s::text[], t2.task_type), t2.account_id
    LIMIT %(limit)s
    FOR UPDATE OF t2 SKIP LOCKED
) due
WHERE t.id = due.id
RETURNING t.id, t.account_id, t.task_type;

-- name: setup_unmark_enqueued
UPDATE mtproto_account_tasks SET enqueued_at = NULL WHERE id = ANY(%(ids)s::bigint[]);

-- name: setup_start_task
-- The runner's eligibility check and claim in one: open, due, account usable. Returns the account's rest.
UPDATE mtproto_account_tasks t
SET status = 'running', started_at = now(), updated_at = now()
FROM mtproto_accounts a
WHERE t.id = %(id)s AND a.id = t.account_id
  AND (t.status IN ('pending', 'retry')
       OR (t.status = 'running' AND t.started_at < now() - make_interval(secs => %(stale_sec)s)))
  AND (t.retry_at IS NULL OR t.retry_at <= now())
  AND a.is_active AND a.disabled_at IS NULL AND NOT a.is_probe
RETURNING t.id, t.account_id, t.task_type, t.payload_json, t.result_json, t.attempts,
          GREATEST(0, CEIL(EXTRACT(EPOCH FROM a.cooldown_until - now())))::int AS cooldown_left_sec;

-- name: setup_release_task
-- A message for a task that may not run now (its account disabled, or it ran already): the dispatcher may
-- queue it again once it is due, instead of waiting for setup_enqueue_stale_sec.
UPDATE mtproto_account_tasks SET enqueued_at = NULL WHERE id = %(id)s AND status <> 'running';

-- name: setup_finish_task
UPDATE mtproto_account_tasks
SET status = %(status)s,
    attempts = attempts + %(attempt)s,
    retry_at = CASE WHEN %(retry_in_sec)s::int IS NULL THEN NULL
                    ELSE now() + make_interval(secs => %(retry_in_sec)s::int) END,
    last_error_code = %(error_code)s,
    last_error = %(error)s,
    result_json = COALESCE(%(result)s, result_json),
    enqueued_at = NULL,
    started_at = NULL,
    updated_at = now()
WHERE id = %(id)s AND status = 'running';

-- name: setup_retry_at_cooldown_end
-- A task its account may not run yet because the account is cooling down: due again the moment the
-- cooldown ends, as Postgres has it (not a rounded second later); never an attempt. `retry_in_sec` is the
-- fallback when Postgres shows no cooldown (an operator lifted it since).
UPDATE mtproto_account_tasks t
SET status = 'retry',
    retry_at = CASE WHEN a.cooldown_until > now() THEN a.cooldown_until
                    ELSE now() + make_interval(secs => %(retry_in_sec)s::int) END,
    last_error_code = %(error_code)s,
    last_error = %(error)s,
    enqueued_at = NULL,
    started_at = NULL,
    updated_at = now()
FROM mtproto_accounts a
WHERE t.id = %(id)s AND a.id = t.account_id AND t.status = 'running';

-- name: setup_get_task
SELECT id, account_id, task_type, status, attempts, retry_at, last_error_code, last_error, result_json,
       payload_json, enqueued_at
FROM mtproto_account_tasks
WHERE id = %(id)s;

-- name: setup_account_tasks
SELECT id, task_type, status, attempts, retry_at, last_error_code, last_error, result_json, enqueued_at
FROM mtproto_account_tasks
WHERE account_id = %(account_id)s
ORDER BY id;

-- name: setup_status_counts
SELECT status, count(*)::int AS count FROM mtproto_account_tasks GROUP BY status ORDER BY status;

-- name: setup_open_task_count
-- Tasks still to finish on accounts that may run them (a disabled account's pending tasks wait for it).
SELECT count(*)::int AS open
FROM mtproto_account_tasks t
JOIN mtproto_accounts a ON a.id = t.account_id
WHERE t.status IN ('pending', 'retry', 'running')
  AND a.is_active AND a.disabled_at IS NULL AND NOT a.is_probe;
