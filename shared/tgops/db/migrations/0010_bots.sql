-- Group bots (issue 13): the dry-run outbox, the broadcast delivery ledger, and group management
-- (join-request action queue, phases, member counts and activity, inactive-member removal).

-- Every Bot API call made while no bot token is configured: recorded instead of sent.
CREATE TABLE bot_outbox (
    id          bigserial PRIMARY KEY,
    bot_key     text NOT NULL,          -- sha256 of the token, shortened: never the token
    method      text NOT NULL,
    chat_id     bigint,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Debug codes (`DBG:xxxxxx`): six base-36 characters, unique by construction: a sequence number
-- scrambled by a multiplication modulo 36^6 (a bijection, since the factor is prime to 36).
CREATE SEQUENCE debug_code_seq;
CREATE FUNCTION next_debug_code() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint := (nextval('debug_code_seq') * 1000003) % 2176782336;
    digits text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    code text := '';
BEGIN
    FOR i IN 1..6 LOOP
        code := substr(digits, (n % 36)::int + 1, 1) || code;
        n := n / 36;
    END LOOP;
    RETURN 'DBG:' || code;
END
$$;

-- One row per broadcast job, written once when the job is first received.
CREATE TABLE broadcast_jobs (
    job_id       text PRIMARY KEY,
    job          jsonb NOT NULL,        -- the BroadcastJob as queued
    bot_key      text NOT NULL,
    status       text NOT NULL DEFAULT 'sending' CHECK (status IN ('sending', 'done')),
    total        integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    delete_requested_at timestamptz
);

-- The per-chat delivery ledger. `sending` is the in-flight marker, set just before the Bot API call:
-- a row found `sending` after its holder died may have gone out, so it becomes `unconfirmed` and is
-- never sent again (at most once per chat and job).
CREATE TABLE broadcast_deliveries (
    job_id       text NOT NULL REFERENCES broadcast_jobs (job_id),
    chat_id      bigint NOT NULL,       -- the chat as listed when the job was expanded
    target_chat_id bigint NOT NULL,     -- where it goes now (a migrated group's new supergroup id)
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped', 'unconfirmed')),
    debug_code   text NOT NULL UNIQUE,
    message_id   bigint,
    attempts     integer NOT NULL DEFAULT 0,
    lease_token  text,                  -- the consumer run working on the row, until lease_until
    lease_until  timestamptz,
    claimed_at   timestamptz,           -- when it became `sending`
    error        text,
    finished_at  timestamptz,
    PRIMARY KEY (job_id, chat_id)
);
CREATE INDEX broadcast_deliveries_open ON broadcast_deliveries (job_id, chat_id)
    WHERE status IN ('pending', 'sending');

ALTER TABLE sent_messages
    ADD COLUMN bot_key text,
    ADD COLUMN kind text NOT NULL DEFAULT 'broadcast',   -- broadcast or group_post
    ADD COLUMN delete_outcome text
        CHECK (delete_outcome IN ('deleted', 'already_deleted', 'too_old', 'no_rights', 'wrong_bot', 'error'));
CREATE INDEX sent_messages_job ON sent_messages (job_id) WHERE job_id IS NOT NULL;

-- Group phases and their rules, the join-request policy, decision pacing, the removal rule.
ALTER TABLE managed_groups
    ADD COLUMN phase_changed_at timestamptz,
    -- {"monitoring_at_members": N}: growth becomes monitoring once the group has N members;
    -- {"growth_below_members": M}: monitoring goes back to growth below M.
    ADD COLUMN phase_rules jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN growth_join_action text NOT NULL DEFAULT 'approve'
        CHECK (growth_join_action IN ('approve', 'hold', 'decline')),
    ADD COLUMN monitoring_join_action text NOT NULL DEFAULT 'hold'
        CHECK (monitoring_join_action IN ('approve', 'hold', 'decline')),
    ADD COLUMN decision_interval_sec real CHECK (decision_interval_sec >= 0),  -- NULL: the setting
    ADD COLUMN next_decision_at timestamptz,
    -- {"inactive_days": N, "allow_user_ids": [...], "confirmed": false}; NULL: no removal
    ADD COLUMN kick_rule jsonb,
    ADD COLUMN kick_checked_at timestamptz,
    ADD COLUMN join_gap_detected_at timestamptz,
    ADD COLUMN join_gap_pending integer;

-- The join-request action queue: a request with a decision to make is due at `due_at`, spaced per
-- group; `deciding` is the in-flight marker of one decision call.
ALTER TABLE join_requests
    DROP CONSTRAINT join_requests_status_check,
    ADD CONSTRAINT join_requests_status_check
        CHECK (status IN ('pending', 'queued', 'deciding', 'approved', 'declined', 'failed')),
    ADD COLUMN action text CHECK (action IN ('approve', 'decline')),
    ADD COLUMN due_at timestamptz,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN source text NOT NULL DEFAULT 'webhook';  -- webhook or backfill
CREATE INDEX join_requests_due ON join_requests (chat_id, due_at) WHERE status IN ('queued', 'deciding');

CREATE TABLE group_member_counts (
    chat_id       bigint NOT NULL,
    member_count  integer NOT NULL,
    counted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, counted_at)
);

-- What the bot has seen of each member since it joined: activity is known only from this.
CREATE TABLE group_members (
    chat_id        bigint NOT NULL,
    user_id        bigint NOT NULL,
    status         text NOT NULL DEFAULT 'member',   -- Telegram's ChatMember status
    is_bot         boolean NOT NULL DEFAULT false,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz,                       -- last message seen; NULL: never seen active
    PRIMARY KEY (chat_id, user_id)
);

-- Every removal, and every preview of a rule not yet confirmed.
CREATE TABLE group_removals (
    id          bigserial PRIMARY KEY,
    chat_id     bigint NOT NULL,
    user_id     bigint NOT NULL,
    reason      text NOT NULL,
    preview     boolean NOT NULL,
    outcome     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX group_removals_chat ON group_removals (chat_id, created_at);

ALTER TABLE group_posts
    ADD COLUMN last_posted_at timestamptz,
    ADD COLUMN last_error text;
CREATE INDEX group_posts_due ON group_posts (next_post_at) WHERE is_active;

ALTER TABLE bot_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE broadcast_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE broadcast_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE group_member_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE group_removals ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    table_name text;
BEGIN
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    FOREACH table_name IN ARRAY ARRAY['bot_outbox', 'broadcast_jobs', 'broadcast_deliveries',
                                      'group_member_counts', 'group_members', 'group_removals'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE ALL ON %I FROM anon', table_name);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
            EXECUTE format('REVOKE ALL ON %I FROM authenticated', table_name);
        END IF;
    END LOOP;
END
$$;
