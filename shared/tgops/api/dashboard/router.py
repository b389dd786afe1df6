"""The dashboard's pages under /dashboard: login, overview, DLQ, orders, accounts, tasks, bot, switches.

Pages are rendered on the server; parts that refresh themselves are re-fetched by htmx every few seconds
(the DLQ list pauses while messages are selected). Every page needs a login; every POST needs the
session's CSRF token. Jinja2 is imported on the first page served, never on a webhook's cold start.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tgops import switches
from tgops.api.dashboard import PREFIX, data
from tgops.api.dashboard.sessions import (
    COOKIE,
    TTL_SEC,
    DashboardSession,
    close_session,
    find_session,
    open_session,
)
from tgops.api.deps import RuntimeDep
from tgops.messaging.topology import QUEUES_BY_NAME
from tgops.runtime import Runtime
from tgops.security import secrets_match

REFRESH_SEC = 5
BIGINT_MAX = 2**63 - 1  # the panel's order ids are Postgres bigints
ORDER_STATUSES = ("validating", "depends_ok", "depends_failed", "awaiting", "in_progress", "pending",
                  "completed", "partial", "canceled")  # fmt: skip
TASK_STATUSES = ("queued", "leased", "pending", "done", "failed", "expired_leases")

router = APIRouter(include_in_schema=False)  # mounted at PREFIX by tgops.api.dashboard.LazyDashboard


@cache
def _templates() -> Any:
    from fastapi.templating import Jinja2Templates

    folder = resources.files("tgops.api") / "templates"
    templates = Jinja2Templates(directory=str(folder))
    templates.env.globals |= {"prefix": PREFIX, "refresh_sec": REFRESH_SEC}
    templates.env.filters["duration"] = duration
    return templates


def duration(seconds: float | None) -> str:
    """A span as an operator reads it: 45 s, 12 min 5 s, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return ""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min {seconds % 60} s" if seconds % 60 else f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def page(request: Request, template: str, session: DashboardSession | None, **context: Any) -> HTMLResponse:
    response = _templates().TemplateResponse(
        request, template, {"session": session, "csrf": session.csrf if session else "", **context}
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response


async def logged_in(request: Request, runtime: RuntimeDep) -> DashboardSession:
    session = await find_session(runtime.redis(), request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(
            status.HTTP_303_SEE_OTHER, "login required", headers={"Location": f"{PREFIX}/login"}
        )
    return session


async def csrf_checked(
    request: Request, session: Annotated[DashboardSession, Depends(logged_in)]
) -> DashboardSession:
    form = await request.form()
    given = request.headers.get("X-CSRF-Token") or form.get("csrf")
    if not session.csrf_matches(given if isinstance(given, str) else None):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page")
    return session


Session = Annotated[DashboardSession, Depends(logged_in)]
ChangeSession = Annotated[DashboardSession, Depends(csrf_checked)]


STATIC_FILES = {"htmx.min.js": "htmx-2.0.11.min.js", "dashboard.js": "dashboard.js"}


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """The two scripts the pages load, from the package (no CDN: the dashboard works offline)."""
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    body = (resources.files("tgops.api") / "static" / STATIC_FILES[name]).read_bytes()
    return Response(body, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


# -- login ---------------------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request) -> HTMLResponse:
    return page(request, "dashboard/login.html", None, error=None)


@router.post("/login")
async def login(request: Request, runtime: RuntimeDep, token: Annotated[str, Form()] = "") -> Response:
    if not secrets_match(token, runtime.settings.admin_token.get_secret_value()):
        response = page(request, "dashboard/login.html", None, error="That is not the admin token.")
        response.status_code = status.HTTP_401_UNAUTHORIZED
        return response
    session = await open_session(runtime.redis())
    redirect = RedirectResponse(f"{PREFIX}/", status.HTTP_303_SEE_OTHER)
    redirect.set_cookie(
        COOKIE, session.session_id, max_age=TTL_SEC, httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path=PREFIX,
    )  # fmt: skip
    return redirect


@router.post("/logout")
async def logout(runtime: RuntimeDep, session: ChangeSession) -> Response:
    await close_session(runtime.redis(), session.session_id)
    response = RedirectResponse(f"{PREFIX}/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# -- pages ---------------------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request, runtime: RuntimeDep, session: Session) -> HTMLResponse:
    return page(request, "dashboard/overview.html", session, **await data.overview(runtime))


@router.get("/fragments/queues")
async def queues_fragment(request: Request, runtime: RuntimeDep, session: Session) -> HTMLResponse:
    return page(request, "dashboard/_queues.html", session, **await data.overview(runtime))


@router.get("/dlq/{queue}")
async def dead_letters(
    request: Request,
    runtime: RuntimeDep,
    session: Session,
    queue: str,
    reason: Annotated[str, Query(max_length=200)] = "",
    text: Annotated[str, Query(max_length=200)] = "",
    fragment: bool = False,
) -> HTMLResponse:
    spec = _queue(queue)
    letters = await (await _dead_letters(runtime, spec)).view(100)
    shown = [letter for letter in letters.messages if _matches(letter, reason, text)]
    history = await (await runtime.database()).fetch_all(
        "dash_replay_history", {"queue": spec.name, "limit": 50}
    )
    template = "dashboard/_dlq_rows.html" if fragment else "dashboard/dlq.html"
    return page(request, template, session, spec=spec, view=letters, shown=shown, reason=reason, text=text,
                history=history, replayed=request.query_params.get("replayed"))  # fmt: skip


@router.post("/dlq/{queue}/replay")
async def replay(request: Request, runtime: RuntimeDep, session: ChangeSession, queue: str) -> Response:
    """Replay one message (`one`), the selected ones, or every one matching the filter (`scope=matching`)."""
    spec = _queue(queue)
    form = await request.form()
    reason, text = str(form.get("reason", "")), str(form.get("text", ""))
    dead = await _dead_letters(runtime, spec)
    if form.get("one"):
        chosen = [str(form["one"])]
    elif form.get("scope") == "matching":
        letters = await dead.view(100)
        chosen = [letter.message_id for letter in letters.messages if _matches(letter, reason, text)]
    else:
        chosen = [str(value) for value in form.getlist("message_id")]
    result = await dead.replay(chosen) if chosen else None
    count = len(result.replayed) + len(result.already_replayed) if result else 0
    query = urlencode({"reason": reason, "text": text, "replayed": count})
    return RedirectResponse(f"{PREFIX}/dlq/{spec.name}?{query}", status.HTTP_303_SEE_OTHER)


@router.get("/orders")
async def orders(request: Request, runtime: RuntimeDep, session: Session, status_: Annotated[
        str | None, Query(alias="status")] = None) -> HTMLResponse:  # fmt: skip
    chosen = status_ if status_ in ORDER_STATUSES else None
    return page(
        request,
        "dashboard/orders.html",
        session,
        statuses=ORDER_STATUSES,
        **await data.orders(runtime, chosen),
    )


@router.get("/orders/{remote_order_id}")
async def order(
    request: Request,
    runtime: RuntimeDep,
    session: Session,
    remote_order_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
) -> HTMLResponse:
    timeline = await data.order(runtime, remote_order_id)
    response = page(
        request, "dashboard/order.html", session, remote_order_id=remote_order_id, timeline=timeline
    )
    if timeline is None:
        response.status_code = status.HTTP_404_NOT_FOUND
    return response


@router.get("/accounts")
async def accounts(request: Request, runtime: RuntimeDep, session: Session) -> HTMLResponse:
    return page(request, "dashboard/accounts.html", session, **await data.accounts(runtime))


@router.get("/tasks")
async def tasks(request: Request, runtime: RuntimeDep, session: Session, status_: Annotated[
        str | None, Query(alias="status")] = None) -> HTMLResponse:  # fmt: skip
    chosen = status_ if status_ in TASK_STATUSES else None
    return page(
        request, "dashboard/tasks.html", session, statuses=TASK_STATUSES, **await data.tasks(runtime, chosen)
    )


@router.get("/bot")
async def bot_usage(request: Request, runtime: RuntimeDep, session: Session) -> HTMLResponse:
    usage = await data.bot_usage(runtime)
    charts = {
        "granted": data.bars([row["granted"] for row in usage["points"]]),
        "spent": data.bars([row["spent"] for row in usage["points"]]),
        "commands": data.bars([row["updates"] for row in usage["commands"]]),
    }
    return page(request, "dashboard/bot.html", session, charts=charts, **usage)


@router.get("/groups")
async def groups(request: Request, runtime: RuntimeDep, session: Session) -> HTMLResponse:
    return page(request, "dashboard/groups.html", session, **await data.groups(runtime))


@router.get("/outbox")
async def outbox(
    request: Request,
    runtime: RuntimeDep,
    session: Session,
    method: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    return page(request, "dashboard/outbox.html", session, **await data.outbox(runtime, method or None))


@router.get("/switches")
async def switches_page(request: Request, runtime: RuntimeDep, session: Session) -> HTMLResponse:
    states = await switches.states(runtime.redis(), runtime.settings)
    return page(request, "dashboard/switches.html", session, switches=switches.SWITCHES, states=states)


@router.post("/switches/{name}")
async def flip_switch(
    runtime: RuntimeDep, session: ChangeSession, name: str, on: Annotated[str, Form()] = "0"
) -> Response:
    switch = switches.BY_NAME.get(name)
    if switch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no switch named {name!r}")
    await switches.flip(runtime.redis(), switch, on == "1")
    return RedirectResponse(f"{PREFIX}/switches", status.HTTP_303_SEE_OTHER)


def _queue(name: str):
    spec = QUEUES_BY_NAME.get(name)
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown queue {name!r}")
    return spec


async def _dead_letters(runtime: RuntimeDep, spec):
    from tgops.messaging.dlq import DeadLetters

    return DeadLetters(runtime.queues(), await runtime.database(), spec)


def _matches(letter, reason: str, text: str) -> bool:
    failure = letter.failure.reason if letter.failure else ""
    return (not reason or reason.lower() in failure.lower()) and (
        not text or text.lower() in letter.body_preview.lower()
    )


def dashboard_app(runtime: Runtime) -> FastAPI:
    """The dashboard as an app of its own, mounted at PREFIX, sharing the API's runtime and error answers."""
    from tgops.api import errors

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(router)
    return app
