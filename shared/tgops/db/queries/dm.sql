-- The DM bot (tgops.dm): users and points, exactly-once updates, live list, groups, cloned bots.
-- A "day" is the UTC day, the same for every user.

-- name: dm_claim_update
-- The update's marker; no row back means an earlier delivery already handled it.
INSERT INTO dm_updates (bot_id, update_id, user_id, command)
VALUES (%(bot_id)s, %(update_id)s, %(user_id)s, %(command)s)
ON CONFLICT (bot_id, update_id) DO NOTHING
RETURNING bot_id;

-- name: dm_update_replies
SELECT replies, replied_at FROM dm_updates WHERE bot_id = %(bot_id)s AND update_id = %(update_id)s;

-- name: dm_record_replies
UPDATE dm_updates SET replies = %(replies)s WHERE bot_id = %(bot_id)s AND update_id = %(update_id)s;

-- name: dm_mark_replied
UPDATE dm_updates SET replied_at = now() WHERE bot_id = %(bot_id)s AND update_id = %(update_id)s;

-- name: dm_delete_old_updates
DELETE FROM dm_updates WHERE created_at < now() - interval '7 days';

-- name: dm_touch_user
-- Every update from a user: registers them with the initial points on first sight (today's daily points
-- included) and clears a block, since they wrote again.
INSERT INTO bot_users (user_id, username, first_name, points, daily_points_on, commands)
VALUES (%(user_id)s, %(username)s, %(first_name)s, %(initial_points)s, (now() AT TIME ZONE 'UTC')::date,
        %(commands)s)
ON CONFLICT (user_id) DO UPDATE SET
    username = EXCLUDED.username,
    first_name = EXCLUDED.first_name,
    commands = bot_users.commands + EXCLUDED.commands,
    blocked_at = NULL,
    last_seen_at = now()
RETURNING user_id, points, is_unlimited, referral_count, (xmax = 0) AS created;

-- name: dm_grant_daily_points
UPDATE bot_users
SET points = points + %(points)s, daily_points_on = (now() AT TIME ZONE 'UTC')::date
WHERE user_id = %(user_id)s AND daily_points_on IS DISTINCT FROM (now() AT TIME ZONE 'UTC')::date
RETURNING points;

-- name: dm_credit_referral
-- Only for a user registered by this very update (the caller checks), never for oneself.
WITH referred AS (
    UPDATE bot_users SET referred_by = %(referrer_id)s
    WHERE user_id = %(user_id)s AND referred_by IS NULL AND %(referrer_id)s <> %(user_id)s
    RETURNING user_id
)
UPDATE bot_users SET points = points + %(points)s, referral_count = referral_count + 1
WHERE user_id = %(referrer_id)s AND EXISTS (SELECT 1 FROM referred)
RETURNING user_id;

-- name: dm_charge_points
-- Unlimited users pay nothing; nobody's balance goes below zero.
UPDATE bot_users
SET points = CASE WHEN is_unlimited THEN points ELSE points - %(cost)s END
WHERE user_id = %(user_id)s AND (is_unlimited OR points >= %(cost)s)
RETURNING points, is_unlimited;

-- name: dm_ledger_entry
INSERT INTO bot_points_ledger (user_id, delta, reason, bot_id, update_id)
VALUES (%(user_id)s, %(delta)s, %(reason)s, %(bot_id)s, %(update_id)s);

-- name: dm_user
SELECT user_id, username, points, referral_count, is_unlimited, blocked_at FROM bot_users WHERE user_id = %(user_id)s;

-- name: dm_set_unlimited
-- Returns whether the user was unlimited before.
UPDATE bot_users u SET is_unlimited = true, unlimited_chat_id = coalesce(u.unlimited_chat_id, %(chat_id)s)
FROM (SELECT user_id, is_unlimited FROM bot_users WHERE user_id = %(user_id)s FOR UPDATE) before
WHERE u.user_id = before.user_id
RETURNING before.is_unlimited AS was_unlimited;

-- name: dm_mark_blocked
UPDATE bot_users SET blocked_at = now() WHERE user_id = %(user_id)s;

-- name: dm_live_page
SELECT platform, username, title, url FROM live_streams
WHERE is_live
ORDER BY started_at DESC, id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: dm_live_count
SELECT count(*)::int AS total FROM live_streams WHERE is_live;

-- name: live_streams_upsert
-- A stream that was not live restarts its clock; one still live keeps it.
INSERT INTO live_streams AS s (platform, username, title, url, is_live, started_at, ended_at, updated_at)
SELECT item.platform, item.username, item.title, item.url, true, now(), NULL, now()
FROM jsonb_to_recordset(%(streams)s) AS item (platform text, username text, title text, url text)
ON CONFLICT (platform, username) DO UPDATE SET
    title = EXCLUDED.title,
    url = EXCLUDED.url,
    started_at = CASE WHEN s.is_live THEN s.started_at ELSE now() END,
    is_live = true,
    ended_at = NULL,
    updated_at = now();

-- name: live_streams_end_others
-- `replace`: whoever is not in the new list is no longer live.
UPDATE live_streams SET is_live = false, ended_at = now(), updated_at = now()
WHERE is_live AND (platform, username) NOT IN (
    SELECT item.platform, item.username
    FROM jsonb_to_recordset(%(streams)s) AS item (platform text, username text)
);

-- name: live_streams_list
SELECT platform, username, title, url, is_live, started_at, ended_at, updated_at
FROM live_streams
WHERE (%(live_only)s = false OR is_live)
ORDER BY is_live DESC, started_at DESC, id
LIMIT %(limit)s;

-- name: dm_register_group
-- /init: the group becomes (again) a managed group of the bot that was asked.
INSERT INTO managed_groups AS g (chat_id, bot_id, title, username, chat_type)
VALUES (%(chat_id)s, %(bot_id)s, %(title)s, %(username)s, %(chat_type)s)
ON CONFLICT (chat_id) DO UPDATE SET
    bot_id = EXCLUDED.bot_id,
    title = EXCLUDED.title,
    username = EXCLUDED.username,
    is_active = true,
    consecutive_failures = 0,
    updated_at = now()
RETURNING id, (xmax = 0) AS created;

-- name: dm_managed_group
SELECT id, is_active FROM managed_groups WHERE chat_id = %(chat_id)s;

-- name: dm_bot
SELECT id, telegram_bot_id, username, token_encrypted, owner_user_id, is_active FROM bots WHERE id = %(bot_id)s;

-- name: dm_claim_bot
-- A bot another user runs stays theirs; one that was removed, or is the same owner's, is taken (again).
INSERT INTO bots AS b (telegram_bot_id, username, webhook_secret_hash, owner_user_id)
VALUES (%(telegram_bot_id)s, %(username)s, %(webhook_secret_hash)s, %(owner_user_id)s)
ON CONFLICT (telegram_bot_id) DO UPDATE SET
    username = EXCLUDED.username,
    webhook_secret_hash = EXCLUDED.webhook_secret_hash,
    owner_user_id = EXCLUDED.owner_user_id,
    is_active = true,
    deactivated_at = NULL,
    deactivated_reason = NULL,
    updated_at = now()
WHERE NOT b.is_active OR b.owner_user_id = EXCLUDED.owner_user_id
RETURNING id;

-- name: dm_store_bot_token
UPDATE bots SET token_encrypted = %(token_encrypted)s, webhook_url = %(webhook_url)s, updated_at = now()
WHERE id = %(bot_id)s;

-- name: dm_owned_bots
SELECT id, username FROM bots WHERE owner_user_id = %(owner_user_id)s AND is_active AND NOT is_main ORDER BY id;

-- name: dm_deactivate_bot
-- By its owner (owner_user_id given) or by tgops itself (a revoked token: owner_user_id NULL).
UPDATE bots SET is_active = false, deactivated_at = now(), deactivated_reason = %(reason)s, updated_at = now()
WHERE id = %(bot_id)s AND is_active AND NOT is_main
  AND (%(owner_user_id)s::bigint IS NULL OR owner_user_id = %(owner_user_id)s)
RETURNING id, token_encrypted;
