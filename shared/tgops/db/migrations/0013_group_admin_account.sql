-- Backfill of join requests missed while the webhook was down (issue 13): a fleet account that is an
-- admin of the group lists the requests waiting in Telegram (MTProto messages.getChatInviteImporters,
-- which bots may not call) and each one is recorded as the webhook would have.

ALTER TABLE managed_groups
    -- The fleet account that is an admin of the group; NULL: no backfill, the gap is only reported.
    ADD COLUMN admin_account_id bigint REFERENCES mtproto_accounts (id) ON DELETE SET NULL,
    ADD COLUMN join_backfill_requested_at timestamptz,  -- a backfill was queued (one per interval)
    ADD COLUMN join_backfill_at timestamptz,            -- the last backfill that went through to the end
    ADD COLUMN join_backfill_recorded integer,          -- requests it recorded that we had not seen
    -- Why the last backfill could not run (e.g. CHAT_ADMIN_REQUIRED); cleared by the next success or
    -- by assigning another account. A refused group is not asked again before the refusal retry.
    ADD COLUMN join_backfill_error text,
    ADD COLUMN join_backfill_error_at timestamptz;

CREATE INDEX managed_groups_admin_account ON managed_groups (admin_account_id)
    WHERE admin_account_id IS NOT NULL;
