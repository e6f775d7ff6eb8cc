"""The review page's partners view (issue 9): each partner's agreement and how long it
still runs, whether it is suspended, and forms for reviewers to suspend (with a
reason) or resume it. The forms post with the session's CSRF token (`reviewer_page`)
and act through the same `gateway.partners.standing.Suspensions` as the API and the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from gateway.config.model import Config
from gateway.errors import InternalServerError
from gateway.ops.reload import RELOADER
from gateway.partners.model import current
from gateway.partners.standing import MAX_REASON, Suspensions, agreement_days_left
from gateway.web.keys import SUSPENSIONS
from gateway.web.review.site import (
    Outcome,
    SignedIn,
    context,
    form_page_handler,
    path_id,
    post_form,
    render,
    reviewer_page,
)

__all__ = ["add_partner_pages"]

HISTORY_SHOWN: Final = 20
DEFAULT_WARN_DAYS: Final = Config.partner_warn_days


def _service(request: web.Request) -> Suspensions:
    found = request.config_dict.get(SUSPENSIONS)
    if found is None:
        raise InternalServerError(
            "partner suspensions are not wired: the composition root must set app[SUSPENSIONS]",
        )
    return found


async def _page(request: web.Request, who: SignedIn, outcome: Outcome) -> web.Response:
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
        status=outcome.status,
        who=who,
        nav="partners",
        rows=rows,
        history=history,
        max_reason=MAX_REASON,
        **outcome.values(),
    )


partners_page = reviewer_page(form_page_handler(_page, "done"))


async def _change(
    request: web.Request,
    who: SignedIn,
    act: Callable[[str, str | None], Awaitable[str]],
) -> web.StreamResponse:
    """Suspend or resume the path's partner with the form's reason; `act` says what it did."""
    partner_id = path_id(request.match_info["partner_id"], "partner")
    form = await request.post()
    reason = form.get("reason")
    text = reason if isinstance(reason, str) else None
    return await post_form(
        request, who, lambda: act(partner_id, text), page=_page, back="/partners", key="done"
    )


@reviewer_page
async def suspend(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def act(partner_id: str, reason: str | None) -> str:
        _, made = await _service(request).suspend(
            partner_id, reason, who.reviewer.id, who.person.credential
        )
        return f"{partner_id} suspended" if made else f"{partner_id} was already suspended"

    return await _change(request, who, act)


@reviewer_page
async def resume(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def act(partner_id: str, reason: str | None) -> str:
        lifted = await _service(request).resume(
            partner_id, who.reviewer.id, reason, who.person.credential
        )
        return f"{partner_id} resumed" if lifted else f"{partner_id} was not suspended"

    return await _change(request, who, act)


def add_partner_pages(sub: web.Application) -> None:
    routes = sub.router
    routes.add_get("/partners", partners_page, name="partners")
    routes.add_post("/partners/{partner_id}/suspend", suspend, name="partner_suspend")
    routes.add_post("/partners/{partner_id}/resume", resume, name="partner_resume")
