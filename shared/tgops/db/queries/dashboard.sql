-- The admin dashboard's reads (tgops.api.dashboard). Nothing here writes.

-- name: dash_activity_last_hour
-- What the system did in the last hour, from the rows the work itself leaves behind.
SELECT
    (SELECT count(*) FROM provider_orders WHERE created_at > now() - interval '1 hour')::int AS orders_polled,
    (SELECT count(*) FROM provider_orders WHERE validated_at > now() - interval '1 hour')::int AS orders_validated,
    (SELECT count(*) FROM telegram_tasks WHERE created_at > now() - interval '1 hour')::int AS tasks_created,
    (SELECT count(*) FROM telegram_tasks WHERE finished_at > now() - interval '1 hour')::int AS tasks_finished,
    (SELECT count(*) FROM sent_messages WHERE sent_at > now() - interval '1 hour')::int AS messages_sent,
    (SELECT count(*) FROM dm_updates WHERE created_at > now() - interval '1 hour')::int AS dm_updates,
    (SELECT count(*) FROM queue_message_failures WHERE failed_at > now() - interval '1 hour')::int AS dead_lettered,
    (SELECT count(*) FROM dlq_replays WHERE replayed_at > now() - interval '1 hour')::int AS replayed;

-- name: dash_replay_history
SELECT message_id, replay_message_id, replayed_at FROM dlq_replays
WHERE queue = %(queue)s ORDER BY replayed_at DESC LIMIT %(limit)s;

-- name: dash_order_status_counts
SELECT status, count(*)::int AS orders FROM provider_orders GROUP BY status ORDER BY status;

-- name: dash_orders
SELECT id, remote_order_id, remote_service_id, link, quantity, remains, start_count, status,
       provider_last_error, finish_reason, validated_at, created_at, updated_at,
       validation_result ->> 'chat_type' AS chat_type, validation_result ->> 'title' AS title
FROM provider_orders
WHERE %(status)s::text IS NULL OR status = %(status)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: dash_stuck_orders
-- Validating too long (no verdict since it was polled), or executing with remains and no progress: no task
-- created or finished since `idle_sec` (progress counts from the start). `stuck_sec` is how long.
WITH progress AS (
    SELECT o.id,
           CASE WHEN o.status = 'validating' THEN o.created_at
                ELSE greatest(o.started_at, o.validated_at, max(t.created_at), max(t.finished_at), o.created_at)
           END AS since
    FROM provider_orders o
    LEFT JOIN telegram_tasks t ON t.order_id = o.id
    WHERE o.status = 'validating' OR (o.status IN ('awaiting', 'in_progress', 'pending') AND o.remains > 0)
    GROUP BY o.id
)
SELECT o.id, o.remote_order_id, o.link, o.status, o.remains, o.quantity, o.provider_last_error,
       o.dispatch_note, o.validation_claimed_until > now() AS being_validated, p.since,
       CASE WHEN o.status = 'validating' THEN 'validating too long' ELSE 'executing without progress' END AS why,
       floor(extract(epoch FROM now() - p.since))::bigint AS stuck_sec
FROM provider_orders o
JOIN progress p ON p.id = o.id
WHERE (o.status = 'validating' AND p.since < now() - make_interval(secs => %(validating_sec)s))
   OR (o.status <> 'validating' AND p.since < now() - make_interval(secs => %(idle_sec)s))
ORDER BY p.since
LIMIT 100;

-- name: dash_accounts
SELECT id, phone, is_probe, is_active, disabled_at, disabled_reason, cooldown_until,
       greatest(0, ceil(extract(epoch FROM cooldown_until - now())))::int AS cooldown_left_sec,
       proxy_type, proxy_host, proxy_port, failure_count, last_error_code, last_used_at,
       CASE WHEN NOT is_active OR disabled_at IS NOT NULL THEN 'disabled'
            WHEN cooldown_until > now() THEN 'cooling down'
            ELSE 'active' END AS state
FROM mtproto_accounts
ORDER BY id
LIMIT %(limit)s;

-- name: dash_accounts_per_proxy
SELECT coalesce(proxy_type || '://' || proxy_host || ':' || proxy_port, 'no proxy') AS proxy,
       count(*) FILTER (WHERE is_active AND disabled_at IS NULL AND (cooldown_until IS NULL OR cooldown_until <= now()))::int AS active,
       count(*) FILTER (WHERE is_active AND disabled_at IS NULL AND cooldown_until > now())::int AS cooling,
       count(*) FILTER (WHERE NOT is_active OR disabled_at IS NOT NULL)::int AS disabled
FROM mtproto_accounts
GROUP BY 1
ORDER BY 1;

-- name: dash_setup_progress
-- Every configured task type (and any other found), over the accounts setup works on (action accounts
-- not disabled; a cooldown passes): a disabled account's tasks count no more.
WITH types AS (
    SELECT unnest(%(task_types)s::text[]) AS task_type
    UNION
    SELECT DISTINCT task_type FROM mtproto_account_tasks
)
SELECT types.task_type,
       (SELECT count(*) FROM mtproto_accounts WHERE NOT is_probe AND is_active AND disabled_at IS NULL)::int AS accounts,
       count(k.id) FILTER (WHERE k.status = 'done')::int AS done,
       count(k.id) FILTER (WHERE k.status IN ('pending', 'retry', 'running'))::int AS open,
       count(k.id) FILTER (WHERE k.status = 'failed')::int AS failed,
       (array_agg(coalesce(k.last_error_code, k.last_error) ORDER BY k.updated_at DESC)
            FILTER (WHERE k.status IN ('failed', 'retry') AND coalesce(k.last_error_code, k.last_error) IS NOT NULL))[1] AS last_error
FROM types
LEFT JOIN (mtproto_account_tasks k
           JOIN mtproto_accounts a ON a.id = k.account_id AND NOT a.is_probe AND a.is_active AND a.disabled_at IS NULL)
       ON k.task_type = types.task_type
GROUP BY types.task_type
ORDER BY types.task_type;

-- name: dash_tasks_per_provider_account
SELECT coalesce(provider_account_id, '(none)') AS provider_account_id,
       count(*) FILTER (WHERE status = 'queued')::int AS queued,
       count(*) FILTER (WHERE status IN ('leased', 'pending') AND available_at > now())::int AS leased,
       count(*) FILTER (WHERE status IN ('leased', 'pending') AND available_at <= now())::int AS expired,
       count(*) FILTER (WHERE status = 'done')::int AS done,
       count(*) FILTER (WHERE status = 'failed')::int AS failed
FROM telegram_tasks
GROUP BY 1
ORDER BY count(*) DESC
LIMIT 100;

-- name: dash_recent_tasks
-- `status` is a task status, or `expired_leases`: leased or pending tasks whose lease ran out
-- (available_at is leased_until while leased, as the pull reads it).
SELECT t.id, o.remote_order_id, t.action, t.provider_account_id, t.status, t.attempt, t.lease_version,
       t.result ->> 'error' AS error, t.updated_at,
       CASE WHEN t.status IN ('leased', 'pending')
            THEN floor(extract(epoch FROM t.available_at - now()))::bigint END AS lease_left_sec
FROM telegram_tasks t
LEFT JOIN provider_orders o ON o.id = t.order_id
WHERE %(status)s::text IS NULL OR t.status = %(status)s
   OR (%(status)s = 'expired_leases' AND t.status IN ('leased', 'pending') AND t.available_at <= now())
ORDER BY t.updated_at DESC
LIMIT 100;

-- name: dash_bot_totals
SELECT count(*)::int AS users,
       coalesce(sum(commands), 0)::int AS commands,
       coalesce(sum(referral_count), 0)::int AS referrals,
       count(*) FILTER (WHERE is_unlimited)::int AS unlimited,
       count(*) FILTER (WHERE blocked_at IS NOT NULL)::int AS blocked,
       count(*) FILTER (WHERE last_seen_at > now() - interval '1 day')::int AS active_today
FROM bot_users;

-- name: dash_points_per_day
SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(sum(delta) FILTER (WHERE delta > 0), 0)::int AS granted,
       coalesce(-sum(delta) FILTER (WHERE delta < 0), 0)::int AS spent,
       count(*) FILTER (WHERE reason = 'referral')::int AS referrals
FROM bot_points_ledger
WHERE created_at > now() - make_interval(days => %(days)s)
GROUP BY 1
ORDER BY 1;

-- name: dash_commands_per_day
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS updates
FROM dm_updates
WHERE created_at > now() - make_interval(days => %(days)s)
GROUP BY 1
ORDER BY 1;

-- name: dash_top_commands
SELECT coalesce(command, '(no command)') AS command, count(*)::int AS updates,
       count(DISTINCT user_id)::int AS users
FROM dm_updates
WHERE created_at > now() - make_interval(days => %(days)s)
GROUP BY 1
ORDER BY updates DESC, command
LIMIT 20;

-- name: dash_cloned_bots
SELECT id, username, owner_user_id, is_active, deactivated_reason, created_at
FROM bots WHERE NOT is_main ORDER BY id DESC LIMIT 200;

-- name: dash_groups
SELECT id, chat_id, title, phase, is_active, final_message_allowed, member_count, member_count_at,
       consecutive_failures, last_failure_at, last_failure_reason, join_gap_pending, updated_at
FROM managed_groups
ORDER BY is_active DESC, id
LIMIT 500;

-- name: dash_member_history
-- The last count of each hour, per chat: at most 24 points a day, however often the groups are counted.
SELECT DISTINCT ON (chat_id, date_trunc('hour', counted_at)) chat_id, member_count, counted_at
FROM group_member_counts
WHERE counted_at > now() - make_interval(days => %(days)s)
ORDER BY chat_id, date_trunc('hour', counted_at), counted_at DESC;

-- name: dash_join_requests
SELECT status, count(*)::int AS requests FROM join_requests GROUP BY status ORDER BY status;

-- name: dash_broadcasts
-- Each job's delivery progress; `deactivated`: failed chats whose group is deactivated now.
SELECT j.job_id, j.status, j.total, j.created_at, j.finished_at,
       count(*) FILTER (WHERE d.status = 'sent')::int AS sent,
       count(*) FILTER (WHERE d.status = 'failed')::int AS failed,
       count(*) FILTER (WHERE d.status IN ('pending', 'sending'))::int AS waiting,
       count(*) FILTER (WHERE d.status IN ('skipped', 'unconfirmed'))::int AS other,
       count(*) FILTER (WHERE d.status = 'failed' AND NOT g.is_active)::int AS deactivated,
       (array_agg(d.error ORDER BY d.finished_at DESC) FILTER (WHERE d.error IS NOT NULL))[1] AS last_error
FROM broadcast_jobs j
LEFT JOIN broadcast_deliveries d ON d.job_id = j.job_id
LEFT JOIN managed_groups g ON g.chat_id = d.target_chat_id
GROUP BY j.job_id
ORDER BY j.created_at DESC
LIMIT 50;

-- name: dash_outbox
SELECT id, bot_key, method, chat_id, params, created_at FROM bot_outbox
WHERE %(method)s::text IS NULL OR method = %(method)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: dash_dead_letter_ages
-- The oldest final failure not replayed, per source queue: how long its DLQ's oldest message has waited
-- (the failure log is written as SQS moves the message; SQS itself gives no age to any backend).
SELECT f.queue, floor(extract(epoch FROM now() - min(f.failed_at)))::bigint AS oldest_sec
FROM queue_message_failures f
LEFT JOIN dlq_replays r ON r.queue = f.queue AND r.message_id = f.message_id
WHERE r.message_id IS NULL
GROUP BY f.queue;

-- name: dash_alarm_facts
-- What the overview raises alarms on besides the queues: an exhausted account pool, deactivated groups.
SELECT
    (SELECT count(*) FROM mtproto_accounts)::int AS accounts,
    (SELECT count(*) FROM mtproto_accounts WHERE NOT is_probe)::int AS action_accounts,
    (SELECT count(*) FROM mtproto_accounts WHERE NOT is_probe AND is_active AND disabled_at IS NULL
        AND (cooldown_until IS NULL OR cooldown_until <= now()))::int AS usable_action_accounts,
    (SELECT count(*) FROM mtproto_accounts WHERE is_probe AND is_active AND disabled_at IS NULL
        AND (cooldown_until IS NULL OR cooldown_until <= now()))::int AS usable_probe_accounts,
    (SELECT count(*) FROM managed_groups WHERE NOT is_active AND updated_at > now() - interval '1 hour')::int
        AS groups_deactivated_last_hour;
