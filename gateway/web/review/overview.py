"""The overview page at /review/ (issue #19 item 4): what the legal team looks at first.

Disclosures per day for 30 days by outcome (a stacked SVG bar chart drawn server-side:
the site's CSP allows no script), refusals by problem code with their titles, the partners
with most decisions, pending lawful requests and emergency cases with their age, the
witness status of the log, and partners whose agreement or key ends within 30 days.

Every count comes from one GROUP BY of the store (`LogSummaryStore`) over the window, and
every number links to the entries behind it: the disclosure list (/review/disclosures)
with its filters in the URL. Nothing here is personal: partner ids, outcomes, problem
codes, days, counts. A query string on /review/ is an old link to the disclosure list
(it lived here before): it is redirected there, filters kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.errors import GatewayError
from gateway.partners.standing import ExpiryWarning, expiry_warnings
from gateway.problem_catalog import CATALOGUE
from gateway.rights import lawful_requests
from gateway.store.summary_sql import KeyCount
from gateway.web.keys import WITNESSES
from gateway.web.review.charts import DAY_OUTCOMES, OUTCOME_WORDS, DayChart, day_chart
from gateway.web.review.site import (
    PREFIX,
    SignedIn,
    backend,
    context,
    redirect,
    render,
    reviewer_page,
    store,
)

__all__ = [
    "EXPIRY_DAYS",
    "TOP_PARTNERS",
    "WINDOW_DAYS",
    "add_overview_page",
    "list_url",
    "witness_view",
]

WINDOW_DAYS: Final = 30
EXPIRY_DAYS: Final = 30
TOP_PARTNERS: Final = 8


def list_url(**filters: str | date) -> str:
    """The disclosure list with `filters` (its query parameters) in the URL."""
    pairs = [
        (name, value.isoformat() if isinstance(value, date) else value)
        for name, value in filters.items()
    ]
    return f"{PREFIX}/disclosures" + (f"?{urlencode(pairs)}" if pairs else "")


@dataclass(frozen=True)
class Bar:
    """A row of a horizontal bar list: its label, the code on hover, count and link."""

    label: str
    code: str
    count: int
    href: str
    width: float  # of the longest bar, 0..100


def _bars(rows: Sequence[KeyCount], label: dict[str, str], href: dict[str, str]) -> list[Bar]:
    most = max((r.count for r in rows), default=0) or 1
    return [
        Bar(label.get(r.key, r.key), r.key, r.count, href[r.key], round(100 * r.count / most, 1))
        for r in rows
    ]


def _refusals_url(code: str, first: date) -> str:
    """The refusals of the window with problem `code` (any problem, for a code the catalogue
    no longer has: the list accepts only catalogue codes)."""
    if code in CATALOGUE:
        return list_url(outcome="refused", problem=code, since=first)
    return list_url(outcome="refused", since=first)


def problem_label(code: str) -> str:
    """A problem code as words: its title in the problem catalogue."""
    kind = CATALOGUE.get(code)
    if kind is not None:
        return kind.title
    return code.replace("_", " ").capitalize() if code else "No problem code recorded"


@dataclass(frozen=True)
class WitnessView:
    """The log's witnessing as /readyz knows it, and the witnessed checkpoint."""

    configured: bool
    quorum: str | None = None
    quorum_met: bool | None = None
    witnessed_size: int | None = None
    witnessed_age: timedelta | None = None
    latest_size: int | None = None
    latest_age: timedelta | None = None
    alarms: tuple[str, ...] = ()
    not_cosigned: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    error: str | None = None


async def witness_view(request: web.Request, now: datetime) -> WitnessView:
    try:
        latest = await store(request).latest_checkpoint()
    except GatewayError as exc:
        return WitnessView(configured=False, error=exc.detail)
    base = WitnessView(
        configured=False,
        latest_size=None if latest is None else latest.size,
        latest_age=None if latest is None else now - latest.at,
    )
    runner = request.config_dict.get(WITNESSES)
    if runner is None or not runner.active or runner.policy is None:
        return base
    alarms = tuple(
        f"witness {a.witness} has cosigned size {a.witness_size}; the log has {a.log_size} entries"
        for a in runner.alarms.values()
    )
    base = replace(base, configured=True, quorum=runner.policy.quorum, alarms=alarms)
    try:
        witnessed = await runner.witnessed_checkpoint()
    except GatewayError as exc:
        return replace(base, error=exc.detail)
    return replace(
        base,
        quorum_met=runner.quorum_met,
        witnessed_size=None if witnessed is None else witnessed.size,
        witnessed_age=None if witnessed is None else now - witnessed.at,
        not_cosigned=tuple(sorted(runner.not_cosigned.items())),
    )


def window_start(now: datetime) -> date:
    """The first day of the window: the 30 days that end today (UTC)."""
    return now.astimezone(UTC).date() - timedelta(days=WINDOW_DAYS - 1)


async def overview_chart(request: web.Request, first: date) -> DayChart:
    since = datetime.combine(first, time(), UTC)
    rows = await store(request).decisions_by_day(since)
    return day_chart(
        {(r.day, r.outcome): r.count for r in rows},
        first,
        WINDOW_DAYS,
        lambda day, outcome: list_url(outcome=outcome, since=day, until=day),
    )


@reviewer_page
async def overview(request: web.Request, who: SignedIn) -> web.StreamResponse:
    if request.query_string:  # an old link to the disclosure list, which lived here
        return redirect(f"{PREFIX}/disclosures?{request.query_string}")
    ctx = context(request)
    now = ctx.clock()
    first = window_start(now)
    since = datetime.combine(first, time(), UTC)
    db = store(request)
    chart = await overview_chart(request, first)
    refusals = await db.refusals_by_problem(since)
    partners = await db.decisions_by_partner(since, TOP_PARTNERS)
    pending = await lawful_requests.list_requests(db, "pending")
    queue = await backend(request).review_queue()
    expiring: list[ExpiryWarning] = expiry_warnings(ctx.partners.values(), now, EXPIRY_DAYS)
    return render(
        request,
        "overview.html",
        who=who,
        nav="overview",
        first=first,
        window_days=WINDOW_DAYS,
        expiry_days=EXPIRY_DAYS,
        chart=chart,
        outcomes=DAY_OUTCOMES,
        outcome_words=OUTCOME_WORDS,
        outcome_links={o: list_url(outcome=o, since=first) for o in DAY_OUTCOMES},
        all_link=list_url(since=first),
        refusals=_bars(
            refusals,
            {r.key: problem_label(r.key) for r in refusals},
            {r.key: _refusals_url(r.key, first) for r in refusals},
        ),
        refused_total=sum(r.count for r in refusals),
        partners=_bars(
            partners,
            {},
            {r.key: list_url(partner=r.key, since=first) for r in partners},
        ),
        pending=sorted(pending, key=lambda r: r.received_at),
        queue=queue,
        overdue=[item for item in queue if item.overdue(now)],
        witness=await witness_view(request, now),
        expiring=expiring,
    )


def add_overview_page(sub: web.Application) -> None:
    """Mount the overview at the review site's root (/review/)."""
    sub.router.add_get("/", overview, name="overview")
