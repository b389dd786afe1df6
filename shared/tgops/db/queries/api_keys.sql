-- name: api_key_insert
INSERT INTO api_keys (name, key_prefix, key_hash, rate_limit_per_window)
VALUES (%(name)s, %(key_prefix)s, %(key_hash)s, %(rate_limit_per_window)s)
RETURNING id, name, key_prefix, rate_limit_per_window, created_at, last_used_at, revoked_at;

-- name: api_key_find_active
-- Marks the key used at most once a minute, so a busy key does not write on every request.
WITH found AS (
    SELECT id, name, key_prefix, key_hash, rate_limit_per_window
    FROM api_keys
    WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE id IN (SELECT id FROM found)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT id, name, key_prefix, key_hash, rate_limit_per_window FROM found;

-- name: api_key_revoke
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s
RETURNING id, name, key_prefix, rate_limit_per_window, created_at, last_used_at, revoked_at;

-- name: api_key_list
SELECT id, name, key_prefix, rate_limit_per_window, created_at, last_used_at, revoked_at
FROM api_keys
ORDER BY id;
