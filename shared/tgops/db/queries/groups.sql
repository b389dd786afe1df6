-- name: group_list
-- Keyset pages: ids above %(after_id)s, optionally only active or only inactive groups.
SELECT * FROM managed_groups
WHERE id > %(after_id)s
  AND (%(is_active)s::boolean IS NULL OR is_active = %(is_active)s::boolean)
ORDER BY id
LIMIT %(limit)s;

-- name: group_count
SELECT count(*) AS total FROM managed_groups
WHERE %(is_active)s::boolean IS NULL OR is_active = %(is_active)s::boolean;

-- name: group_get
SELECT * FROM managed_groups WHERE id = %(id)s;

-- name: group_get_by_chat_id
SELECT * FROM managed_groups WHERE chat_id = %(chat_id)s;

-- name: group_insert
INSERT INTO managed_groups
    (chat_id, title, username, chat_type, display_name, invite_link, is_active, final_message_allowed)
VALUES
    (%(chat_id)s, %(title)s, %(username)s, %(chat_type)s, %(display_name)s, %(invite_link)s,
     %(is_active)s, %(final_message_allowed)s)
RETURNING *;

-- name: group_update
-- Each `set_<field>` flag says whether the request named that field, so a field can be set to NULL.
-- Reactivating a group clears its failure streak: it was deactivated after failures, now retried.
UPDATE managed_groups SET
    title                 = CASE WHEN %(set_title)s THEN %(title)s ELSE title END,
    username              = CASE WHEN %(set_username)s THEN %(username)s ELSE username END,
    chat_type             = CASE WHEN %(set_chat_type)s THEN %(chat_type)s ELSE chat_type END,
    display_name          = CASE WHEN %(set_display_name)s THEN %(display_name)s ELSE display_name END,
    invite_link           = CASE WHEN %(set_invite_link)s THEN %(invite_link)s ELSE invite_link END,
    final_message_allowed = CASE WHEN %(set_final_message_allowed)s
                                 THEN %(final_message_allowed)s ELSE final_message_allowed END,
    consecutive_failures  = CASE WHEN %(set_is_active)s AND %(is_active)s AND NOT is_active
                                 THEN 0 ELSE consecutive_failures END,
    is_active             = CASE WHEN %(set_is_active)s THEN %(is_active)s ELSE is_active END,
    updated_at            = now()
WHERE id = %(id)s
RETURNING *;

-- name: group_deactivate
UPDATE managed_groups SET is_active = false, updated_at = CASE WHEN is_active THEN now() ELSE updated_at END
WHERE id = %(id)s
RETURNING *;

-- name: group_record_send_failure
-- A failure of the chat itself (kicked, blocked, gone): after `max_failures` in a row the group is
-- deactivated with the reason and is not sent to again until reactivated.
UPDATE managed_groups SET
    consecutive_failures = consecutive_failures + 1,
    last_failure_at      = now(),
    last_failure_reason  = %(reason)s,
    is_active            = is_active AND consecutive_failures + 1 < %(max_failures)s,
    updated_at           = now()
WHERE chat_id = %(chat_id)s
RETURNING id, is_active, consecutive_failures;

-- name: group_record_send_success
UPDATE managed_groups SET consecutive_failures = 0, updated_at = now()
WHERE chat_id = %(chat_id)s AND consecutive_failures <> 0;

-- name: group_migrate_chat
-- A group upgraded to a supergroup has a new chat id: the group and the deliveries still to make follow.
WITH moved AS (
    UPDATE managed_groups SET chat_id = %(new_chat_id)s, chat_type = 'supergroup', updated_at = now()
    WHERE chat_id = %(old_chat_id)s
      AND NOT EXISTS (SELECT 1 FROM managed_groups WHERE chat_id = %(new_chat_id)s)
    RETURNING id
)
UPDATE broadcast_deliveries SET target_chat_id = %(new_chat_id)s
WHERE target_chat_id = %(old_chat_id)s AND status = 'pending';

-- name: join_request_record
-- Once per chat and user: a redelivered update finds the row and changes nothing. A user who asks
-- again after a decision reopens the row: Telegram's dates are whole seconds, and asking again takes
-- leaving first, so a request dated within 2 s of the decision is the same request seen again.
INSERT INTO join_requests (chat_id, user_id, username, requested_at, source)
VALUES (%(chat_id)s, %(user_id)s, %(username)s, %(requested_at)s, %(source)s)
ON CONFLICT (chat_id, user_id) DO UPDATE SET
    status = 'pending', username = EXCLUDED.username, requested_at = EXCLUDED.requested_at,
    decided_at = NULL, action = NULL, due_at = NULL, claimed_at = NULL, error = NULL, attempts = 0,
    source = EXCLUDED.source
WHERE join_requests.status IN ('approved', 'declined', 'failed')
  AND join_requests.decided_at + interval '2 seconds' < EXCLUDED.requested_at
RETURNING *;

-- name: join_request_schedule
-- The group's next decision slot, taken atomically: decisions of one group are `interval` apart.
WITH slot AS (
    UPDATE managed_groups
    SET next_decision_at = GREATEST(now(), coalesce(next_decision_at, now()))
                           + make_interval(secs => coalesce(decision_interval_sec, %(default_interval_sec)s))
    WHERE chat_id = %(chat_id)s
    RETURNING next_decision_at - make_interval(secs => coalesce(decision_interval_sec, %(default_interval_sec)s))
              AS due_at
)
UPDATE join_requests SET status = 'queued', action = %(action)s, due_at = (SELECT due_at FROM slot)
WHERE id = %(id)s AND status = 'pending' AND EXISTS (SELECT 1 FROM slot)
RETURNING *;

-- name: join_request_claim_due
-- Due decisions, at most one per group, each group's last decision at least its interval behind
-- (measured from the calls themselves, so a late one never squeezes the next), marked in flight.
-- A decision in flight for a minute had its holder die: it is tried again, and Telegram's answer
-- tells whether the first call went through.
WITH candidates AS (
    SELECT DISTINCT ON (r.chat_id) r.id, r.chat_id
    FROM join_requests r
    JOIN managed_groups g ON g.chat_id = r.chat_id
    WHERE r.due_at <= clock_timestamp()
      AND (r.status = 'queued' OR (r.status = 'deciding' AND r.claimed_at < now() - interval '60 seconds'))
      AND NOT EXISTS (
          SELECT 1 FROM join_requests recent
          WHERE recent.chat_id = r.chat_id
            AND recent.claimed_at > clock_timestamp()
                - make_interval(secs => coalesce(g.decision_interval_sec, %(default_interval_sec)s) * %(margin)s))
    ORDER BY r.chat_id, r.due_at
),
picked AS (
    SELECT r.id FROM join_requests r JOIN candidates c ON c.id = r.id
    ORDER BY r.due_at
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE join_requests SET status = 'deciding', claimed_at = clock_timestamp(), attempts = attempts + 1
WHERE id IN (SELECT id FROM picked)
RETURNING *;

-- name: join_request_next_due
-- Seconds until the next decision may be claimed in any group; NULL when none waits.
SELECT extract(epoch FROM min(GREATEST(r.due_at, last.claimed_at + make_interval(
           secs => coalesce(g.decision_interval_sec, %(default_interval_sec)s) * %(margin)s)))
       - clock_timestamp()) AS wait_sec,
       count(*) AS waiting
FROM join_requests r
JOIN managed_groups g ON g.chat_id = r.chat_id
LEFT JOIN LATERAL (
    SELECT max(claimed_at) AS claimed_at FROM join_requests WHERE chat_id = r.chat_id
) AS last ON true
WHERE r.status IN ('queued', 'deciding');

-- name: join_request_decided
UPDATE join_requests SET status = %(status)s, decided_at = now(), error = %(error)s
WHERE id = %(id)s AND status = 'deciding';

-- name: join_request_chats_due
SELECT DISTINCT chat_id FROM join_requests
WHERE status IN ('queued', 'deciding') AND due_at <= now() + interval '1 minute'
LIMIT %(limit)s;

-- name: join_request_pending_count
SELECT count(*) AS pending FROM join_requests
WHERE chat_id = %(chat_id)s AND status IN ('pending', 'queued', 'deciding');

-- name: group_member_seen
-- A member the bot saw (a message: active now; a join: seen, not active).
INSERT INTO group_members (chat_id, user_id, status, is_bot, last_active_at)
VALUES (%(chat_id)s, %(user_id)s, %(status)s, %(is_bot)s, CASE WHEN %(active)s THEN now() END)
ON CONFLICT (chat_id, user_id) DO UPDATE SET
    status = coalesce(%(new_status)s, group_members.status),
    last_active_at = CASE WHEN %(active)s THEN now() ELSE group_members.last_active_at END;

-- name: group_set_bot_status
-- The bot's own membership changed: removed from the group, it is deactivated with the reason.
UPDATE managed_groups SET
    is_active = is_active AND %(still_member)s,
    last_failure_reason = CASE WHEN %(still_member)s THEN last_failure_reason ELSE %(reason)s END,
    last_failure_at = CASE WHEN %(still_member)s THEN last_failure_at ELSE now() END,
    updated_at = now()
WHERE chat_id = %(chat_id)s;

-- name: group_set_member_count
-- The count and its history; the phase follows the group's rules (a member-count target).
WITH counted AS (
    INSERT INTO group_member_counts (chat_id, member_count) VALUES (%(chat_id)s, %(member_count)s)
)
UPDATE managed_groups SET
    member_count = %(member_count)s,
    member_count_at = now(),
    phase = CASE
        WHEN phase = 'growth' AND (phase_rules ->> 'monitoring_at_members')::int <= %(member_count)s
            THEN 'monitoring'
        WHEN phase = 'monitoring' AND (phase_rules ->> 'growth_below_members')::int > %(member_count)s
            THEN 'growth'
        ELSE phase END,
    updated_at = now()
WHERE chat_id = %(chat_id)s
RETURNING phase, (SELECT phase FROM managed_groups WHERE chat_id = %(chat_id)s) AS previous_phase;

-- name: group_phase_changed
UPDATE managed_groups SET phase_changed_at = now() WHERE chat_id = %(chat_id)s;

-- name: group_member_count_history
SELECT member_count, counted_at FROM group_member_counts
WHERE chat_id = %(chat_id)s ORDER BY counted_at DESC LIMIT %(limit)s;

-- name: group_set_join_gap
UPDATE managed_groups SET
    join_gap_pending = %(missing)s,
    join_gap_detected_at = CASE WHEN %(missing)s > 0 THEN now() ELSE NULL END
WHERE chat_id = %(chat_id)s;

-- name: groups_due_member_count
SELECT chat_id FROM managed_groups
WHERE is_active AND (member_count_at IS NULL OR member_count_at < now() - make_interval(mins => %(interval_min)s))
ORDER BY chat_id LIMIT %(limit)s;

-- name: groups_due_kick
SELECT chat_id FROM managed_groups
WHERE is_active AND kick_rule IS NOT NULL
  AND (kick_checked_at IS NULL OR kick_checked_at < now() - make_interval(mins => %(interval_min)s))
ORDER BY chat_id LIMIT %(limit)s;

-- name: group_kick_candidates
-- Members the bot has watched for longer than the rule's inactivity without seeing them active.
SELECT user_id, coalesce(last_active_at, first_seen_at) AS last_seen, last_active_at IS NULL AS never_active
FROM group_members
WHERE chat_id = %(chat_id)s AND status IN ('member', 'restricted') AND NOT is_bot
  AND coalesce(last_active_at, first_seen_at) < now() - make_interval(days => %(inactive_days)s)
  AND NOT (user_id = ANY (%(spared_user_ids)s::bigint[]))
ORDER BY user_id;

-- name: group_known_member_count
SELECT count(*) AS known FROM group_members
WHERE chat_id = %(chat_id)s AND status IN ('member', 'restricted', 'administrator', 'creator');

-- name: group_removal_record
INSERT INTO group_removals (chat_id, user_id, reason, preview, outcome)
VALUES (%(chat_id)s, %(user_id)s, %(reason)s, %(preview)s, %(outcome)s);

-- name: group_member_removed
UPDATE group_members SET status = 'kicked' WHERE chat_id = %(chat_id)s AND user_id = %(user_id)s;

-- name: group_kick_checked
UPDATE managed_groups SET kick_checked_at = now() WHERE chat_id = %(chat_id)s;

-- name: group_confirm_kick_rule
UPDATE managed_groups SET kick_rule = kick_rule || '{"confirmed": true}'::jsonb, updated_at = now()
WHERE id = %(id)s AND kick_rule IS NOT NULL
RETURNING *;

-- name: group_set_rules
-- Phase rules, join policy per phase, decision pacing, the removal rule and the admin account of one
-- group. Each `set_<field>` flag says whether the request named that field, so a field can be cleared.
-- Another admin account starts afresh: the previous one's refusal is not its own.
UPDATE managed_groups SET
    phase_rules            = CASE WHEN %(set_phase_rules)s THEN %(phase_rules)s ELSE phase_rules END,
    growth_join_action     = CASE WHEN %(set_growth_join_action)s
                                  THEN %(growth_join_action)s ELSE growth_join_action END,
    monitoring_join_action = CASE WHEN %(set_monitoring_join_action)s
                                  THEN %(monitoring_join_action)s ELSE monitoring_join_action END,
    decision_interval_sec  = CASE WHEN %(set_decision_interval_sec)s
                                  THEN %(decision_interval_sec)s ELSE decision_interval_sec END,
    kick_rule              = CASE WHEN %(set_kick_rule)s THEN %(kick_rule)s ELSE kick_rule END,
    kick_checked_at        = CASE WHEN %(set_kick_rule)s THEN NULL ELSE kick_checked_at END,  -- preview soon
    phase_changed_at       = CASE WHEN %(set_phase)s AND %(phase)s IS DISTINCT FROM phase
                                  THEN now() ELSE phase_changed_at END,
    phase                  = CASE WHEN %(set_phase)s THEN %(phase)s ELSE phase END,
    join_backfill_error    = CASE WHEN %(set_admin_account_id)s
                                   AND %(admin_account_id)s::bigint IS DISTINCT FROM admin_account_id
                                  THEN NULL ELSE join_backfill_error END,
    join_backfill_error_at = CASE WHEN %(set_admin_account_id)s
                                   AND %(admin_account_id)s::bigint IS DISTINCT FROM admin_account_id
                                  THEN NULL ELSE join_backfill_error_at END,
    admin_account_id       = CASE WHEN %(set_admin_account_id)s
                                  THEN %(admin_account_id)s::bigint ELSE admin_account_id END,
    updated_at             = now()
WHERE id = %(id)s
RETURNING *;

-- name: group_admin_account_exists
SELECT EXISTS (SELECT 1 FROM mtproto_accounts WHERE id = %(account_id)s) AS exists;

-- name: group_request_backfill
-- A group with a gap and an admin account gets one backfill per interval; a refused one waits longer.
UPDATE managed_groups SET join_backfill_requested_at = now()
WHERE chat_id = %(chat_id)s AND admin_account_id IS NOT NULL AND coalesce(join_gap_pending, 0) > 0
  AND (join_backfill_requested_at IS NULL
       OR join_backfill_requested_at < now() - make_interval(mins => %(interval_min)s))
  AND (join_backfill_error_at IS NULL
       OR join_backfill_error_at < now() - make_interval(mins => %(refused_retry_min)s))
RETURNING chat_id, admin_account_id, invite_link, username;

-- name: group_backfill_target
SELECT chat_id, admin_account_id, invite_link, username FROM managed_groups WHERE chat_id = %(chat_id)s;

-- name: group_backfill_done
UPDATE managed_groups SET
    join_backfill_at = now(), join_backfill_recorded = %(recorded)s,
    join_backfill_error = NULL, join_backfill_error_at = NULL
WHERE chat_id = %(chat_id)s;

-- name: group_backfill_failed
UPDATE managed_groups SET join_backfill_error = %(error)s, join_backfill_error_at = now()
WHERE chat_id = %(chat_id)s;

-- name: group_posts_claim_due
-- Due posts move to their next time before they are sent: a post goes out at most once per slot.
UPDATE group_posts p SET next_post_at = now() + make_interval(mins => p.interval_minutes), last_posted_at = now()
FROM (
    SELECT gp.id FROM group_posts gp
    JOIN managed_groups g ON g.chat_id = gp.chat_id AND g.is_active
    WHERE gp.is_active AND gp.next_post_at <= now()
    ORDER BY gp.next_post_at
    LIMIT %(limit)s
    FOR UPDATE OF gp SKIP LOCKED
) AS due
WHERE p.id = due.id
RETURNING p.*, next_debug_code() AS debug_code;

-- name: group_post_result
UPDATE group_posts SET last_error = %(error)s WHERE id = %(id)s;
