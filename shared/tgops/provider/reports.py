"""Reports: apply each provider result exactly once, in Postgres and in Redis.

One batch is one Postgres transaction: the reported tasks are locked (FOR UPDATE, in id order), the
Redis COMMIT / ROLLBACK scripts run, then the tasks and orders are written and the transaction commits.

- Redis fails: the transaction rolls back, so nothing is applied anywhere (the caller answers 503).
- Redis committed, then Postgres fails: the COMMIT script left a per-task marker, so the retried
  report finds it and consumes nothing again, and Postgres records the task then. ROLLBACK only
  deletes a lock the task itself holds, so repeating it is harmless.
- The row lock keeps a pull from re-leasing a task while its report is being applied, and makes a
  concurrent duplicate report wait and then find the task finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.db.database import Database, Row, Session
from tgops.provider import claims
from tgops.provider.actions import rules_for

TASK_ID_LENGTH = 26  # ULID
FINAL_STATUSES = ("done", "failed")


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


@dataclass(frozen=True)
class ReportOutcome:
    task_id: str
    status: int  # 200 applied or already applied, 404 unknown task, 409 refused
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": self.task_id, "ok": self.ok}
        if self.error:
            body["error"] = self.error
        return body


@dataclass
class _Batch:
    outcomes: list[ReportOutcome | None]
    commits: list[tuple[int, TaskReport, Row, claims.Claim | None]] = field(default_factory=list)
    rollbacks: list[claims.Claim] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


async def apply_reports(
    db: Database, redis: RedisClient, settings: Settings, reports: Sequence[TaskReport]
) -> list[ReportOutcome]:
    """The outcome of each report, in the order given."""
    ids = sorted({report.task_id for report in reports if len(report.task_id) == TASK_ID_LENGTH})
    async with db.transaction() as tx:
        rows = {row["id"]: row for row in await tx.fetch_all("lock_tasks_for_report", {"ids": ids})} if ids else {}
        batch = _plan(reports, rows, settings)
        results = await claims.commit(
            redis, [claim for *_, claim in batch.commits if claim], settings.provider_commit_marker_ttl_sec
        )
        await claims.rollback(redis, batch.rollbacks)
        _settle_commits(batch, iter(results))
        if batch.records:
            await record_reports(tx, batch.records, settings.task_lease_sec)
    return batch.outcomes  # type: ignore[return-value]  # every slot is filled by now


async def record_reports(session: Session, records: list[dict[str, Any]], lease_sec: int) -> None:
    """Write checked reports to their tasks, and done ones to their orders' remains."""
    await session.execute("record_task_reports", {"reports": Jsonb(records), "lease_sec": lease_sec})


def _plan(reports: Sequence[TaskReport], rows: dict[str, Row], settings: Settings) -> _Batch:
    batch = _Batch(outcomes=[None] * len(reports))
    handled: dict[str, str] = {}  # task id -> state applied earlier in this batch
    for position, report in enumerate(reports):
        row = rows.get(report.task_id)
        refusal = _refusal(report, row, handled)
        if refusal is not None:
            batch.outcomes[position] = refusal
            continue
        handled[report.task_id] = report.state
        claim = _claim(row, settings)
        if report.state == "done":
            batch.commits.append((position, report, row, claim))
            continue
        if report.state == "failed" and claim:
            batch.rollbacks.append(claim)
        status = "pending" if report.state == "pending" else ("queued" if report.retry_after is not None else "failed")
        batch.records.append(_record(report, row, status))
        batch.outcomes[position] = ReportOutcome(report.task_id, 200)
    return batch


def _refusal(report: TaskReport, row: Row | None, handled: dict[str, str]) -> ReportOutcome | None:
    """Why this report applies nothing (an `ok` outcome for a repeat), or None when it applies."""
    task_id = report.task_id
    if row is None:
        return ReportOutcome(task_id, 404, f"unknown task_id {task_id!r}")
    if task_id in handled:
        if handled[task_id] == report.state:
            return ReportOutcome(task_id, 200)
        return ReportOutcome(task_id, 409, f"reported as {handled[task_id]!r} earlier in this batch")
    if row["status"] in FINAL_STATUSES:
        return ReportOutcome(task_id, 200)  # already applied: answer ok, apply nothing twice
    if report.lease_version is not None and report.lease_version != row["lease_version"]:
        current = row["lease_version"]
        return ReportOutcome(
            task_id, 409, f"lease {report.lease_version} expired and the task was leased again (lease {current})"
        )
    if row["reported_lease_version"] == row["lease_version"]:
        return ReportOutcome(task_id, 200)  # this lease's failure was already recorded (task requeued)
    if row["status"] == "queued":
        return ReportOutcome(task_id, 409, "task is not leased")
    return None


def _claim(row: Row, settings: Settings) -> claims.Claim | None:
    if row["telegram_account_id"] is None:
        return None
    return claims.Claim(row["id"], row["telegram_account_id"], row["link_hash"], rules_for(settings, row["action"]))


def _settle_commits(batch: _Batch, results) -> None:
    for position, report, row, claim in batch.commits:
        result = next(results) if claim else claims.CommitResult.COMMITTED
        if result is claims.CommitResult.LOST:
            # Another task holds this account's claim now; counting this success would charge it twice.
            batch.records.append(_record(report, row, "failed", error="reservation_lost"))
            batch.outcomes[position] = ReportOutcome(report.task_id, 409, "the account's reservation was lost")
            continue
        batch.records.append(_record(report, row, "done"))
        batch.outcomes[position] = ReportOutcome(report.task_id, 200)


def _record(report: TaskReport, row: Row, status: str, *, error: str | None = None) -> dict[str, Any]:
    result = {
        "state": report.state,
        "ok": report.ok,
        "error": error or report.error,
        "retry_after": report.retry_after,
        "data": report.data,
        "lease_version": row["lease_version"],
    }
    return {
        "task_id": row["id"],
        "status": status,
        "result": result,
        "provider_task_id": report.provider_task_id,
        "retry_after": report.retry_after,
    }
