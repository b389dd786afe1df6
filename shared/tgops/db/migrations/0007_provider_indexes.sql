-- Provider pull: index only the open tasks (queued, leased, pending) that the queries look up.
--
-- A lease and a report each write a new version of the task row, and every index that holds the row
-- gets a new entry for it; the full indexes of 0001 also keep an entry for every finished task
-- forever. What the code reads:
--   * pulls and the expired-lease count: telegram_tasks_pullable (0004), open tasks only;
--   * task generation: open tasks per order (lock_due_orders) and per account and action
--     (candidate_accounts): the two partial indexes below;
--   * the status counts: the whole table, grouped, no index needed.
-- So the three full indexes go: (status, leased_until) is read by nothing (expired leases are found
-- by available_at), and (order_id, status) and (telegram_account_id, status) become partial ones
-- that a task leaves for good when it finishes. Nothing deletes orders or telegram accounts, so the
-- foreign keys need no index on their referencing columns.
--
-- status is an INCLUDE column rather than a key: as a key, the planner may answer a report's
-- "status IN ('leased', 'pending')" by walking every leased task through these indexes instead of
-- looking the reported ids up; INCLUDEd, it still marks a lease as changing the indexed columns,
-- which spares each lease a bottom-up deletion pass over these indexes (vacuum clears them).

DROP INDEX telegram_tasks_status_lease;
DROP INDEX telegram_tasks_order_status;
DROP INDEX telegram_tasks_account_status;

CREATE INDEX telegram_tasks_open_by_order ON telegram_tasks (order_id) INCLUDE (status)
    WHERE status IN ('queued', 'leased', 'pending');
CREATE INDEX telegram_tasks_open_by_account ON telegram_tasks (telegram_account_id, action) INCLUDE (status)
    WHERE status IN ('queued', 'leased', 'pending');
