"""Telegram webhooks: `POST /api/webhooks/telegram` (main bot) and `/api/webhooks/telegram/{bot_id}`.

Each answers as soon as the update is remembered and queued (never after processing it). A 5xx means
"not queued, not remembered": Telegram sends the update again.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from tgops.api.errors import SERVICE_UNAVAILABLE, error_responses
from tgops.ingress.dedupe import UpdateDedupe
from tgops.ingress.messages import MAIN_BOT_ID
from tgops.ingress.webhook import (
    MAX_UPDATE_ID,
    InvalidUpdate,
    Outcome,
    WebhookIngress,
    bot_secret_matches,
    main_bot_secret_matches,
    parse_update,
)
from tgops.runtime import Runtime

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# The secret is the webhook's authentication, so the document names it a security scheme; the routes
# read the header themselves (a security dependency costs each request more: bench/ingress.py).
SECURITY_SCHEMES = {
    "TelegramWebhookSecret": {
        "type": "apiKey",
        "in": "header",
        "name": SECRET_HEADER,
        "description": "the secret_token given to setWebhook",
    }
}


class TelegramUpdate(BaseModel):
    """A Telegram Update: `update_id` plus one optional field (`message`, `callback_query`, ...)."""

    model_config = ConfigDict(extra="allow")
    update_id: int = Field(ge=0, le=MAX_UPDATE_ID)


class WebhookAck(BaseModel):
    ok: Literal[True] = True
    status: Literal["queued", "duplicate", "ignored"] = Field(
        description="queued: new, sent to its queue; duplicate: already queued once; ignored: no consumer "
        "handles this update type (counted)"
    )


# Three possible answers, serialized once.
ACK_BODIES = {outcome: WebhookAck(status=outcome.value).model_dump_json().encode() for outcome in Outcome}

WEBHOOK_ROUTE: dict[str, Any] = {
    "response_model": WebhookAck,
    "responses": {**error_responses(400, 401, 413), **SERVICE_UNAVAILABLE},
    "openapi_extra": {
        "security": [{"TelegramWebhookSecret": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TelegramUpdate.model_json_schema()}},
        },
    },
}


# The routes read the runtime off the app rather than through dependencies: resolving those costs FastAPI
# more per request than the rest of the route (bench/ingress.py).
@router.post("/telegram", **WEBHOOK_ROUTE)
async def main_bot_webhook(request: Request) -> Response:
    """Updates of the main bot, whose secret is TGOPS_TELEGRAM_WEBHOOK_SECRET."""
    runtime: Runtime = request.app.state.runtime
    if not main_bot_secret_matches(runtime.settings, request.headers.get(SECRET_HEADER)):
        raise _wrong_secret()
    return await _accept(request, runtime, MAIN_BOT_ID)


@router.post("/telegram/{bot_id}", **WEBHOOK_ROUTE)
async def bot_webhook(
    request: Request,
    bot_id: Annotated[int, Path(ge=1, le=MAX_UPDATE_ID, description="the bot's id in the bots table")],
) -> Response:
    """Updates of a bot of the `bots` table, each with its own secret (stored hashed)."""
    runtime: Runtime = request.app.state.runtime
    secret = request.headers.get(SECRET_HEADER)
    if not await bot_secret_matches(await runtime.database(), bot_id, secret):
        raise _wrong_secret()
    return await _accept(request, runtime, bot_id)


async def _accept(request: Request, runtime: Runtime, bot_id: int) -> Response:
    try:
        update = parse_update(await request.body())
    except InvalidUpdate as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    settings = runtime.settings
    dedupe = UpdateDedupe(
        runtime.redis(), runtime.database, settings.webhook_dedupe_ttl_sec, settings.webhook_pending_claim_sec
    )
    ingress = WebhookIngress(
        dedupe,
        runtime.ingress_queues(),
        runtime.redis(),
        settings.webhook_enqueue_timeout_sec,
        settings.webhook_unhandled_count_ttl_sec,
    )
    # DedupeUnavailable and EnqueueFailed rise to the app's 503: nothing queued, nothing remembered.
    outcome = await ingress.accept(bot_id, update)
    return Response(ACK_BODIES[outcome], media_type="application/json")


def _wrong_secret() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing or wrong {SECRET_HEADER}")
