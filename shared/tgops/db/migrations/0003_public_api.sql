-- Public API: operators' API keys. Only the SHA-256 of a key is stored; the key itself is shown once,
-- when `tgops apikey create` makes it. A revoked key keeps its row, so the list shows who had access.

CREATE TABLE api_keys (
    id                     bigserial PRIMARY KEY,
    name                   text NOT NULL CHECK (name <> ''),
    key_prefix             text NOT NULL,
    key_hash               text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    rate_limit_per_window  integer CHECK (rate_limit_per_window > 0),  -- NULL: the settings' default
    created_at             timestamptz NOT NULL DEFAULT now(),
    last_used_at           timestamptz,
    revoked_at             timestamptz
);

-- The groups list pages by id within a filter on the active flag.
CREATE INDEX managed_groups_active_id ON managed_groups (is_active, id);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON api_keys FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON api_keys FROM authenticated;
    END IF;
END
$$;
