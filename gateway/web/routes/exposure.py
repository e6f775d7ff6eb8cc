"""A partner's exposure over HTTP (breach scope, issue #19): ``GET
/v1/partners/{partner_id}/exposure?since=&until=[&limit=&cursor=]``, for reviewers.

The counts of :mod:`gateway.rights.exposure` and one page of subject references (keyset
paging: ``cursor`` is the ``next_cursor`` of the page before). Each read is an ``action``
entry (``read_exposure``) naming the partner, the window and the two totals.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from gateway.errors import InvalidRequestError
from gateway.log.entries import target
from gateway.rights.exposure import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Exposure,
    parse_window,
    read_exposure,
    require_known_partner,
)
from gateway.web.http import json_response, person_of
from gateway.web.keys import ACTIONS, GATEWAY, STORE

__all__ = ["add_exposure_routes", "exposure_of"]

_REF: Final = re.compile(r"[0-9a-f]{64}")
_DIGITS: Final = re.compile(r"[0-9]{1,4}")


def _page(request: web.Request) -> tuple[str, int]:
    cursor = request.query.get("cursor", "")
    if cursor and not _REF.fullmatch(cursor):
        raise InvalidRequestError("'cursor' must be the next_cursor of the page before")
    text = request.query.get("limit", str(DEFAULT_PAGE))
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidRequestError(f"'limit' must be a whole number from 1 to {MAX_PAGE}")
    return cursor, int(text)


async def exposure_of(
    request: web.Request, partner: str, since: str | None, until: str | None
) -> Exposure:
    """The exposure a reviewer asked for (API and review page alike); 404 for a partner
    neither in the partner files nor in the window's log."""
    window = parse_window(since, until)
    cursor, limit = _page(request)
    found = await read_exposure(request.app[STORE], partner, window, cursor=cursor, limit=limit)
    require_known_partner(partner, request.app[GATEWAY].partners, found.totals.disclosures)
    return found


async def get_exposure(request: web.Request) -> web.Response:
    who = await person_of(request, "reviewer")
    partner = request.match_info["partner_id"]
    found = await exposure_of(
        request, partner, request.query.get("since"), request.query.get("until")
    )
    await request.app[ACTIONS].record(
        who,
        "read_exposure",
        target=target("partner", partner),
        partner=partner,
        window=str(found.window),
        counts=found.counts(),
    )
    return json_response(found.as_json())


def add_exposure_routes(app: web.Application) -> None:
    app.router.add_get("/v1/partners/{partner_id}/exposure", get_exposure, name="partner_exposure")
