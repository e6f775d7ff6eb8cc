"""The review page's partners view (issue 9): each partner's agreement and how long it
still runs, whether it is suspended, and forms for reviewers to suspend (with a
reason) or resume it; a list like the others (issue #19): status tabs with totals,
filters in the URL, alphabetical or agreement ending first, pages, and its CSV
(`partner_list`). The forms post with the session's CSRF token (`reviewer_page`)
and act through the same `gateway.partners.standing.Suspensions` as the API and the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.config.model import Config
from gateway.errors import InternalServerError
from gateway.log.actions import target
from gateway.ops.reload import RELOADER
from gateway.partners.model import current
from gateway.partners.standing import MAX_REASON, Suspensions
from gateway.web.keys import SUSPENSIONS
from gateway.web.review.partner_list import (
    PAGE_SIZE,
    STATUS_LABELS,
    STATUSES,
    PartnerFilter,
    PartnerRow,
    csv_text,
    partner_filter,
    partner_rows,
    shown,
    status_totals,
)
from gateway.web.review.site import (
    PREFIX,
    Outcome,
    SignedIn,
    actions,
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


def _url(path: str, query: dict[str, object]) -> str:
    return f"{PREFIX}{path}" + (f"?{urlencode(query)}" if query else "")


async def _listed(request: web.Request) -> tuple[list[PartnerRow], PartnerFilter, list[PartnerRow]]:
    """Every partner's row, the URL's filter, and the rows it keeps in its order."""
    ctx = context(request)
    partners = current(ctx.partners).values()
    wanted = partner_filter(request.query, (p.category for p in partners))
    reloader = request.config_dict.get(RELOADER)
    warn_days = reloader.warn_days if reloader is not None else DEFAULT_WARN_DAYS
    suspended = await _service(request).in_force()
    rows = partner_rows(partners, suspended, ctx.clock().date(), warn_days)
    return rows, wanted, shown(rows, wanted)


async def _page(request: web.Request, who: SignedIn, outcome: Outcome) -> web.Response:
    rows, wanted, kept = await _listed(request)
    history = await _service(request).history(limit=HISTORY_SHOWN)
    pages = max(1, -(-len(kept) // PAGE_SIZE))
    number = min(wanted.page, pages)
    start = (number - 1) * PAGE_SIZE
    return render(
        request,
        "partners.html",
        status=outcome.status,
        who=who,
        nav="partners",
        rows=kept[start : start + PAGE_SIZE],
        total=len(kept),
        totals=status_totals(rows, wanted),
        first=start + 1,
        last=min(start + PAGE_SIZE, len(kept)),
        page_number=number,
        pages=pages,
        wanted=wanted,
        statuses=STATUSES,
        status_labels=STATUS_LABELS,
        categories=sorted({r.partner.category for r in rows}),
        status_url=lambda s: _url("/partners", wanted.query(status=s, page=1)),
        prev_url=None if number == 1 else _url("/partners", wanted.query(page=number - 1)),
        next_url=None if number >= pages else _url("/partners", wanted.query(page=number + 1)),
        csv_url=_url("/partners.csv", wanted.query(page=1)),
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


@reviewer_page
async def partners_csv(request: web.Request, who: SignedIn) -> web.StreamResponse:
    _, _, kept = await _listed(request)
    await actions(request).record(who.person, "export", target=target("partner"))
    stamp = context(request).clock().strftime("%Y%m%dT%H%M%SZ")
    return web.Response(
        text=csv_text(kept),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="partners-{stamp}.csv"'},
    )


def add_partner_pages(sub: web.Application) -> None:
    routes = sub.router
    routes.add_get("/partners", partners_page, name="partners")
    routes.add_get("/partners.csv", partners_csv, name="partners_csv")
    routes.add_post("/partners/{partner_id}/suspend", suspend, name="partner_suspend")
    routes.add_post("/partners/{partner_id}/resume", resume, name="partner_resume")
