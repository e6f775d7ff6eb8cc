"""The review site's data map (issue 19): partners × data categories, what each partner
file declares beside what was actually sent in the window, from the same counts as the
record of processing (gateway.rights.ropa; `GET /v1/ropa`).

A server-rendered table (the site's CSP allows no script). Each number links to the
disclosure list behind it: the partner's sent disclosures in the window, each with its
fields. The page is aggregate (no subject, no value): reading it writes no action entry.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from gateway import vocabulary as v
from gateway.partners.model import current
from gateway.rights.ropa import data_map, read_ropa, window_of
from gateway.web.review.site import PREFIX, SignedIn, context, render, reviewer_page, store

__all__ = ["add_data_map_pages"]

# The data categories in the policy's order (I.1), then whatever a field outside it maps to.
CATEGORIES: Final = (*v.FIELD_CATEGORIES, "other")


def _list_url(partner: str, since: date, until: date) -> str:
    """The disclosure list of the partner's sent disclosures, both dates inclusive."""
    query = {"partner": partner, "outcome": "sent", "since": since.isoformat()}
    query["until"] = until.isoformat()
    return f"{PREFIX}/disclosures?{urlencode(query)}"


@reviewer_page
async def data_map_page(request: web.Request, who: SignedIn) -> web.StreamResponse:
    ctx = context(request)
    since_text = request.query.get("since") or None
    until_text = request.query.get("until") or None
    since, until = window_of(since_text, until_text, ctx.clock())
    partners = current(ctx.partners)
    report = await read_ropa(store(request), partners, since, until)
    rows = data_map(report, v.CATEGORY_OF_FIELD)
    shown = [c for c in CATEGORIES if any(c in row.cells for row in rows)]
    # The list's dates are inclusive: the last day is the one before `until`, unless
    # `until` falls within a day.
    last_day = (until - timedelta(microseconds=1)).date()
    return render(
        request,
        "data_map.html",
        who=who,
        nav="data_map",
        rows=rows,
        categories=shown,
        special=v.SPECIAL_FIELDS,
        since=since,
        until=until,
        since_value=since_text or "",
        until_value=until_text or "",
        links={row.partner: _list_url(row.partner, since.date(), last_day) for row in rows},
        names={pid: p.name for pid, p in partners.items()},
    )


def add_data_map_pages(sub: web.Application) -> None:
    sub.router.add_get("/data-map", data_map_page, name="data_map")
