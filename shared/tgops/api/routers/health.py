from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

import tgops
from tgops.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


class DependencyHealth(BaseModel):
    """Why a dependency is down is in the log, not here: a public endpoint shows no exception text."""

    status: Literal["up", "down", "not_configured"]


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    dependencies: dict[str, DependencyHealth]


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "a configured dependency is down"}},
)
async def health_check(runtime: RuntimeDep, response: Response) -> HealthResponse:
    """Each dependency's status; 503 when any configured one is down."""
    dependencies = {name: DependencyHealth(**result) for name, result in (await runtime.health()).items()}
    degraded = any(item.status == "down" for item in dependencies.values())
    if degraded:
        response.status_code = 503
    return HealthResponse(
        status="degraded" if degraded else "ok", version=tgops.__version__, dependencies=dependencies
    )
