"""Provider API (seed 002): accounts sync, task pulls and reports, behind `X-Provider-Token`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from tgops.api.auth import count_failed_authentication, refuse_throttled_client
from tgops.api.deps import RuntimeDep
from tgops.api.errors import RETRY_AFTER_HEADER, ErrorResponse
from tgops.provider.accounts import sync_accounts
from tgops.provider.leasing import pull_tasks
from tgops.provider.reports import ReportOutcome, TaskReport, apply_reports
from tgops.security import secrets_match

DEFAULT_PULL_LIMIT = 100


async def require_provider_token(
    request: Request, runtime: RuntimeDep, x_provider_token: Annotated[str | None, Header()] = None
) -> None:
    await refuse_throttled_client(runtime, request)
    if not secrets_match(x_provider_token, runtime.settings.provider_token.get_secret_value()):
        await count_failed_authentication(runtime, request)
        raise HTTPException(401, "missing or wrong X-Provider-Token")


class ProviderError(BaseModel):
    """Why a provider request was refused (seed 002's `{"ok": false, ...}` shape)."""

    ok: bool = False
    error: str


class RequestValidationErrorBody(BaseModel):
    """FastAPI's own answer to a body that does not fit the declared model."""

    detail: list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ProviderError | ErrorResponse,
        "description": "a limit out of range, or a body that is not JSON",
    },
    401: {"model": ErrorResponse, "description": "missing or wrong X-Provider-Token"},
    404: {"model": ProviderError, "description": "unknown task_id"},
    409: {
        "model": ProviderError,
        "description": "the report's lease has expired and the task was leased again",
    },
    422: {"model": ProviderError | RequestValidationErrorBody, "description": "a field is missing or wrong"},
    429: {
        "model": ProviderError,
        "description": "too many failed authentications from this client; retry after Retry-After",
        "headers": RETRY_AFTER_HEADER,
    },
    503: {
        "model": ProviderError,
        "description": "Postgres or Redis unavailable: nothing applied, retry",
        "headers": RETRY_AFTER_HEADER,
    },
}

router = APIRouter(
    prefix="/api/provider/telegram",
    tags=["provider"],
    dependencies=[Depends(require_provider_token)],
    responses=ERROR_RESPONSES,
)

# The documented bounds are the default `provider_max_batch`; the handlers check the configured one.
MAX_BATCH_DOCUMENTED = 1000


class AccountsSyncRequest(BaseModel):
    accounts: list[Any] = Field(json_schema_extra={"maxItems": MAX_BATCH_DOCUMENTED})


def json_integer(value: Any) -> Any:
    """A JSON Schema integer: 5 or 5.0, never true/false or "5" (pydantic's lax int takes those)."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be an integer")
    return value


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
        "properties": {"reports": {"type": "array", "maxItems": MAX_BATCH_DOCUMENTED, "items": {}}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": [single, batch]}}},
        }
    }


def refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": reason}, status_code=status)


@router.post("/accounts/sync")
async def accounts_sync(request: AccountsSyncRequest, runtime: RuntimeDep) -> Any:
    """Upsert accounts by `provider_account_id`; a bad item is listed in `errors`, the others are synced."""
    maximum = runtime.settings.provider_max_batch
    if len(request.accounts) > maximum:
        return refuse(400, f"at most {maximum} accounts per call, got {len(request.accounts)}")
    result = await sync_accounts(await runtime.database(), request.accounts)
    return {"ok": True, "synced": result.synced, "errors": result.errors}


@router.post("/tasks/pull")
async def tasks_pull(runtime: RuntimeDep, request: PullRequest | None = None) -> Any:
    """Lease up to `limit` tasks (1..provider_max_batch) for `task_lease_sec` seconds."""
    limit = (request or PullRequest()).limit
    maximum = runtime.settings.provider_max_batch
    if not 1 <= limit <= maximum:
        return refuse(400, f"limit must be between 1 and {maximum}, got {limit}")
    leased = await pull_tasks(await runtime.database(), runtime.settings, limit)
    body = f'{{"ok": true, "tasks": {leased.tasks_json}, "count": {leased.count}}}'
    return Response(body, media_type="application/json")


@router.post("/tasks/report", openapi_extra=report_body_schema())
async def tasks_report(runtime: RuntimeDep, body: Annotated[dict[str, Any], Body()]) -> Any:
    """One report (answered `{"ok": true}`), or `{"reports": [...]}` answered per item."""
    if "reports" in body:
        return await _report_batch(runtime, body["reports"])
    try:
        report = TaskReport.model_validate(body)
    except ValidationError as error:
        return refuse(422, _reason(error))
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
            results[position] = {"task_id": task_id, "ok": False, "error": _reason(error)}
    outcomes = await _apply(runtime, [report for _, report in valid]) if valid else []
    for (position, _), outcome in zip(valid, outcomes):
        results[position] = outcome.as_json()
    return JSONResponse({"ok": True, "results": results, "count": len(results)})


async def _apply(runtime: RuntimeDep, reports: list[TaskReport]) -> list[ReportOutcome]:
    return await apply_reports(await runtime.database(), runtime.redis(), runtime.settings, reports)


def _reason(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
        for problem in error.errors()
    )
