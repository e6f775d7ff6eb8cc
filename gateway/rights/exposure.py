"""Breach scope: what one partner received in a time window, and who among a customer list.

"A partner reports a breach: which of our customers, which fields, since when." The log
already knows, disclosure by disclosure; the store counts it in SQL
(:mod:`gateway.store.exposure_sql` says which disclosures count: those sent, and —
flagged — those the partner *may* have received). This module is the flow both the API
(``GET /v1/partners/{id}/exposure``) and the CLI (``gateway exposure``, ``gateway
subjects resolve``) call.

Subjects appear only as their keyed references. A reference is keyed per calendar month
(:mod:`gateway.crypto.subject_keys`), so ``subjects`` counts distinct references: a
customer disclosed in two months of the window counts twice. :func:`resolve` turns the
company's own customer list into references for every month of the window and keeps
those in the exposure; the list is never stored, and a month whose key was forgotten
(``gateway log forget-before``) cannot be resolved at all — it is reported, not guessed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Protocol

from gateway import vocabulary as v
from gateway.crypto.subject_keys import ForgottenPeriod, LogKeys, Period
from gateway.errors import InvalidRequestError, NotFoundError
from gateway.store.exposure_sql import ExposureCount, ExposureTotals, SubjectRefCount
from gateway.subject_id import GRAMMAR, is_subject_id

__all__ = [
    "DEFAULT_PAGE",
    "GRAMMAR",
    "MAX_PAGE",
    "CustomerIds",
    "Exposure",
    "ExposureReader",
    "Resolved",
    "Window",
    "all_subject_refs",
    "iter_rows",
    "parse_window",
    "read_customer_ids",
    "read_exposure",
    "require_known_partner",
    "resolve",
]

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
WINDOW_FORMAT: Final = (
    "a date YYYY-MM-DD (since: from its start; until: through its end) or an RFC 3339 time "
    "with a time zone, e.g. 2026-03-01T00:00:00Z (until: exclusive)"
)


class ExposureReader(Protocol):
    async def partner_exposure(
        self, partner: str, since: datetime, until: datetime
    ) -> tuple[ExposureTotals, list[ExposureCount], list[ExposureCount]]: ...

    async def exposure_subject_refs(
        self, partner: str, since: datetime, until: datetime, after: str, limit: int
    ) -> list[SubjectRefCount]: ...


@dataclass(frozen=True)
class Window:
    """``since <= time < until``, both aware UTC times."""

    since: datetime
    until: datetime

    def months(self) -> list[Period]:
        """Every calendar month the window touches."""
        period, last = Period.of(self.since), Period.of(self.until - timedelta(microseconds=1))
        found = []
        while period <= last:
            found.append(period)
            period = period.next()
        return found

    def __str__(self) -> str:
        return f"{_iso(self.since)}/{_iso(self.until)}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(text: str | None, name: str, *, end: bool) -> datetime:
    if not text:
        raise InvalidRequestError(f"'{name}' is required: {WINDOW_FORMAT}")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            at = datetime.combine(day, time(), tzinfo=UTC)
            return at + timedelta(days=1) if end else at
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequestError(f"'{name}' must be {WINDOW_FORMAT}")
    return moment.astimezone(UTC)


def parse_window(since: str | None, until: str | None) -> Window:
    """The window `since`..`until` names; InvalidRequestError (saying the format) if not."""
    window = Window(_moment(since, "since", end=False), _moment(until, "until", end=True))
    if window.since >= window.until:
        raise InvalidRequestError("'since' must be before 'until'")
    return window


def _count_json(count: ExposureCount, **extra: Any) -> dict[str, Any]:
    return {
        "disclosures": count.disclosures,
        "maybe_received": count.maybe_disclosures,
        "subjects": count.subjects,
        **extra,
    }


@dataclass(frozen=True)
class Exposure:
    """One partner's exposure in a window, with one page of its subject references."""

    partner: str
    window: Window
    totals: ExposureTotals
    fields: list[ExposureCount]
    categories: list[ExposureCount]
    refs: list[SubjectRefCount]
    next_cursor: str | None

    @property
    def special_fields(self) -> list[str]:
        return [f.name for f in self.fields if _category(f.name) == "special"]

    def as_json(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "since": _iso(self.window.since),
            "until": _iso(self.window.until),
            "disclosures": self.totals.disclosures,
            "maybe_received": self.totals.maybe_disclosures,
            "subjects": self.totals.subjects,
            "special_category": bool(self.special_fields),
            "fields": {
                f.name: _count_json(
                    f, category=_category(f.name), special_category=_category(f.name) == "special"
                )
                for f in self.fields
            },
            "categories": {
                c.name: _count_json(c, special_category=c.name == "special")
                for c in self.categories
            },
            "subject_refs": [
                {"subject_ref": r.subject_ref, "disclosures": r.disclosures, "sent": r.sent}
                for r in self.refs
            ],
            "next_cursor": self.next_cursor,
        }

    def counts(self) -> dict[str, int]:
        """What an action entry may keep of this read: numbers only."""
        return {"disclosures": self.totals.disclosures, "subjects": self.totals.subjects}


def _category(name: str) -> str:
    return v.CATEGORY_OF_FIELD.get(name.partition(".")[0], "unknown")


async def read_exposure(
    store: ExposureReader,
    partner: str,
    window: Window,
    *,
    cursor: str = "",
    limit: int = DEFAULT_PAGE,
) -> Exposure:
    """The exposure of `partner` in `window`, with the references after `cursor`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"'limit' must be a whole number from 1 to {MAX_PAGE}")
    totals, fields, categories = await store.partner_exposure(partner, window.since, window.until)
    refs = await store.exposure_subject_refs(partner, window.since, window.until, cursor, limit + 1)
    more = len(refs) > limit
    refs = refs[:limit]
    return Exposure(
        partner, window, totals, fields, categories, refs, refs[-1].subject_ref if more else None
    )


def require_known_partner(partner: str, known: Container[str], disclosures: int) -> None:
    """Refuse a partner neither in the partner files nor in the window's log: a mistyped id
    would otherwise read as "nobody exposed", and nobody would be told. A partner removed
    from the files since still has its exposure."""
    if partner not in known and disclosures == 0:
        raise NotFoundError(
            f"no partner {partner!r} in the partner files, and no disclosure to it in the "
            "window; check the id (`gateway partners list`)"
        )


async def all_subject_refs(store: ExposureReader, partner: str, window: Window) -> set[str]:
    """Every subject reference of the exposure (paged through the store)."""
    found: set[str] = set()
    after = ""
    while page := await store.exposure_subject_refs(
        partner, window.since, window.until, after, MAX_PAGE
    ):
        found.update(r.subject_ref for r in page)
        after = page[-1].subject_ref
    return found


# -- subjects resolve -----------------------------------------------------------------------


@dataclass
class CustomerIds:
    """The ids of a customer file, with the numbers of the lines that held none."""

    ids: list[str] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    header_skipped: bool = False


def read_customer_ids(text: str) -> CustomerIds:
    """Customer ids, one a line or in the first column of a CSV file.

    Empty lines are skipped. The first non-empty line is taken as a header, and skipped,
    when its first cell is not a subject id or holds no digit (``customer_id``, ``id``,
    ``"Customer ID"``: a customer id without any digit cannot be on the first line); any
    later line whose first cell is not a subject id is a bad line (its number is kept,
    never its value). Surrounding spaces of a cell are ignored.
    """
    result = CustomerIds()
    first = True
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cell = row[0].strip() if row else ""
        if not cell and all(not c.strip() for c in row):
            continue
        if first and not (is_subject_id(cell) and any(c.isdigit() for c in cell)):
            result.header_skipped = True
        elif is_subject_id(cell):
            result.ids.append(cell)
        else:
            result.bad_lines.append(number)
        first = False
    return result


@dataclass
class Resolved:
    """The customers of a list found in an exposure, and the months that could not be
    searched (their key was forgotten)."""

    found: list[tuple[str, str]]  # (customer id, subject reference), in the list's order
    forgotten: list[Period]
    searched: int

    @property
    def customers_found(self) -> int:
        return len({customer for customer, _ in self.found})

    def counts(self) -> dict[str, int]:
        return {
            "ids_read": self.searched,
            "found": self.customers_found,
            "references": len(self.found),
            "forgotten_months": len(self.forgotten),
        }


def resolve(ids: Iterable[str], keys: LogKeys, window: Window, exposed: set[str]) -> Resolved:
    """Each id whose reference of some month of `window` is in `exposed`, with that
    reference (one line per id and reference: a customer disclosed in two months has two)."""
    months = window.months()
    usable: list[Period] = []
    forgotten: list[Period] = []
    for month in months:
        try:
            keys.key_for(month)
            usable.append(month)
        except ForgottenPeriod:
            forgotten.append(month)
    found: list[tuple[str, str]] = []
    searched = 0
    seen: set[str] = set()
    for customer in ids:
        if customer in seen:
            continue
        seen.add(customer)
        searched += 1
        for month in usable:
            ref = keys.subject_ref(customer, month.start)
            if ref in exposed:
                found.append((customer, ref))
    return Resolved(found, forgotten, searched)


def iter_rows(resolved: Resolved) -> Iterator[Mapping[str, str]]:
    for customer, ref in resolved.found:
        yield {"customer_id": customer, "subject_ref": ref}
