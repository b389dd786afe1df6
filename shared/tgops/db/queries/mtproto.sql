-- name: mtproto_available_accounts
-- Accounts the pool may try: active, not disabled, not cooling down, of the wanted role.
SELECT id, proxy_type, proxy_host, proxy_port, proxy_username
FROM mtproto_accounts
WHERE is_active AND disabled_at IS NULL AND session_encrypted IS NOT NULL
  AND is_probe = %(is_probe)s
  AND (cooldown_until IS NULL OR cooldown_until <= now())
ORDER BY last_used_at NULLS FIRST, id
LIMIT %(limit)s;

-- name: mtproto_claim_account
-- Run while holding the account's lock: a cooldown written by a previous holder is seen here.
UPDATE mtproto_accounts
SET last_used_at = now()
WHERE id = %(id)s AND is_active AND disabled_at IS NULL AND session_encrypted IS NOT NULL
  AND (cooldown_until IS NULL OR cooldown_until <= now())
RETURNING id, session_encrypted, proxy_password_encrypted;

-- name: mtproto_set_cooldown
UPDATE mtproto_accounts
SET cooldown_until = GREATEST(COALESCE(cooldown_until, now()), now() + make_interval(secs => %(seconds)s)),
    failure_count = failure_count + 1,
    last_error_code = %(error_code)s,
    last_error_at = now(),
    updated_at = now()
WHERE id = %(id)s;

-- name: mtproto_disable_account
UPDATE mtproto_accounts
SET disabled_at = now(),
    disabled_reason = %(reason)s,
    failure_count = failure_count + 1,
    last_error_code = %(reason)s,
    last_error_at = now(),
    updated_at = now()
WHERE id = %(id)s AND disabled_at IS NULL;

-- name: mtproto_record_failure
UPDATE mtproto_accounts
SET failure_count = failure_count + 1,
    last_error_code = %(error_code)s,
    last_error_at = now(),
    updated_at = now()
WHERE id = %(id)s;

-- name: mtproto_insert_account
INSERT INTO mtproto_accounts (
    phone, session_encrypted, is_probe, proxy_type, proxy_host, proxy_port, proxy_username, proxy_password_encrypted
) VALUES (
    %(phone)s, %(session_encrypted)s, %(is_probe)s, %(proxy_type)s, %(proxy_host)s, %(proxy_port)s,
    %(proxy_username)s, %(proxy_password_encrypted)s
)
RETURNING id;

-- name: mtproto_get_account
SELECT id, phone, is_probe, is_active, disabled_at, disabled_reason, cooldown_until,
       cooldown_until > now() AS cooling_down, failure_count, last_error_code, last_used_at
FROM mtproto_accounts
WHERE id = %(id)s;

-- name: mtproto_seed_simulated_account
-- `tgops dev` with a simulated Telegram (tgops.telegram.simulated): the probe account exists and is active.
INSERT INTO mtproto_accounts (phone, session_encrypted, is_probe)
VALUES (%(phone)s, %(session_encrypted)s, true)
ON CONFLICT (phone) DO UPDATE SET
    session_encrypted = EXCLUDED.session_encrypted,
    is_probe = true,
    is_active = true,
    updated_at = now()
RETURNING id;

-- name: mtproto_deactivate_simulated_accounts
UPDATE mtproto_accounts SET is_active = false, updated_at = now()
WHERE phone LIKE %(phone_pattern)s AND is_active;

-- name: mtproto_account_state
-- One account as MtprotoPool.call_on needs it: its proxy, whether it may be called, how long it still rests.
SELECT id, is_probe, proxy_type, proxy_host, proxy_port, proxy_username,
       is_active AND session_encrypted IS NOT NULL AS usable,
       disabled_at IS NOT NULL AS disabled,
       GREATEST(0, CEIL(EXTRACT(EPOCH FROM cooldown_until - now())))::int AS cooldown_left_sec
FROM mtproto_accounts
WHERE id = %(id)s;

-- name: mtproto_seed_simulated_action_account
-- `tgops dev` with a simulated Telegram: a simulated action account exists and is active; its session is
-- written right after, sealed for the id returned.
INSERT INTO mtproto_accounts (phone, is_probe)
VALUES (%(phone)s, false)
ON CONFLICT (phone) DO UPDATE SET is_probe = false, is_active = true, updated_at = now()
RETURNING id;
