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
