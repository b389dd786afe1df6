-- name: set_session_timeouts
-- Per connection, once: how long a statement may run, wait for a lock, or sit idle in a transaction (ms).
SELECT set_config('statement_timeout', %(statement_ms)s, false),
       set_config('lock_timeout', %(lock_ms)s, false),
       set_config('idle_in_transaction_session_timeout', %(idle_in_transaction_ms)s, false);
