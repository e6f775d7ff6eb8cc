"""The lawful-request page: register, approve and reject on the site (issue #19 item 5).

The list is newest received first, filtered by status in the URL (``?status=pending``),
with the totals of each status and pages of PAGE_SIZE; the CSV download gives exactly the
rows of the filter shown (every page of it), codes as codes (a file is read by programs
too) — and no subject: a
request shows how many subjects it names, never who. The subjects a reviewer types when
registering are sealed by the store as over the API and the CLI, and never shown again.

Every act is the reviewer's own, proven by their session (their account's password), and
is first an ``action`` entry of the log (gateway.rights.lawful_requests): registering,
each approval (two reviewers other than the registrant), a rejection with its reason.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from gateway.errors import GatewayError, InvalidRequestError
from gateway.log.actions import lawful_request_text, target
from gateway.rights import lawful_requests as legal_requests
from gateway.store.records import REQUIRED_APPROVALS, LegalRequestRecord, Rejection
from gateway.web.review.site import (
    PREFIX,
    Outcome,
    SignedIn,
    actions,
    context,
    path_id,
    redirect,
    render,
    reviewer_page,
    store,
)

__all__ = ["add_lawful_request_pages"]

log = logging.getLogger("gateway.review")

PAGE_SIZE: Final = 25
MAX_PAGE: Final = 100_000
# What the last form did: the query key its redirect sets, and what the page then says.
DONE_KEYS: Final = ("registered", "approved", "rejected")
CSV_COLUMNS: Final = (
    "id",
    "status",
    "authority",
    "reference",
    "instrument",
    "partners",
    "subject_count",
    "received_at",
    "registered_by",
    "approved_by",
    "rejected_by",
    "rejection_reason",
)


@dataclass(frozen=True)
class RequestRow:
    """One lawful request as the page shows it, with what this reviewer may do to it."""

    record: LegalRequestRecord
    blocked: str | None  # why this reviewer can neither approve nor reject; None: they can

    @property
    def rejection(self) -> Rejection | None:
        return self.record.rejection

    @property
    def partners(self) -> list[str]:
        return sorted(self.record.partners)

    @property
    def subject_count(self) -> int:
        return len(self.record.subjects)

    @property
    def count(self) -> int:
        """Approvals that count (the registrant's never does)."""
        return len({a.reviewer_id for a in self.record.approvals} - {self.record.registered_by})


def _blocked(record: LegalRequestRecord, reviewer_id: str) -> str | None:
    if record.status == "approved":
        return "approved"
    if record.status == "rejected":
        return "rejected"
    if record.registered_by == reviewer_id:
        return "you registered this request: two other reviewers approve or reject it"
    if any(a.reviewer_id == reviewer_id for a in record.approvals):
        return "you approved it; a second, different reviewer must approve it"
    return None


def _status(value: str | None) -> str | None:
    if not value or value == "all":
        return None
    if value not in legal_requests.STATUSES:
        raise InvalidRequestError(
            "'status' must be one of: all, " + ", ".join(legal_requests.STATUSES)
        )
    return value


def _page_number(value: str | None) -> int:
    if not value:
        return 1
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidRequestError("'page' must be a page number (1, 2, …)")
    return int(value)


def _url(path: str, **query: object) -> str:
    shown = [(k, str(v)) for k, v in query.items() if v not in (None, "", 1)]
    return f"{PREFIX}{path}" + (f"?{urlencode(shown)}" if shown else "")


async def _rows(request: web.Request, who: SignedIn) -> tuple[list[RequestRow], dict[str, int]]:
    """Every request (newest first) as rows, and the totals of each status."""
    records = await legal_requests.list_requests(store(request))
    totals = {s: 0 for s in legal_requests.STATUSES}
    for record in records:
        totals[record.status] = totals.get(record.status, 0) + 1
    rows = [RequestRow(r, _blocked(r, who.reviewer.id)) for r in records]
    return rows, totals


async def _page(
    request: web.Request,
    who: SignedIn,
    outcome: Outcome,
    typed: Mapping[str, Any] | None = None,
) -> web.Response:
    status = _status(request.query.get("status"))
    number = _page_number(request.query.get("page"))
    rows, totals = await _rows(request, who)
    shown = [r for r in rows if status is None or r.record.status == status]
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    number = min(number, pages)
    start = (number - 1) * PAGE_SIZE
    done = None
    for key in DONE_KEYS:
        value = request.query.get(key)
        if value and outcome.error is None:
            done = (key, next((r for r in rows if r.record.id == value), None))
    ctx = context(request)
    return render(
        request,
        "legal_requests.html",
        status=outcome.status,
        who=who,
        nav="legal",
        rows=shown[start : start + PAGE_SIZE],
        total=len(shown),
        totals=totals,
        all_total=len(rows),
        first=start + 1,
        last=min(start + PAGE_SIZE, len(shown)),
        page_number=number,
        pages=pages,
        shown_status=status,
        statuses=legal_requests.STATUSES,
        status_url=lambda s: _url("/legal-requests", status=s),
        prev_url=None if number == 1 else _url("/legal-requests", status=status, page=number - 1),
        next_url=None
        if number >= pages
        else _url("/legal-requests", status=status, page=number + 1),
        csv_url=_url("/legal-requests.csv", status=status),
        back=_url("/legal-requests", status=status, page=number),
        required=REQUIRED_APPROVALS,
        partner_ids=sorted(ctx.partners),
        typed=typed or {},
        max_text=legal_requests.MAX_TEXT,
        max_reason=legal_requests.MAX_REASON,
        error=outcome.error,
        done=done,
    )


@reviewer_page
async def request_list(request: web.Request, who: SignedIn) -> web.StreamResponse:
    return await _page(request, who, Outcome())


def _form_text(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _back(form: MultiDictProxy[Any]) -> str:
    """Where the form came from (the list with its filter and page), or the list."""
    value = _form_text(form, "back")
    home = f"{PREFIX}/legal-requests"
    if value == home or (value.startswith(home + "?") and value.isprintable() and len(value) < 300):
        return value
    return home


def _done_url(back: str, key: str, request_id: str) -> str:
    joiner = "&" if "?" in back else "?"
    return f"{back}{joiner}{urlencode([(key, request_id)])}"


@reviewer_page
async def register(request: web.Request, who: SignedIn) -> web.StreamResponse:
    form = await request.post()
    subjects = [s.strip() for s in _form_text(form, "subjects").splitlines() if s.strip()]
    body = {
        "authority": _form_text(form, "authority"),
        "reference": _form_text(form, "reference"),
        "instrument": _form_text(form, "instrument"),
        "partners": [p for p in form.getall("partners", []) if isinstance(p, str)],
        "subjects": subjects,
    }
    try:
        ctx = context(request)
        record = legal_requests.parse_legal_request(
            body, registered_by=who.reviewer.id, known_partners=ctx.partners, now=ctx.clock()
        )
        await actions(request).record(
            who.person,
            "register_lawful_request",
            target=target("lawful_request", record.id),
            legal_request_id=record.id,
            text=lawful_request_text(record),
        )
        await store(request).add_legal_request(record)
    except GatewayError as exc:
        if exc.code == "log_unavailable":
            raise
        # Typed text comes back (not the subjects: personal data is never shown again).
        typed = {k: body[k] for k in ("authority", "reference", "instrument", "partners")}
        return await _page(request, who, Outcome(error=exc), typed)
    log.info("reviewer %s registered lawful request %s", who.reviewer.id, record.id)
    return redirect(_done_url(f"{PREFIX}/legal-requests", "registered", record.id))


@reviewer_page
async def approve(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def decide(request_id: str, form: MultiDictProxy[Any]) -> None:
        await legal_requests.approve(
            store(request),
            request_id,
            who.reviewer.id,
            context(request).clock(),
            actions=actions(request),
            credential=who.person.credential,
        )

    return await _decide(request, who, "approved", decide)


@reviewer_page
async def reject(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def decide(request_id: str, form: MultiDictProxy[Any]) -> None:
        await legal_requests.reject(
            store(request),
            request_id,
            who.reviewer.id,
            _form_text(form, "reason"),
            context(request).clock(),
            actions=actions(request),
            credential=who.person.credential,
        )

    return await _decide(request, who, "rejected", decide)


async def _decide(
    request: web.Request,
    who: SignedIn,
    done: str,
    decide: Callable[[str, MultiDictProxy[Any]], Awaitable[None]],
) -> web.StreamResponse:
    """Approve or reject (`decide`) the lawful request of the path, then back to the list
    the form came from with `done` naming it; a refusal shows the page again with why."""
    request_id = path_id(request.match_info["request_id"], "lawful request")
    form = await request.post()
    try:
        await decide(request_id, form)
    except GatewayError as exc:
        if exc.code == "log_unavailable":
            raise
        return await _page(request, who, Outcome(error=exc))
    log.info("reviewer %s %s lawful request %s", who.reviewer.id, done, request_id)
    return redirect(_done_url(_back(form), done, request_id))


def _csv_row(row: RequestRow) -> list[str]:
    record = row.record
    rejection = row.rejection
    return [
        record.id,
        record.status,
        record.authority,
        record.reference,
        record.instrument,
        " ".join(row.partners),
        str(row.subject_count),
        _iso(record.received_at),
        record.registered_by,
        " ".join(a.reviewer_id for a in record.approvals),
        rejection.reviewer_id if rejection else "",
        rejection.reason if rejection else "",
    ]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def csv_text(rows: Sequence[RequestRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_safe_cell(cell) for cell in _csv_row(row)])
    return out.getvalue()


def _safe_cell(value: str) -> str:
    """A typed text that a spreadsheet would run as a formula is kept as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@reviewer_page
async def request_csv(request: web.Request, who: SignedIn) -> web.StreamResponse:
    status = _status(request.query.get("status"))
    await actions(request).record(who.person, "export", target=target("lawful_request"))
    rows, _ = await _rows(request, who)
    shown = [r for r in rows if status is None or r.record.status == status]
    stamp = context(request).clock().strftime("%Y%m%dT%H%M%SZ")
    return web.Response(
        text=csv_text(shown),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="lawful-requests-{stamp}.csv"',
        },
    )


def add_lawful_request_pages(sub: web.Application) -> None:
    routes = sub.router
    routes.add_get("/legal-requests", request_list, name="legal_requests")
    routes.add_get("/legal-requests.csv", request_csv, name="legal_requests_csv")
    routes.add_post("/legal-requests", register, name="legal_request_register")
    routes.add_post("/legal-requests/{request_id}/approve", approve, name="approve")
    routes.add_post("/legal-requests/{request_id}/reject", reject, name="reject")
