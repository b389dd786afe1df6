-- tgops foundation schema: every table of ARCHITECTURE.md.
-- RLS is enabled on every table with no policy, so Supabase's anon and authenticated roles read
-- nothing through PostgREST; tgops itself connects as the owner.

CREATE TABLE provider_orders (
    id                      bigserial PRIMARY KEY,
    remote_order_id         bigint NOT NULL UNIQUE,
    remote_service_id       bigint NOT NULL,
    raw_link                text NOT NULL,
    link                    text NOT NULL,
    quantity                integer NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    remains                 integer NOT NULL DEFAULT 0,
    start_count             integer,
    status                  text NOT NULL DEFAULT 'validating' CHECK (status IN (
                                'validating', 'depends_ok', 'depends_failed', 'awaiting', 'in_progress',
                                'pending', 'completed', 'partial', 'canceled')),
    provider_sending_at     timestamptz,
    provider_last_error_at  timestamptz,
    provider_last_error     text,
    validation_result       jsonb,
    validated_at            timestamptz,
    next_run_at             timestamptz,
    interval_seconds        integer NOT NULL DEFAULT 60 CHECK (interval_seconds > 0),
    execution_meta          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_orders_validating_group ON provider_orders (remote_service_id, link)
    WHERE status = 'validating';
CREATE INDEX provider_orders_due ON provider_orders (next_run_at)
    WHERE remains > 0 AND status IN ('awaiting', 'in_progress', 'pending');

CREATE TABLE telegram_accounts (
    id                   bigserial PRIMARY KEY,
    provider_account_id  text UNIQUE,
    phone                text,
    is_active            boolean NOT NULL DEFAULT true,
    meta                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE telegram_tasks (
    id                   char(26) PRIMARY KEY,
    order_id             bigint NOT NULL REFERENCES provider_orders (id),
    action               text NOT NULL,
    link_hash            text NOT NULL,
    telegram_account_id  bigint REFERENCES telegram_accounts (id),
    provider_account_id  text,
    status               text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'leased', 'pending', 'done', 'failed')),
    leased_until         timestamptz,
    lease_version        integer NOT NULL DEFAULT 0,
    attempt              integer NOT NULL DEFAULT 0,
    payload              jsonb NOT NULL DEFAULT '{}'::jsonb,
    result               jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telegram_tasks_status_lease ON telegram_tasks (status, leased_until);
CREATE INDEX telegram_tasks_order_status ON telegram_tasks (order_id, status);
CREATE INDEX telegram_tasks_account_status ON telegram_tasks (telegram_account_id, status);

CREATE TABLE mtproto_accounts (
    id                 bigserial PRIMARY KEY,
    phone              text NOT NULL UNIQUE,
    session_encrypted  text,
    proxy_type         text CHECK (proxy_type IN ('socks5', 'socks4', 'http', 'mtproxy')),
    proxy_host         text,
    proxy_port         integer,
    proxy_username     text,
    proxy_password_encrypted text,
    is_probe           boolean NOT NULL DEFAULT false,
    is_active          boolean NOT NULL DEFAULT true,
    disabled_at        timestamptz,
    disabled_reason    text,
    cooldown_until     timestamptz,
    failure_count      integer NOT NULL DEFAULT 0,
    last_error_code    text,
    last_error_at      timestamptz,
    last_used_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mtproto_accounts_available ON mtproto_accounts (is_probe, cooldown_until)
    WHERE is_active AND disabled_at IS NULL;

CREATE TABLE mtproto_account_tasks (
    id               bigserial PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES mtproto_accounts (id) ON DELETE CASCADE,
    task_type        text NOT NULL,
    payload_json     jsonb,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed', 'retry')),
    attempts         integer NOT NULL DEFAULT 0,
    retry_at         timestamptz,
    last_error_code  text,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, task_type)
);
CREATE INDEX mtproto_account_tasks_status ON mtproto_account_tasks (status, retry_at);

CREATE TABLE bots (
    id                   bigserial PRIMARY KEY,
    telegram_bot_id      bigint UNIQUE,
    username             text,
    token_encrypted      text,
    webhook_secret_hash  text NOT NULL,
    owner_user_id        bigint,
    is_main              boolean NOT NULL DEFAULT false,
    is_active            boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bots_one_main ON bots (is_main) WHERE is_main;

CREATE TABLE managed_groups (
    id                     bigserial PRIMARY KEY,
    chat_id                bigint NOT NULL UNIQUE,
    bot_id                 bigint REFERENCES bots (id),
    title                  text,
    username               text,
    chat_type              text NOT NULL DEFAULT 'supergroup',
    display_name           text,
    invite_link            text,
    phase                  text NOT NULL DEFAULT 'growth' CHECK (phase IN ('growth', 'monitoring')),
    is_active              boolean NOT NULL DEFAULT true,
    final_message_allowed  boolean NOT NULL DEFAULT true,
    member_count           integer,
    member_count_at        timestamptz,
    consecutive_failures   integer NOT NULL DEFAULT 0,
    last_failure_at        timestamptz,
    last_failure_reason    text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE join_requests (
    id            bigserial PRIMARY KEY,
    chat_id       bigint NOT NULL,
    user_id       bigint NOT NULL,
    username      text,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'declined', 'failed')),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    error         text,
    UNIQUE (chat_id, user_id)
);

CREATE TABLE group_posts (
    id                bigserial PRIMARY KEY,
    chat_id           bigint NOT NULL,
    text              text NOT NULL,
    photo_url         text,
    buttons           jsonb NOT NULL DEFAULT '[]'::jsonb,
    interval_minutes  integer NOT NULL DEFAULT 60 CHECK (interval_minutes > 0),
    next_post_at      timestamptz NOT NULL DEFAULT now(),
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sent_messages (
    id           bigserial PRIMARY KEY,
    job_id       text,
    chat_id      bigint NOT NULL,
    message_id   bigint,
    debug_code   text UNIQUE,
    status       text NOT NULL CHECK (status IN ('sent', 'failed', 'deleted', 'delete_failed')),
    error        text,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX sent_messages_chat ON sent_messages (chat_id, sent_at);

CREATE TABLE bot_users (
    user_id          bigint PRIMARY KEY,
    username         text,
    first_name       text,
    points           integer NOT NULL DEFAULT 0 CHECK (points >= 0),
    daily_points_on  date,
    referred_by      bigint,
    referral_count   integer NOT NULL DEFAULT 0,
    is_unlimited     boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE live_streams (
    id          bigserial PRIMARY KEY,
    platform    text NOT NULL DEFAULT 'instagram',
    username    text NOT NULL,
    title       text,
    url         text,
    is_live     boolean NOT NULL DEFAULT true,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    UNIQUE (platform, username)
);

CREATE TABLE webhook_dedupe (
    bot_id     bigint NOT NULL,
    update_id  bigint NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, update_id)
);
CREATE INDEX webhook_dedupe_seen_at ON webhook_dedupe (seen_at);

DO $$
DECLARE
    table_name text;
BEGIN
    FOR table_name IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
    END LOOP;
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema()) || ' FROM anon';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema()) || ' FROM authenticated';
    END IF;
END
$$;
