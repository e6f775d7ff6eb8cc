"""The review site's breach-scope page (issue #19 item 2): ``/review/exposure?partner=
&since=&until=`` — what one partner received in a window, counted from the log.

The counts of :mod:`gateway.rights.exposure` (the same as ``GET
/v1/partners/{id}/exposure`` and ``gateway exposure``): disclosures sent and maybe
received, distinct subject references, each field and category with its counts, the
special categories flagged, and one page of subject references (keyset: ``cursor``).
Without a partner the page is only its form. Each read is an ``action`` entry
(``read_exposure``) with the partner, the window and the totals, like the API's. The bars
are server-rendered SVG (the site's CSP runs no script).
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.errors import GatewayError, InvalidRequestError
from gateway.log.entries import target
from gateway.rights.exposure import Exposure, parse_window, read_exposure, require_known_partner
from gateway.web.review.site import SignedIn, actions, context, render, reviewer_page, store

__all__ = ["add_exposure_pages"]

REFS_SHOWN: Final = 50
BAR_WIDTH: Final = 160
DEFAULT_DAYS: Final = 30


def _window_text(found: Exposure) -> str:
    """The window as a person reads it: whole UTC days when it is whole days."""
    since, until = found.window.since, found.window.until
    if since.time() == until.time() == time():
        last = (until - timedelta(days=1)).date()
        return f"{since.date()} to {last} (UTC, both days included)"
    return f"{since.isoformat()} to {until.isoformat()} (exclusive)"


def _bars(found: Exposure) -> dict[str, int]:
    """Each field's bar length in pixels, against the busiest field."""
    top = max((f.disclosures for f in found.fields), default=0)
    return {f.name: round(BAR_WIDTH * f.disclosures / top) if top else 0 for f in found.fields}


async def _read(request: web.Request, who: SignedIn, query: dict[str, str]) -> Exposure:
    partner = query["partner"]
    window = parse_window(query["since"], query["until"])
    cursor = request.query.get("cursor", "")
    if cursor and not (len(cursor) == 64 and all(c in "0123456789abcdef" for c in cursor)):
        raise InvalidRequestError("'cursor' must be the one the page's Next link gave")
    found = await read_exposure(store(request), partner, window, cursor=cursor, limit=REFS_SHOWN)
    require_known_partner(partner, context(request).partners, found.totals.disclosures)
    await actions(request).record(
        who.person,
        "read_exposure",
        target=target("partner", partner),
        partner=partner,
        window=str(window),
        counts=found.counts(),
    )
    return found


@reviewer_page
async def exposure_page(request: web.Request, who: SignedIn) -> web.StreamResponse:
    ctx = context(request)
    today = ctx.clock().date()
    query = {
        "partner": request.query.get("partner", ""),
        "since": request.query.get("since") or (today - timedelta(days=DEFAULT_DAYS)).isoformat(),
        "until": request.query.get("until") or today.isoformat(),
    }
    values: dict[str, Any] = {"found": None, "error": None, "next_link": None}
    status = 200
    if query["partner"]:
        try:
            found = await _read(request, who, query)
        except GatewayError as exc:
            if exc.code == "log_unavailable":
                raise
            values["error"], status = exc, exc.status
        else:
            values.update(
                found=found,
                body=found.as_json(),
                bars=_bars(found),
                window_text=_window_text(found),
            )
            if found.next_cursor:
                values["next_link"] = "?" + urlencode({**query, "cursor": found.next_cursor})
    return render(
        request,
        "exposure.html",
        status=status,
        who=who,
        nav="exposure",
        partners=sorted(ctx.partners),
        query=query,
        bar_width=BAR_WIDTH,
        **values,
    )


def add_exposure_pages(sub: web.Application) -> None:
    sub.router.add_get("/exposure", exposure_page, name="exposure")
