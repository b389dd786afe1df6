-- Provider pull (seed 002): what task generation, leasing and reports need beyond 0001.
-- Order columns use IF NOT EXISTS because the inspection work may add the same execution fields.

ALTER TABLE provider_orders ADD COLUMN IF NOT EXISTS action text;
ALTER TABLE provider_orders ADD COLUMN IF NOT EXISTS per_call integer NOT NULL DEFAULT 1 CHECK (per_call > 0);
ALTER TABLE provider_orders ADD COLUMN IF NOT EXISTS post_id bigint;

-- available_at is "when this task may next be pulled": now for a new task, leased_until while it
-- is leased, now + retry_after after a failure the provider wants retried. One partial index on
-- it finds every pullable task without walking finished rows.
ALTER TABLE telegram_tasks
    ADD COLUMN per_call               integer NOT NULL DEFAULT 1 CHECK (per_call > 0),
    ADD COLUMN available_at           timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN provider_task_id       text,
    ADD COLUMN reported_lease_version integer,
    ADD COLUMN finished_at            timestamptz;

CREATE INDEX telegram_tasks_pullable ON telegram_tasks (available_at)
    WHERE status IN ('queued', 'leased', 'pending');
