"""Provider API (seed 002): accounts sync, task pulls and reports, behind `X-Provider-Token`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from tgops import switches
from tgops.api.auth import count_failed_authentication, refuse_throttled_client
from tgops.api.deps import RuntimeDep
from tgops.api.errors import RETRY_AFTER_HEADER, ErrorResponse
from tgops.provider.accounts import SyncedAccount, sync_accounts
from tgops.provider.leasing import pull_tasks
from tgops.provider.reports import ReportOutcome, TaskReport, apply_reports
from tgops.security import secrets_match
from tgops.validation import describe, json_integer

DEFAULT_PULL_LIMIT = 100


_provider_token = APIKeyHeader(
    name="X-Provider-Token",
    scheme_name="ProviderToken",
    auto_error=False,
    description="the provider token (TGOPS_PROVIDER_TOKEN), compared in constant time",
)


async def require_provider_token(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Security(_provider_token)]
) -> None:
    await refuse_throttled_client(runtime, request)
    if not secrets_match(token, runtime.settings.provider_token.get_secret_value()):
        await count_failed_authentication(runtime, request)
        raise HTTPException(401, "missing or wrong X-Provider-Token")


class ProviderError(BaseModel):
    """Why a provider request was refused (seed 002's `{"ok": false, ...}` shape)."""

    ok: bool = False
    error: str


class RequestValidationErrorBody(BaseModel):
    """FastAPI's own answer to a body that does not fit the declared model."""

    detail: list[dict[str, Any]]


def _refusal(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ProviderError, "description": description, **extra}


# What every provider operation can answer besides its own refusals (below, per operation).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or wrong X-Provider-Token"},
    413: _refusal("the body is larger than TGOPS_API_MAX_BODY_BYTES"),
    422: {"model": ProviderError | RequestValidationErrorBody, "description": "a field is missing or wrong"},
    429: _refusal(
        "too many failed authentications from this client; retry after Retry-After",
        headers=RETRY_AFTER_HEADER,
    ),
    503: _refusal("Postgres or Redis unavailable: nothing applied, retry", headers=RETRY_AFTER_HEADER),
}


router = APIRouter(
    prefix="/api/provider/telegram",
    tags=["provider"],
    dependencies=[Depends(require_provider_token)],
    responses=ERROR_RESPONSES,
)

# The documented bounds are the default `provider_max_batch`; the handlers check the configured one.
MAX_BATCH_DOCUMENTED = 1000


def checked_one_by_one(model: type[BaseModel], otherwise: str) -> dict[str, Any]:
    """An item of a batch: `model`, or anything else, which is refused alone and answered per item."""
    return {"anyOf": [model.model_json_schema(), {"description": f"any other item: {otherwise}"}]}


class AccountsSyncRequest(BaseModel):
    # Each item is checked on its own (a bad one is listed in `errors`), so the model takes any item
    # and the document says what an item is.
    accounts: list[Any] = Field(
        json_schema_extra={
            "maxItems": MAX_BATCH_DOCUMENTED,
            "items": checked_one_by_one(SyncedAccount, "not synced: listed in `errors` with the reason"),
        }
    )


class SyncItemError(BaseModel):
    index: int = Field(description="the item's position in `accounts`")
    provider_account_id: Any = Field(description="the item's provider_account_id as sent, null if none")
    error: str


class AccountsSyncAnswer(BaseModel):
    ok: Literal[True]
    synced: int = Field(description="accounts upserted (an id repeated in one call counts once)")
    errors: list[SyncItemError]


class PulledAccount(BaseModel):
    provider_account_id: str | None
    phone: str | None


class PulledTask(BaseModel):
    """One leased task, as seed 002 shows it, plus `lease_version` to send back with its report."""

    task_id: str
    order_id: int
    action: str
    link: str | None
    account: PulledAccount
    per_call: int | None
    post_id: int | None
    link_hash: str | None
    attempt: int
    lease_version: int
    leased_until: datetime


class PullAnswer(BaseModel):
    ok: Literal[True]
    tasks: list[PulledTask]
    count: int


class ReportApplied(BaseModel):
    ok: Literal[True]


class ReportItemResult(BaseModel):
    task_id: Any = Field(description="the report's task_id as sent")
    ok: bool
    error: str | None = Field(None, description="why this report was refused; absent when ok")


class BatchReportAnswer(BaseModel):
    ok: Literal[True]
    results: list[ReportItemResult] = Field(description="one per report, in the order sent")
    count: int


UNREADABLE = "or a body that cannot be read"


def answers(model: Any, description: str, **refusals: str) -> dict[int | str, dict[str, Any]]:
    """An operation's 200 and its own refusals (`bad_request="why"`, `not_found=...`, `conflict=...`)."""
    codes = {"bad_request": 400, "not_found": 404, "conflict": 409}
    responses: dict[int | str, dict[str, Any]] = {200: {"model": model, "description": description}}
    for name, why in refusals.items():
        # FastAPI itself answers 400 in its own shape for a body it cannot read.
        model_for = ProviderError | ErrorResponse if name == "bad_request" else ProviderError
        responses[codes[name]] = {"model": model_for, "description": why}
    return responses


JsonInt = Annotated[int, BeforeValidator(json_integer)]


class PullRequest(BaseModel):
    limit: JsonInt = Field(
        DEFAULT_PULL_LIMIT, json_schema_extra={"minimum": 1, "maximum": MAX_BATCH_DOCUMENTED}
    )


def report_body_schema() -> dict[str, Any]:
    """One report, or `{"reports": [...]}` whose items are checked one by one and answered per item."""
    single = TaskReport.model_json_schema() | {"not": {"required": ["reports"]}}
    batch = {
        "type": "object",
        "required": ["reports"],
        "properties": {
            "reports": {
                "type": "array",
                "maxItems": MAX_BATCH_DOCUMENTED,
                "items": checked_one_by_one(
                    TaskReport, 'answered `{"ok": false, "error": ...}` in `results`'
                ),
            }
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": [single, batch]}}},
        }
    }


def refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": reason}, status_code=status)


@router.post(
    "/accounts/sync",
    responses=answers(
        AccountsSyncAnswer,
        "the valid items upserted, the others listed in `errors`",
        bad_request=f"more accounts than provider_max_batch, {UNREADABLE}",
    ),
)
async def accounts_sync(request: AccountsSyncRequest, runtime: RuntimeDep) -> Any:
    """Upsert accounts by `provider_account_id`; a bad item is listed in `errors`, the others are synced."""
    maximum = runtime.settings.provider_max_batch
    if len(request.accounts) > maximum:
        return refuse(400, f"at most {maximum} accounts per call, got {len(request.accounts)}")
    result = await sync_accounts(await runtime.database(), request.accounts)
    return {"ok": True, "synced": result.synced, "errors": result.errors}


@router.post(
    "/tasks/pull",
    responses=answers(
        PullAnswer, "the leased tasks", bad_request=f"a limit out of 1..provider_max_batch, {UNREADABLE}"
    ),
)
async def tasks_pull(runtime: RuntimeDep, request: PullRequest | None = None) -> Any:
    """Lease up to `limit` tasks (1..provider_max_batch) for `task_lease_sec` seconds."""
    limit = (request or PullRequest()).limit
    maximum = runtime.settings.provider_max_batch
    if not 1 <= limit <= maximum:
        return refuse(400, f"limit must be between 1 and {maximum}, got {limit}")
    if await switches.is_on(runtime.redis(), switches.PAUSE_LEASING, runtime.settings):
        return Response('{"ok": true, "tasks": [], "count": 0}', media_type="application/json")
    leased = await pull_tasks(await runtime.database(), runtime.settings, limit)
    body = f'{{"ok": true, "tasks": {leased.tasks_json}, "count": {leased.count}}}'
    return Response(body, media_type="application/json")


@router.post(
    "/tasks/report",
    openapi_extra=report_body_schema(),
    responses=answers(
        ReportApplied | BatchReportAnswer,
        '`{"ok": true}` for one report (applied now or before), per-item results for a batch',
        bad_request=f"more reports than provider_max_batch, {UNREADABLE}",
        not_found="unknown task_id",
        conflict="the report's lease has expired and the task was leased again",
    ),
)
async def tasks_report(runtime: RuntimeDep, body: Annotated[dict[str, Any], Body()]) -> Any:
    """One report (answered `{"ok": true}`), or `{"reports": [...]}` answered per item."""
    if "reports" in body:
        return await _report_batch(runtime, body["reports"])
    try:
        report = TaskReport.model_validate(body)
    except ValidationError as error:
        return refuse(422, describe(error))
    [outcome] = await _apply(runtime, [report])
    return {"ok": True} if outcome.ok else refuse(outcome.status, outcome.error or "refused")


async def _report_batch(runtime: RuntimeDep, items: Any) -> Any:
    maximum = runtime.settings.provider_max_batch
    if not isinstance(items, list):
        return refuse(422, "reports must be a list")
    if len(items) > maximum:
        return refuse(400, f"at most {maximum} reports per call, got {len(items)}")
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid: list[tuple[int, TaskReport]] = []
    for position, item in enumerate(items):
        try:
            valid.append((position, TaskReport.model_validate(item)))
        except ValidationError as error:
            task_id = item.get("task_id") if isinstance(item, dict) else None
            results[position] = {"task_id": task_id, "ok": False, "error": describe(error)}
    outcomes = await _apply(runtime, [report for _, report in valid]) if valid else []
    for (position, _), outcome in zip(valid, outcomes):
        results[position] = outcome.as_json()
    return JSONResponse({"ok": True, "results": results, "count": len(results)})


async def _apply(runtime: RuntimeDep, reports: list[TaskReport]) -> list[ReportOutcome]:
    return await apply_reports(await runtime.database(), runtime.redis(), runtime.settings, reports)
