"""The review page's handlers (CONTRACT §4.8): parse the form or query, call the store or
the ReviewBackend, render a template. Mounted under /review by `add_review_routes`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from gateway import vocabulary as v
from gateway.clock import utc_now
from gateway.config.model import Reviewer
from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
)
from gateway.log.actions import target
from gateway.log.columns import checked_disclosure
from gateway.partners.model import Partner
from gateway.problem_catalog import CATALOGUE
from gateway.subject_id import check_subject_id, is_subject_id
from gateway.web.review.actions_page import action_page, add_action_pages
from gateway.web.review.data_map_page import add_data_map_pages
from gateway.web.review.exposure_page import add_exposure_pages
from gateway.web.review.lawful_page import add_lawful_request_pages
from gateway.web.review.listing import (
    OUTCOME_CHOICES,
    SCAN_BUDGET,
    Filters,
    csv_lines,
    matching_rows,
    parse_after,
    search_page,
    total_rows,
)
from gateway.web.review.notices_page import add_notice_pages
from gateway.web.review.oidc import add_oidc_pages
from gateway.web.review.oidc_client import OidcClient
from gateway.web.review.overview import add_overview_page
from gateway.web.review.partners_page import add_partner_pages
from gateway.web.review.session import Sealer, SessionSigner
from gateway.web.review.signin import accounts_of, add_sign_in_pages
from gateway.web.review.site import (
    PREFIX,
    REVIEW,
    SECURITY_HEADERS,
    TEMPLATES,
    Outcome,
    ReviewContext,
    SignedIn,
    actions,
    backend,
    context,
    form_page_handler,
    path_id,
    redirect,
    render,
    review_middleware,
    reviewer_page,
    store,
    templates_environment,
)
from gateway.web.review.tokens_page import add_token_pages

__all__ = ["add_review_routes"]

log = logging.getLogger("gateway.review")

MAX_JUSTIFICATION: Final = 4000
EXPORT_CHUNK: Final = 500

# Entry members in the order a reviewer reads them; others follow alphabetically.
ENTRY_ORDER: Final = (
    "kind",
    "time",
    "disclosure_id",
    "caller",
    "partner",
    "partner_category",
    "operation",
    "method",
    "purpose",
    "legal_basis",
    "consent_id",
    "legal_request_id",
    "policy_version",
    "bound_by_policy_version",
    "needs_review",
    "withheld",
    "retention_days",
    "outcome",
    "partner_status",
    "attempts",
    "maybe_received",
    "problem",
    "reasons",
    "subject_ref",
    "data_digest",
    "v",
)


def _text(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _list_url(filters: Filters, after: int | None = None) -> str:
    pairs = filters.query() + ([("after", str(after))] if after is not None else [])
    return f"{PREFIX}/disclosures" + (f"?{urlencode(pairs)}" if pairs else "")


def _choices(ctx: ReviewContext) -> dict[str, Any]:
    return {
        "partners": sorted(ctx.partners.values(), key=lambda p: p.id),
        "categories": v.PARTNER_CATEGORIES,
        "purposes": v.PURPOSES,
        "bases": v.LEGAL_BASES,
        "outcomes": OUTCOME_CHOICES,
        "problems": sorted(((code, kind.title) for code, kind in CATALOGUE.items()), key=_second),
    }


def _second(pair: tuple[str, str]) -> str:
    return pair[1]


# -- disclosures ----------------------------------------------------------------------


@reviewer_page
async def disclosure_list(request: web.Request, who: SignedIn) -> web.StreamResponse:
    ctx = context(request)
    filters, subject = await _filters(request, request.query.get, request.query.get("s"))
    after = parse_after(request.query.get("after"))
    acts = None
    if subject is not None:  # a read of personal scope: recorded before it is answered
        await actions(request).record(who.person, "search_by_subject", subject=subject)
        acts = await action_page(store(request), refs=filters.refs)
    page = await search_page(store(request), filters, after=after)
    return render(
        request,
        "disclosures.html",
        who=who,
        nav="disclosures",
        filters=filters,
        subject=subject,
        after=after,
        page=page,
        total=await total_rows(store(request), filters),
        next_url=None if page.next_after is None else _list_url(filters, page.next_after),
        first_url=_list_url(filters),
        export_url=f"{PREFIX}/export.csv"
        + (f"?{urlencode(filters.query())}" if filters.query() else ""),
        clear_subject_url=_list_url(replace(filters, subject_token=None, refs=None)),
        page_budget=SCAN_BUDGET,
        acts=acts,
        **_choices(ctx),
    )


async def _filters(
    request: web.Request, get: Callable[[str], str | None], token: str | None
) -> tuple[Filters, str | None]:
    """The filters of a query, and the subject its sealed token names (if any)."""
    if not token:
        return Filters.parse(get), None
    subject = context(request).sealer.open(token)
    if subject is None or not is_subject_id(subject):
        raise InvalidRequestError(
            "the subject filter of this link cannot be read (altered, or made under another "
            "session key); search by the subject again",
        )
    refs = await backend(request).subject_refs(subject)
    return Filters.parse(get, subject_token=token, refs=refs), subject


@reviewer_page
async def search(request: web.Request, who: SignedIn) -> web.StreamResponse:
    """The filter form: POSTed, so the subject id reaches no URL, history or access log."""
    form = await request.post()
    typed = _text(form, "subject") or ""
    # An empty field means "any subject"; anything else must be one valid id, exactly as
    # the API takes it (a variant spelling would find nothing and look like "no disclosure").
    subject = check_subject_id(typed, "the subject") if typed else None
    token = context(request).sealer.seal(subject) if subject else None
    filters = Filters.parse(lambda name: _text(form, name), subject_token=token)
    return redirect(_list_url(filters))


def _entry_members(entry: Mapping[str, Any]) -> list[tuple[str, Any]]:
    skip = {"fields"}
    known = [(k, entry[k]) for k in ENTRY_ORDER if k in entry and k not in skip]
    rest = sorted((k, val) for k, val in entry.items() if k not in ENTRY_ORDER and k not in skip)
    return known + rest


@reviewer_page
async def disclosure_detail(request: web.Request, who: SignedIn) -> web.StreamResponse:
    disclosure_id = path_id(request.match_info["disclosure_id"], "disclosure")
    found = await checked_disclosure(store(request), disclosure_id)
    if not found:
        raise NotFoundError(f"no disclosure {disclosure_id[:80]!r} in the log")
    review = backend(request)
    entries = []
    needs_review = False
    for entry in found:
        needs_review = needs_review or (entry.kind == "intent" and entry.needs_review)
        entries.append(
            {
                "index": entry.index,
                "kind": entry.kind,
                "members": _entry_members(entry.data),
                "fields": sorted(entry.fields.items()),
                "raw": entry.raw.decode("utf-8"),
                "proof": await review.verify_entry(entry.index),
            }
        )
    justification = await review.justification(disclosure_id) if needs_review else None
    return render(
        request,
        "disclosure.html",
        who=who,
        nav="disclosures",
        disclosure_id=disclosure_id,
        entries=entries,
        needs_review=needs_review,
        justification=justification,
        category_of_field=v.CATEGORY_OF_FIELD,
    )


@reviewer_page
async def export_csv(request: web.Request, who: SignedIn) -> web.StreamResponse:
    filters, subject = await _filters(request, request.query.get, request.query.get("s"))
    if subject is not None:
        await actions(request).record(who.person, "export", subject=subject)
    else:
        await actions(request).record(who.person, "export", target=target("log"))
    stamp = context(request).clock().strftime("%Y%m%dT%H%M%SZ")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="disclosures-{stamp}.csv"',
        }
    )
    await response.prepare(request)
    await response.write(csv_lines([], header=True).encode("utf-8"))
    rows = []
    last: int | None = None
    try:
        async for row in matching_rows(store(request), filters):
            rows.append(row)
            last = row.index
            if len(rows) >= EXPORT_CHUNK:
                await response.write(csv_lines(rows, header=False).encode("utf-8"))
                rows = []
        await response.write(csv_lines(rows, header=False).encode("utf-8"))
    except GatewayError as exc:
        # Headers are sent: a problem page is no longer possible. Say so in the file,
        # on a line no reader can take for a disclosure.
        log.warning("CSV export stopped early: %s", exc.code)
        where = f" after index {last}" if last is not None else ""
        await response.write(f"EXPORT INCOMPLETE{where}: {exc.code}; export again\r\n".encode())
    log.info("reviewer %s exported the disclosure list", who.reviewer.id)
    await response.write_eof()
    return response


# -- integrity ------------------------------------------------------------------------


@reviewer_page
async def integrity(request: web.Request, who: SignedIn) -> web.StreamResponse:
    status = await backend(request).integrity()
    return render(request, "integrity.html", who=who, nav="integrity", integrity=status)


# -- emergency queue ------------------------------------------------------------------


async def _queue_page(request: web.Request, who: SignedIn, outcome: Outcome) -> web.Response:
    items = await backend(request).review_queue()
    now = context(request).clock()
    return render(
        request,
        "queue.html",
        status=outcome.status,
        who=who,
        nav="queue",
        items=[(item, item.overdue(now)) for item in items],
        overdue_count=sum(1 for item in items if item.overdue(now)),
        max_justification=MAX_JUSTIFICATION,
        **outcome.values(),
    )


queue = reviewer_page(form_page_handler(_queue_page, "justified"))


@reviewer_page
async def justify(request: web.Request, who: SignedIn) -> web.StreamResponse:
    disclosure_id = path_id(request.match_info["disclosure_id"], "disclosure")
    form = await request.post()
    text = (_text(form, "justification") or "").strip()
    try:
        if (
            not text
            or len(text) > MAX_JUSTIFICATION
            or not all(c.isprintable() or c in "\r\n\t" for c in text)
        ):
            raise InvalidRequestError(
                f"write a justification of 1 to {MAX_JUSTIFICATION} characters: why the "
                "emergency basis applied (no personal data values)",
            )
        await backend(request).justify(disclosure_id, who.reviewer.id, text, who.person.credential)
    except GatewayError as exc:
        return await _queue_page(request, who, Outcome(error=exc))
    log.info("reviewer %s justified %s", who.reviewer.id, disclosure_id)
    return redirect(f"{PREFIX}/queue?{urlencode([('justified', disclosure_id)])}")


# -- assembly -------------------------------------------------------------------------


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # on_response_prepare: also reaches a streamed CSV, whose headers go out before
    # the handler returns to any middleware.
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _stylesheet(css: bytes) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=css, content_type="text/css", charset="utf-8")

    return handler


async def _to_slash(request: web.Request) -> web.Response:
    return redirect(f"{PREFIX}/")


def add_review_routes(
    app: web.Application,
    *,
    reviewers: Mapping[str, Reviewer],
    session_key: bytes,
    partners: Mapping[str, Partner],
    clock: Callable[[], datetime] = utc_now,
    source: str = "config.toml",
    oidc: OidcClient | None = None,
    public_url: str | None = None,
) -> web.Application:
    """Mount the review page at /review/ on `app` (before it starts); return the sub-app.

    The store is read from ``app[gateway.web.keys.STORE]`` and the ReviewBackend from
    ``app[REVIEW_BACKEND]`` at request time, so both may be set in a cleanup context.
    Raises ConfigError when a reviewer's password hash cannot be used. With `oidc`,
    people also sign in through that OpenID provider (closed with the app).
    """
    sub = web.Application(middlewares=[review_middleware])
    sub[REVIEW] = ReviewContext(
        accounts=accounts_of(reviewers, source),
        signer=SessionSigner(session_key),
        sealer=Sealer(session_key),
        partners=partners,
        clock=clock,
        templates=templates_environment(),
        oidc=oidc,
        public_url=public_url,
    )
    if oidc is not None:
        sub.on_cleanup.append(lambda _: oidc.close())
    sub.on_response_prepare.append(_security_headers)
    css = (TEMPLATES / "review.css").read_bytes()
    routes = sub.router
    add_overview_page(sub)
    routes.add_get("/disclosures", disclosure_list, name="list")
    routes.add_post("/search", search, name="search")
    routes.add_get("/disclosures/{disclosure_id}", disclosure_detail, name="disclosure")
    routes.add_get("/export.csv", export_csv, name="export")
    routes.add_get("/integrity", integrity, name="integrity")
    routes.add_get("/queue", queue, name="queue")
    routes.add_post("/queue/{disclosure_id}/justify", justify, name="justify")
    add_lawful_request_pages(sub)
    add_partner_pages(sub)
    add_data_map_pages(sub)
    add_action_pages(sub)
    add_exposure_pages(sub)
    add_notice_pages(sub)
    add_sign_in_pages(sub)
    add_oidc_pages(sub)
    add_token_pages(sub)
    routes.add_get("/static/review.css", _stylesheet(css), name="css")
    # Before the sub-app: its prefix resource would answer /review (no slash) with a 404.
    app.router.add_get(PREFIX, _to_slash, name="review_root")
    app.add_subapp(PREFIX, sub)
    return sub
