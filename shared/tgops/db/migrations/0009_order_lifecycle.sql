-- Order lifecycle (issue 12): an order runs from the panel to its completion, and the panel hears
-- every change of the fields tgops owns through a durable outbox.

ALTER TABLE provider_orders
    ADD COLUMN started_at               timestamptz,  -- set once: from then on remains and status are ours
    ADD COLUMN finished_at              timestamptz,
    ADD COLUMN finish_reason            text,          -- why an order ended partial
    -- A validation job's claim on the order: renewed by the job's heartbeat while it runs, pushed past
    -- the retry delay while it waits; a claim not renewed in time no longer blocks dispatch.
    ADD COLUMN validation_claimed_until timestamptz,
    ADD COLUMN validation_gave_up_at    timestamptz,   -- polling sends no new job until the link changes
    ADD COLUMN dispatch_note            text,          -- the last reason logged for not dispatching
    -- Failed reports with a definite link error (the chat is private or gone): at a threshold the order
    -- pauses (next_run_at NULL) and its link is inspected again.
    ADD COLUMN link_failures            integer NOT NULL DEFAULT 0,
    ADD COLUMN recheck_requested_at     timestamptz,
    ADD COLUMN recheck_sent_at          timestamptz;

-- The outbox: one row per change the panel must hear about, written in the transaction of the change,
-- sent in id order per order by the flush_panel_updates schedule. `fields` is the order's state as the
-- panel sees it (status, start_count, remains, reason); the row id is the update's idempotency key.
CREATE TABLE order_panel_updates (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL REFERENCES provider_orders (id),
    remote_order_id  bigint NOT NULL,
    change           text NOT NULL,
    fields           jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    available_at     timestamptz NOT NULL DEFAULT now(),  -- the next try, after a failure's backoff
    claimed_until    timestamptz,                         -- a flusher is sending it
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    sent_at          timestamptz
);
CREATE INDEX order_panel_updates_unsent ON order_panel_updates (order_id, id) WHERE sent_at IS NULL;
CREATE INDEX order_panel_updates_by_order ON order_panel_updates (order_id);

ALTER TABLE order_panel_updates ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    -- Supabase's API roles get nothing; elsewhere these roles do not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON order_panel_updates FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON order_panel_updates FROM authenticated;
    END IF;
END
$$;
