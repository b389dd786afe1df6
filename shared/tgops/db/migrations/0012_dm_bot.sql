-- The DM bot (seed 004): users' points with a ledger, exactly-once handling of each update, blocked
-- users, cloned bots' state, and the live list's freshness.

ALTER TABLE bot_users
    ADD COLUMN blocked_at timestamptz,          -- the user blocked the bot: nothing is sent until they write
    ADD COLUMN unlimited_chat_id bigint,        -- the group whose /activate made the user unlimited
    ADD COLUMN commands integer NOT NULL DEFAULT 0;

-- Every change of a user's points, with why: the balance's audit trail and the dashboard's points per day.
CREATE TABLE bot_points_ledger (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES bot_users (user_id),
    delta       integer NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('initial', 'daily', 'referral', 'live_check')),
    bot_id      bigint NOT NULL,
    update_id   bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_points_ledger_user ON bot_points_ledger (user_id, created_at);
CREATE INDEX bot_points_ledger_day ON bot_points_ledger (created_at);

-- One row per update the DM bot handled: written in the transaction that applies the update's effects,
-- so a redelivered update applies nothing twice; `replies` are the Bot API calls it answered with,
-- re-sent when a redelivery finds them not yet `replied_at`.
CREATE TABLE dm_updates (
    bot_id      bigint NOT NULL,
    update_id   bigint NOT NULL,
    user_id     bigint,
    command     text,
    replies     jsonb NOT NULL DEFAULT '[]'::jsonb,
    replied_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, update_id)
);
CREATE INDEX dm_updates_created_at ON dm_updates (created_at);

ALTER TABLE bots
    ADD COLUMN deactivated_at timestamptz,
    ADD COLUMN deactivated_reason text,
    ADD COLUMN webhook_url text;
CREATE INDEX bots_owner ON bots (owner_user_id) WHERE is_active;

ALTER TABLE live_streams ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX live_streams_live ON live_streams (started_at DESC, id) WHERE is_live;

ALTER TABLE bot_points_ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE dm_updates ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON bot_points_ledger, dm_updates FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON bot_points_ledger, dm_updates FROM authenticated;
    END IF;
END
$$;
