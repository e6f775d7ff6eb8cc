"""`GET /v1/ropa`: the live record of processing, for reviewers (issue 19).

`?since=&until=` (a date YYYY-MM-DD or an RFC 3339 time; since defaults to a year
before until, until to now) and `?format=json|csv` (json by default). The record is
aggregate — counts per partner, operation, purpose and basis, no subject and no value —
so reading it is not a personal-scope read: no action entry (gateway.rights.ropa).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.errors import InvalidRequestError
from gateway.partners.model import current
from gateway.rights.ropa import read_ropa, report_csv, report_json, window_of
from gateway.web.http import caller_of, json_response
from gateway.web.keys import GATEWAY, STORE

__all__ = ["add_ropa_routes"]

FORMATS: Final = ("json", "csv")
_KNOWN_PARAMETERS: Final = frozenset({"since", "until", "format"})


async def get_ropa(request: web.Request) -> web.Response:
    await caller_of(request, "reviewer")
    unknown = sorted(set(request.query) - _KNOWN_PARAMETERS)
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter(s) {', '.join(unknown)}; known: since, until, format"
        )
    shape = request.query.get("format", "json")
    if shape not in FORMATS:
        raise InvalidRequestError(f"format must be one of {', '.join(FORMATS)}, not {shape!r}")
    gw = request.app[GATEWAY]
    since, until = window_of(request.query.get("since"), request.query.get("until"), gw.clock())
    report = await read_ropa(request.app[STORE], current(gw.partners), since, until)
    if shape == "csv":
        return web.Response(
            text=report_csv(report),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="ropa.csv"'},
        )
    return json_response(report_json(report))


def add_ropa_routes(app: web.Application) -> None:
    app.router.add_get("/v1/ropa", get_ropa, name="ropa")
