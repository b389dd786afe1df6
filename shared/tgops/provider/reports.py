"""Reports: apply each provider result exactly once, in Postgres and in Redis.

One batch is one Postgres transaction:

1. `finish_tasks`: one UPDATE applies every report to its task. A done is a fact and applies to any
   task not done yet (even one failed by a stale report, or withdrawn); any other report applies only
   to the lease that holds the task (see `finish_reported_tasks`). Reports that matched nothing are
   explained by one read: unknown task (404), already finished (ok, nothing applied twice), leased
   again (409), not leased (409).
2. Redis: COMMIT for done tasks, ROLLBACK for failed ones.
3. `take_done_from_orders` takes done tasks' `per_call` off their orders' `remains` (a done whose
   account another task holds now is counted too, with nothing charged to the account), and the
   panel's outbox gets the orders' new state; failed reports naming a definite link error count
   against their orders (tgops.orders.recheck). Then the transaction commits.

- Redis fails: the transaction rolls back, so nothing is applied anywhere (the caller answers 503).
- Redis committed, then Postgres fails: the COMMIT script left a per-task marker, so the retried
  report finds it and consumes nothing again, and Postgres records the task then. ROLLBACK only
  deletes a lock the task itself holds, so repeating it is harmless.
- The UPDATE's row locks keep a pull from re-leasing a task while its report is being applied (pulls
  skip locked rows), and make a concurrent duplicate report wait, then match nothing and find the
  task finished.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.db.params import jsonb
from tgops.provider import claims
from tgops.provider.actions import ActionRules, rules_for

if TYPE_CHECKING:
    from tgops.db.database import Database, Row, Session

TASK_ID_LENGTH = 26  # ULID
FINAL_STATUSES = ("done", "failed")
APPLIED = 200


class TaskReport(BaseModel):
    """One report, as seed 002 sends it; `lease_version` (from the pull) is our addition."""

    model_config = ConfigDict(extra="ignore")

    task_id: str = Field(min_length=1, max_length=64)
    state: Literal["done", "failed", "pending"]
    ok: bool | None = None
    error: str | None = Field(None, max_length=4000)
    retry_after: int | None = Field(None, ge=0, le=7 * 86400)
    provider_task_id: str | None = Field(None, max_length=255)
    data: dict[str, Any] | None = None
    lease_version: int | None = Field(None, ge=1)

    @property
    def new_status(self) -> str:
        if self.state == "failed" and self.retry_after is not None:
            return "queued"  # the provider wants it retried after `retry_after` seconds
        return self.state


@dataclass(frozen=True)
class ReportOutcome:
    task_id: str
    status: int  # APPLIED (applied now or earlier), 404 unknown task, 409 refused
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == APPLIED

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": self.task_id, "ok": self.ok}
        if self.error:
            body["error"] = self.error
        return body


async def apply_reports(
    db: Database, redis: RedisClient, settings: Settings, reports: Sequence[TaskReport]
) -> list[ReportOutcome]:
    """The outcome of each report, in the order given."""
    firsts = _first_reports(reports)
    known = [report for report in firsts.values() if len(report.task_id) == TASK_ID_LENGTH]
    async with db.transaction() as tx:
        finished = await finish_tasks(tx, known, settings.task_lease_sec)
        unapplied = [report for report in known if report.task_id not in finished]
        outcomes = await _explain_unapplied(tx, unapplied)
        lost = await _settle_claims(redis, settings, firsts, finished)
        if lost:
            await tx.execute("note_lost_reservations", {"ids": sorted(lost)})
        done = [task for task_id, task in finished.items() if firsts[task_id].state == "done"]
        await take_done_from_orders(tx, done)
        await _note_link_failures(tx, settings, firsts, finished)
    for task_id in finished:
        outcomes[task_id] = ReportOutcome(task_id, APPLIED)
    return [_outcome_at(report, firsts, outcomes) for report in reports]


async def finish_tasks(session: Session, reports: Sequence[TaskReport], lease_sec: int) -> dict[str, Row]:
    """Apply reports (one per task) to the tasks their lease still holds.

    Returns those tasks by id, with what their claims and orders need. The reports go in task id
    order, so the rows are locked in that order.
    """
    if not reports:
        return {}
    records = [_record(report) for report in sorted(reports, key=lambda report: report.task_id)]
    params = {"reports": jsonb(records), "lease_sec": lease_sec}
    rows = await session.fetch_all("finish_reported_tasks", params)
    return {row["id"]: row for row in rows}


def _record(report: TaskReport) -> dict[str, Any]:
    """What `finish_reported_tasks` reads of a report; absent keys are NULL there."""
    result: dict[str, Any] = {"state": report.state}
    record: dict[str, Any] = {"task_id": report.task_id, "status": report.new_status, "result": result}
    for name in ("ok", "error", "retry_after", "data"):
        value = getattr(report, name)
        if value is not None:
            result[name] = value
    for name in ("lease_version", "retry_after", "provider_task_id"):
        value = getattr(report, name)
        if value is not None:
            record[name] = value
    return record


async def take_done_from_orders(session: Session, done_tasks: Iterable[Row]) -> None:
    """Take done tasks' `per_call` off their orders' `remains` (completed at 0)."""
    quantities: dict[int, int] = defaultdict(int)
    for task in done_tasks:
        quantities[task["order_id"]] += task["per_call"]
    if quantities:
        orders = [{"order_id": order, "quantity": quantity} for order, quantity in sorted(quantities.items())]
        await session.execute("take_done_from_orders", {"orders": jsonb(orders)})  # and the panel's outbox


async def _note_link_failures(
    session: Session, settings: Settings, firsts: dict[str, TaskReport], finished: dict[str, Row]
) -> None:
    """Failed reports whose error names a definite link error, counted per order."""
    codes = settings.order_definite_link_errors
    failures: dict[int, int] = defaultdict(int)
    for task_id, task in finished.items():
        report = firsts[task_id]
        if report.state == "failed" and report.error and any(code in report.error.upper() for code in codes):
            failures[task["order_id"]] += 1
    if failures:
        orders = [{"order_id": order, "failures": count} for order, count in sorted(failures.items())]
        await session.execute(
            "note_link_failures",
            {"orders": jsonb(orders), "threshold": settings.order_link_failures_before_recheck},
        )


def _first_reports(reports: Sequence[TaskReport]) -> dict[str, TaskReport]:
    firsts: dict[str, TaskReport] = {}
    for report in reports:
        firsts.setdefault(report.task_id, report)
    return firsts


async def _explain_unapplied(session: Session, reports: list[TaskReport]) -> dict[str, ReportOutcome]:
    if not reports:
        return {}
    ids = [report.task_id for report in reports]
    rows = await session.fetch_all("reported_tasks_not_applied", {"ids": ids})
    by_id = {row["id"]: row for row in rows}
    return {report.task_id: _refusal(report, by_id.get(report.task_id)) for report in reports}


def _refusal(report: TaskReport, row: Row | None) -> ReportOutcome:
    """Why a report applied nothing: an `ok` outcome for a repeat, else 404 or 409 with the reason."""
    task_id = report.task_id
    if row is None:
        return ReportOutcome(task_id, 404, f"unknown task_id {task_id!r}")
    if row["status"] in FINAL_STATUSES:
        return ReportOutcome(task_id, APPLIED)  # already applied: answer ok, apply nothing twice
    if report.lease_version is None and row["status"] in ("leased", "pending"):
        return ReportOutcome(
            task_id,
            409,
            f"the task was leased again (lease {row['lease_version']}) and that lease is live; a report"
            " without lease_version cannot end it (send the lease_version of your pull)",
        )
    if report.lease_version is not None and report.lease_version != row["lease_version"]:
        current = row["lease_version"]
        return ReportOutcome(
            task_id,
            409,
            f"lease {report.lease_version} expired and the task was leased again (lease {current})",
        )
    if row["reported_lease_version"] == row["lease_version"]:
        return ReportOutcome(task_id, APPLIED)  # this lease's failure was already recorded (task requeued)
    return ReportOutcome(task_id, 409, "task is not leased")


async def _settle_claims(
    redis: RedisClient, settings: Settings, firsts: dict[str, TaskReport], finished: dict[str, Row]
) -> set[str]:
    """COMMIT done tasks' claims, ROLLBACK failed ones'; the ids of done tasks whose reservation was lost."""
    commits: list[claims.Reservation] = []
    rollbacks: list[claims.Reservation] = []
    rules: dict[str, ActionRules] = {}
    for task_id, row in finished.items():
        state = firsts[task_id].state
        if row["telegram_account_id"] is None or state == "pending":
            continue
        action = row["action"]
        if action not in rules:
            rules[action] = rules_for(settings, action)
        claim = claims.Reservation(task_id, row["telegram_account_id"], row["link_hash"], rules[action])
        (commits if state == "done" else rollbacks).append(claim)
    results = await claims.commit(redis, commits, settings.provider_commit_marker_ttl_sec)
    await claims.rollback(redis, rollbacks)
    # LOST: another task holds this account's reserve lock now; COMMIT charged nothing and left it.
    return {claim.task_id for claim, result in zip(commits, results) if result is claims.CommitResult.LOST}


def _outcome_at(
    report: TaskReport, firsts: dict[str, TaskReport], outcomes: dict[str, ReportOutcome]
) -> ReportOutcome:
    """A task reported again in the same batch gets its first report's outcome, or 409 for another state."""
    task_id = report.task_id
    outcome = outcomes.get(task_id) or ReportOutcome(task_id, 404, f"unknown task_id {task_id!r}")
    first = firsts[task_id]
    if report is not first and report.state != first.state and outcome.ok:
        return ReportOutcome(task_id, 409, f"reported as {first.state!r} earlier in this batch")
    return outcome
