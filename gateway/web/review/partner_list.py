"""The partners list of the review site as a list (issue #19): which partners are shown,
in which order, on which page, and its CSV — pure, from the partner files, the
suspensions in force and today's date.

Filters live in the URL (``?status=suspended&category=credit_bureau&q=bank&sort=ending
&page=2``), so a filtered list is a link a person can send; the totals of each status are
those of the other filters, as on the lawful-request list. The CSV gives exactly the rows
of the filter shown, every page of it, codes as codes (a file is read by programs too).
Nothing here is personal: partner ids, names, categories, agreements, and the reviewers'
own suspension reasons (typed without personal data, as the form asks).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from gateway.errors import InvalidRequestError
from gateway.partners.model import Partner, Suspension
from gateway.partners.standing import agreement_days_left
from gateway.web.review.listing import csv_cell

__all__ = [
    "CSV_COLUMNS",
    "MAX_QUERY",
    "PAGE_SIZE",
    "SORTS",
    "STATUSES",
    "STATUS_LABELS",
    "PartnerFilter",
    "PartnerRow",
    "csv_text",
    "partner_filter",
    "partner_rows",
    "shown",
    "status_totals",
]

PAGE_SIZE: Final = 25
MAX_PAGE: Final = 100_000
MAX_QUERY: Final = 100
# `ending`: the agreement that ends first first (those without a last day at the end).
SORTS: Final = ("name", "ending")
# `ending`: the agreement is over or ends within the warning days.
STATUSES: Final = ("active", "suspended", "ending")
STATUS_LABELS: Final = {"active": "Active", "suspended": "Suspended", "ending": "Agreement ending"}
CSV_COLUMNS: Final = (
    "id",
    "name",
    "category",
    "jurisdiction",
    "agreement",
    "agreement_last_day",
    "days_left",
    "retention_days",
    "status",
    "suspended_at",
    "suspended_by",
    "suspension_reason",
)


@dataclass(frozen=True)
class PartnerRow:
    partner: Partner
    days_left: int | None  # of the agreement; None: open-ended
    warn: bool  # over, or ends within the warning days
    suspension: Suspension | None

    @property
    def statuses(self) -> frozenset[str]:
        found = {"suspended" if self.suspension else "active"}
        if self.warn:
            found.add("ending")
        return frozenset(found)


@dataclass(frozen=True)
class PartnerFilter:
    status: str | None = None
    category: str | None = None
    text: str = ""  # in the id or the name, case-insensitive
    sort: str = "name"
    page: int = 1

    def keeps(self, row: PartnerRow, *, status: bool = True) -> bool:
        """Whether `row` passes the filter (its status test left out when not `status`)."""
        partner = row.partner
        if status and self.status is not None and self.status not in row.statuses:
            return False
        if self.category is not None and partner.category != self.category:
            return False
        needle = self.text.casefold()
        return not needle or needle in partner.id.casefold() or needle in partner.name.casefold()

    def query(self, **changes: object) -> dict[str, object]:
        """The URL query of this filter with `changes`, defaults left out."""
        values: dict[str, object] = {
            "status": self.status,
            "category": self.category,
            "q": self.text,
            "sort": self.sort,
            "page": self.page,
            **changes,
        }
        defaults = {"sort": "name", "page": 1, "q": ""}
        return {k: v for k, v in values.items() if v is not None and defaults.get(k, None) != v}


def _one_of(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    if not value or value == "all":
        return None
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidRequestError(f"'{name}' must be one of: all, {', '.join(allowed)}")
    return value


def partner_filter(query: Mapping[str, str], categories: Iterable[str]) -> PartnerFilter:
    """The filter of a URL query; InvalidRequestError saying what each value may be."""
    text = query.get("q", "").strip()
    if len(text) > MAX_QUERY:
        raise InvalidRequestError(f"'q' has at most {MAX_QUERY} characters")
    sort = query.get("sort") or "name"
    if sort not in SORTS:
        raise InvalidRequestError(f"'sort' must be one of: {', '.join(SORTS)}")
    page = query.get("page") or "1"
    if not (page.isascii() and page.isdigit()) or not 1 <= int(page) <= MAX_PAGE:
        raise InvalidRequestError("'page' must be a page number (1, 2, …)")
    return PartnerFilter(
        status=_one_of(query.get("status"), STATUSES, "status"),
        category=_one_of(query.get("category"), sorted(set(categories)), "category"),
        text=text,
        sort=sort,
        page=int(page),
    )


def partner_rows(
    partners: Iterable[Partner],
    suspended: Mapping[str, Suspension],
    today: date,
    warn_days: int,
) -> list[PartnerRow]:
    """Every partner as a row, by id."""
    rows = []
    for partner in sorted(partners, key=lambda p: p.id):
        left = agreement_days_left(partner, today)
        warn = left is not None and left <= warn_days
        rows.append(PartnerRow(partner, left, warn, suspended.get(partner.id)))
    return rows


def shown(rows: Sequence[PartnerRow], wanted: PartnerFilter) -> list[PartnerRow]:
    """The rows passing `wanted`, in its order (every page)."""
    kept = [r for r in rows if wanted.keeps(r)]
    if wanted.sort == "ending":
        # Open-ended agreements last; then by id, so the order is the same every time.
        kept.sort(key=lambda r: (r.days_left is None, r.days_left or 0, r.partner.id))
    return kept


def status_totals(rows: Sequence[PartnerRow], wanted: PartnerFilter) -> dict[str, int]:
    """Per status (and ``all``), the rows the other filters keep."""
    others = [r for r in rows if wanted.keeps(r, status=False)]
    totals = {"all": len(others)} | {s: 0 for s in STATUSES}
    for row in others:
        for status in row.statuses:
            totals[status] += 1
    return totals


def csv_text(rows: Sequence[PartnerRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        p, s = row.partner, row.suspension
        writer.writerow(
            [
                *(csv_cell(v) for v in (p.id, p.name, p.category, p.jurisdiction, p.agreement)),
                p.agreement_expires_on.isoformat() if p.agreement_expires_on else "",
                "" if row.days_left is None else str(row.days_left),  # a number: may be < 0
                str(p.retention_days),
                "suspended" if s else "active",
                *(csv_cell(v) for v in ((s.at, s.by, s.reason) if s else (None,) * 3)),
            ]
        )
    return out.getvalue()
