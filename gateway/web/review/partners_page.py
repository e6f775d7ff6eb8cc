"""The review page's partners view (issue 9): each partner's agreement and how long it
still runs, whether it is suspended, and forms for reviewers to suspend (with a
reason) or resume it. The forms post with the session's CSRF token (`reviewer_page`)
and act through the same `gateway.partners.standing.Suspensions` as the API and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.config.model import Config
from gateway.errors import GatewayError, InternalServerError, NotFoundError
from gateway.ops.reload import RELOADER
from gateway.partners.model import current
from gateway.partners.standing import MAX_REASON, Suspensions, agreement_days_left
from gateway.policy.request import MAX_ID
from gateway.web.keys import SUSPENSIONS
from gateway.web.review.site import PREFIX, SignedIn, context, redirect, render, reviewer_page

__all__ = ["add_partner_pages"]

log = logging.getLogger("gateway.review")

HISTORY_SHOWN: Final = 20
DEFAULT_WARN_DAYS: Final = Config.partner_warn_days


def _service(request: web.Request) -> Suspensions:
    found = request.config_dict.get(SUSPENSIONS)
    if found is None:
        raise InternalServerError(
            "partner suspensions are not wired: the composition root must set app[SUSPENSIONS]",
        )
    return found


def _partner_id(request: web.Request) -> str:
    value = request.match_info["partner_id"]
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise NotFoundError("no partner with this id")
    return value


async def _page(
    request: web.Request,
    who: SignedIn,
    *,
    status: int = 200,
    error: GatewayError | None = None,
    done: str | None = None,
) -> web.Response:
    ctx = context(request)
    service = _service(request)
    suspended = await service.in_force()
    history = await service.history(limit=HISTORY_SHOWN)
    today = ctx.clock().date()
    reloader = request.config_dict.get(RELOADER)
    warn_days = reloader.warn_days if reloader is not None else DEFAULT_WARN_DAYS
    rows: list[dict[str, Any]] = []
    for partner in sorted(current(ctx.partners).values(), key=lambda p: p.id):
        left = agreement_days_left(partner, today)
        rows.append(
            {
                "partner": partner,
                "days_left": left,
                "warn": left is not None and left <= warn_days,
                "suspension": suspended.get(partner.id),
            }
        )
    return render(
        request,
        "partners.html",
        status=status,
        who=who,
        nav="partners",
        rows=rows,
        history=history,
        error=error,
        done=done,
        max_reason=MAX_REASON,
    )


@reviewer_page
async def partners_page(request: web.Request, who: SignedIn) -> web.StreamResponse:
    done = request.query.get("done")
    shown = done if done and len(done) <= 200 and done.isprintable() else None
    return await _page(request, who, done=shown)


async def _change(
    request: web.Request,
    who: SignedIn,
    act: Callable[[str, str | None], Awaitable[str]],
) -> web.StreamResponse:
    """Suspend or resume the path's partner with the form's reason; `act` says what it did."""
    partner_id = _partner_id(request)
    form = await request.post()
    reason = form.get("reason")
    try:
        note = await act(partner_id, reason if isinstance(reason, str) else None)
    except GatewayError as exc:
        if exc.code == "log_unavailable":
            raise
        return await _page(request, who, status=exc.status, error=exc)
    return redirect(f"{PREFIX}/partners?{urlencode([('done', note)])}")


@reviewer_page
async def suspend(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def act(partner_id: str, reason: str | None) -> str:
        _, made = await _service(request).suspend(partner_id, reason, who.reviewer.id)
        return f"{partner_id} suspended" if made else f"{partner_id} was already suspended"

    return await _change(request, who, act)


@reviewer_page
async def resume(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def act(partner_id: str, reason: str | None) -> str:
        lifted = await _service(request).resume(partner_id, who.reviewer.id, reason)
        return f"{partner_id} resumed" if lifted else f"{partner_id} was not suspended"

    return await _change(request, who, act)


def add_partner_pages(sub: web.Application) -> None:
    routes = sub.router
    routes.add_get("/partners", partners_page, name="partners")
    routes.add_post("/partners/{partner_id}/suspend", suspend, name="partner_suspend")
    routes.add_post("/partners/{partner_id}/resume", resume, name="partner_resume")
