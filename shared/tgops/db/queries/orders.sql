-- Orders from the SMM panel and their link validation (tgops.orders.polling, tgops.orders.validation).

-- name: upsert_provider_order
-- The panel's "validating" never overwrites a verdict of ours: the panel learns it later than we do.
-- `recently_failed` and `being_sent` are judged by the database clock, the one every poller shares.
INSERT INTO provider_orders AS o (
    remote_order_id, remote_service_id, raw_link, link, quantity, remains, start_count, status,
    provider_last_error, validation_result
) VALUES (
    %(remote_order_id)s, %(remote_service_id)s, %(raw_link)s, %(link)s, %(quantity)s, %(remains)s,
    %(start_count)s, %(status)s, %(error)s, %(validation_result)s
)
ON CONFLICT (remote_order_id) DO UPDATE SET
    remote_service_id = EXCLUDED.remote_service_id,
    raw_link = EXCLUDED.raw_link,
    link = EXCLUDED.link,
    quantity = EXCLUDED.quantity,
    remains = EXCLUDED.remains,
    start_count = COALESCE(EXCLUDED.start_count, o.start_count),
    status = CASE
        WHEN EXCLUDED.status IN ('validating', 'depends_failed') AND o.status <> 'validating' THEN o.status
        ELSE EXCLUDED.status
    END,
    provider_last_error = CASE
        WHEN EXCLUDED.status = 'depends_failed' AND o.status = 'validating' THEN EXCLUDED.provider_last_error
        ELSE o.provider_last_error
    END,
    validation_result = CASE
        WHEN EXCLUDED.status = 'depends_failed' AND o.status = 'validating' THEN EXCLUDED.validation_result
        ELSE o.validation_result
    END,
    updated_at = now()
RETURNING
    id, remote_order_id, remote_service_id, link, status, remains,
    (xmax = 0) AS created,
    (provider_sending_at IS NOT NULL
        AND provider_sending_at > now() - make_interval(secs => %(claim_stale_sec)s)) AS being_sent,
    (provider_last_error_at IS NOT NULL
        AND provider_last_error_at > now() - make_interval(secs => %(recent_error_sec)s)) AS recently_failed;

-- name: claim_validation_group
-- The group lock in Redis makes the caller the group's only validator, so orders it claimed on an
-- earlier try of the same job are claimed again.
UPDATE provider_orders SET provider_sending_at = now(), updated_at = now()
WHERE id IN (
    SELECT id FROM provider_orders
    WHERE remote_service_id = %(remote_service_id)s AND link = %(link)s AND status = 'validating' AND remains > 0
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, remote_order_id;

-- name: finish_validation
UPDATE provider_orders SET
    status = %(status)s,
    validation_result = %(validation_result)s,
    validated_at = now(),
    provider_sending_at = NULL,
    provider_last_error = %(error)s,
    updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'validating';

-- name: record_validation_retry
-- The claim stays: the job retries through its queue message, so the poller must not dispatch again.
UPDATE provider_orders SET provider_last_error = %(error)s, provider_last_error_at = now(), updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'validating';

-- name: release_validation_claim
UPDATE provider_orders SET
    provider_sending_at = NULL,
    provider_last_error = %(error)s,
    provider_last_error_at = now(),
    updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'validating';

-- name: provider_order_by_remote_id
SELECT * FROM provider_orders WHERE remote_order_id = %(remote_order_id)s;

-- name: recent_provider_orders
-- `tgops panel orders`: the newest orders, their status, why they failed, and what the inspection found.
SELECT remote_order_id, remote_service_id, link, quantity, remains, status,
       provider_last_error AS reason,
       validation_result ->> 'chat_type' AS chat_type,
       validation_result ->> 'title' AS title,
       (validation_result ->> 'participants_count')::bigint AS participants_count,
       validated_at
FROM provider_orders
ORDER BY id DESC
LIMIT %(limit)s;
