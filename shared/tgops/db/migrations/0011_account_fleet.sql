-- Account fleet (issue 17): what the setup pipeline needs beyond seed 003's mtproto_account_tasks.
--
-- result_json  what a task set (photo id, story id, media digest), so a rerun can tell it is done;
-- enqueued_at  when the dispatcher last queued the task: a second dispatch skips it until the runner
--              finishes it or the message is presumed lost (setup_enqueue_stale_sec);
-- started_at   when a runner took it (status running): a runner that died leaves it eligible again later.
-- The dispatcher reads open tasks only, through a partial index a task leaves when it is done or failed.

ALTER TABLE mtproto_account_tasks
    ADD COLUMN result_json jsonb,
    ADD COLUMN enqueued_at timestamptz,
    ADD COLUMN started_at timestamptz;

CREATE INDEX mtproto_account_tasks_open ON mtproto_account_tasks (retry_at NULLS FIRST, id)
    INCLUDE (account_id, task_type, status)
    WHERE status IN ('pending', 'retry', 'running');

DROP INDEX mtproto_account_tasks_status;

-- The table's RLS was enabled by 0001; this migration adds no table.
