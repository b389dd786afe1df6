-- name: bot_outbox_insert
INSERT INTO bot_outbox (bot_key, method, chat_id, params)
VALUES (%(bot_key)s, %(method)s, %(chat_id)s, %(params)s)
RETURNING id;

-- name: bot_outbox_list
-- The latest calls first, optionally one method only.
SELECT id, bot_key, method, chat_id, params, created_at FROM bot_outbox
WHERE %(method)s::text IS NULL OR method = %(method)s::text
ORDER BY id DESC
LIMIT %(limit)s;
