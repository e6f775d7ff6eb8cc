"""The disclosure list behind the review page and its CSV export: filters, rows, keyset pages.

Filters the store answers — subject references, partner, purpose, legal basis, kind
(refused or not), time range — go to `Store.log_search`, which pages by index
(newest first: ``idx < after_index ORDER BY idx DESC LIMIT n``): no OFFSET, so page
10 000 costs what page 1 costs. The list and its CSV come newest first, as a reviewer
reads them (``oldest=1`` in the query for the log's own order). Two filters are applied
to the rows read instead: the partner *category* (not a column of the log's index) and
an outcome other than ``refused`` (it lives in a later
``outcome`` entry of the disclosure, looked up by disclosure id). With those, one page
reads at most ``SCAN_BUDGET`` entries: it may then hold fewer rows than asked, and its
"next" link continues after the last entry read.

A row is one disclosure decision: an ``intent`` (with its outcome, read from the
disclosure's ``outcome`` entry) or a ``refused`` entry. The log holds no personal
values, so nothing here can show one; the subject is searched by its references only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from gateway import vocabulary as v
from gateway.errors import GatewayError, InvalidRequestError
from gateway.log.columns import checked_disclosure, checked_search
from gateway.log.record import EntryRecord
from gateway.problem_catalog import CATALOGUE
from gateway.store.ports import LogRowStore
from gateway.store.records import MAX_SEARCH_LIMIT, LogQuery

__all__ = [
    "CSV_COLUMNS",
    "OUTCOME_CHOICES",
    "PAGE_SIZE",
    "SCAN_BUDGET",
    "Filters",
    "Page",
    "Row",
    "csv_cell",
    "csv_lines",
    "matching_rows",
    "search_page",
    "total_rows",
]

PAGE_SIZE: Final = 50
SCAN_BUDGET: Final = 2000
"""Most log entries one page reads when filters apply to rows (bounds each request)."""
BATCH: Final = 200
EXPORT_BATCH: Final = MAX_SEARCH_LIMIT
MAX_INDEX: Final = 2**63 - 1

OUTCOME_CHOICES: Final = ("sent", "failed", "unknown", "pending", "refused")
"""`pending`: an intent without an outcome yet; `refused`: a decision that refused."""

_PARTNER = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def parse_after(value: str | None) -> int | None:
    """The `after` query parameter of a paged list: the log index to continue after, or
    None (from the newest) when absent."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or int(value) > MAX_INDEX:
        raise InvalidRequestError("'after' must be a log index (a whole number)")
    return int(value)


def _bad(detail: str) -> GatewayError:
    return InvalidRequestError(detail)


def _choice(value: str | None, choices: Sequence[str], name: str) -> str | None:
    if not value:
        return None
    if value not in choices:
        raise _bad(f"{name} must be one of: {', '.join(choices)}")
    return value


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(f"{name} must be a date as YYYY-MM-DD") from None


@dataclass(frozen=True)
class Filters:
    """What a reviewer asked for. The subject travels only sealed (see `session.Sealer`)
    and is searched by its log references."""

    subject_token: str | None = None  # the sealed subject id, for links
    refs: tuple[str, ...] | None = None  # None: no subject filter
    partner: str | None = None
    category: str | None = None
    purpose: str | None = None
    basis: str | None = None
    outcome: str | None = None
    problem: str | None = None  # a problem code: of the refusal, or of a failed sending
    since: date | None = None  # inclusive, UTC
    until: date | None = None  # inclusive, UTC
    oldest_first: bool = False  # the log's order; newest first by default

    @classmethod
    def parse(
        cls,
        get: Callable[[str], str | None],
        *,
        subject_token: str | None = None,
        refs: Sequence[str] | None = None,
    ) -> Filters:
        """Filters from form or query values; invalid_request names the bad one."""
        partner = (get("partner") or "").strip() or None
        if partner is not None and not _PARTNER.match(partner):
            raise _bad("partner must be a partner id (letters, digits, '.', '_', '-')")
        since, until = _date(get("since"), "from"), _date(get("until"), "to")
        if since and until and since > until:
            raise _bad("the 'from' date is after the 'to' date")
        return cls(
            subject_token=subject_token,
            refs=None if refs is None else tuple(refs),
            partner=partner,
            category=_choice(get("category"), v.PARTNER_CATEGORIES, "category"),
            purpose=_choice(get("purpose"), v.PURPOSES, "purpose"),
            basis=_choice(get("basis"), v.LEGAL_BASES, "basis"),
            outcome=_choice(get("outcome"), OUTCOME_CHOICES, "outcome"),
            problem=_choice(get("problem"), tuple(CATALOGUE), "problem"),
            since=since,
            until=until,
            oldest_first=(get("oldest") or "") == "1",
        )

    def query(self) -> list[tuple[str, str]]:
        """The filters as query parameters, for links (the subject only sealed)."""
        pairs = [] if self.subject_token is None else [("s", self.subject_token)]
        for name in (
            "partner",
            "category",
            "purpose",
            "basis",
            "outcome",
            "problem",
            "since",
            "until",
        ):
            value = getattr(self, name)
            if value is not None:
                pairs.append((name, value.isoformat() if isinstance(value, date) else value))
        if self.oldest_first:
            pairs.append(("oldest", "1"))
        return pairs

    @property
    def row_filtered(self) -> bool:
        """True when some filter is applied to rows rather than by the store."""
        return (
            self.category is not None
            or self.problem is not None
            or self.outcome not in (None, "refused")
        )

    @property
    def kinds(self) -> list[str]:
        if self.outcome == "refused":
            return ["refused"]
        return ["intent"] if self.outcome else ["intent", "refused"]

    def window(self) -> tuple[datetime | None, datetime | None]:
        since = datetime.combine(self.since, time(), UTC) if self.since else None
        until = (
            datetime.combine(self.until + timedelta(days=1), time(), UTC) if self.until else None
        )
        return since, until

    def log_query(self, after: int | None, limit: int) -> LogQuery:
        """The store's part of these filters, for the page after index `after`."""
        since, until = self.window()
        return LogQuery(
            subject_refs=self.refs,
            partner=self.partner,
            kinds=self.kinds,
            purpose=self.purpose,
            legal_basis=self.basis,
            since=since,
            until=until,
            after_index=after,
            limit=limit,
            newest_first=not self.oldest_first,
        )


@dataclass(frozen=True)
class Row:
    """One disclosure decision as the list shows it."""

    index: int
    kind: str
    time: datetime
    disclosure_id: str
    caller: str
    partner: str
    partner_category: str | None
    operation: str
    purpose: str
    legal_basis: str
    policy_version: str
    fields: Mapping[str, str] = field(default_factory=dict)
    withheld: tuple[str, ...] = ()
    needs_review: bool = False
    consent_id: str | None = None
    legal_request_id: str | None = None
    retention_days: int | None = None
    problem: str | None = None
    outcome: str | None = None  # sent | failed | unknown | refused | None (pending)
    partner_status: int | None = None

    @classmethod
    def of(cls, entry: EntryRecord) -> Row:
        return cls(
            index=entry.index,
            kind=str(entry.kind),
            time=entry.at,
            disclosure_id=entry.disclosure_id,
            # str(): a refusal before the request was read has no purpose or basis (None).
            caller=str(entry.caller),
            # None in a refusal of a partner or operation that does not exist (the
            # caller's made-up id is not logged).
            partner=entry.partner or "",
            partner_category=entry.partner_category,
            operation=entry.operation or "",
            purpose=str(entry.purpose),
            legal_basis=str(entry.legal_basis),
            policy_version=str(entry.policy_version),
            fields=entry.fields,
            withheld=entry.withheld,
            needs_review=entry.needs_review,
            consent_id=entry.consent_id,
            legal_request_id=entry.legal_request_id,
            retention_days=entry.retention_days,
            problem=entry.problem,
            outcome="refused" if entry.kind == "refused" else None,
        )

    def with_outcome(self, outcome: EntryRecord | None) -> Row:
        if outcome is None or self.kind != "intent":
            return self
        return replace(
            self,
            outcome=str(outcome.outcome),
            partner_status=outcome.partner_status,
            problem=outcome.problem,
        )

    @property
    def outcome_label(self) -> str:
        if self.kind == "refused":
            return f"refused: {self.problem}" if self.problem else "refused"
        if self.outcome is None:
            return "pending"
        if self.outcome == "sent" and self.partner_status is not None:
            return f"sent ({self.partner_status})"
        return f"{self.outcome}: {self.problem}" if self.problem else self.outcome

    @property
    def fields_text(self) -> str:
        return "; ".join(f"{name}:{how}" for name, how in sorted(self.fields.items()))


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_after: int | None  # the `after` of the next page, None at the end
    scanned: int


async def _entries(
    store: LogRowStore, filters: Filters, after: int | None, batch: int
) -> AsyncGenerator[EntryRecord, None]:
    """Entries passing the store's filters, in index order, paged by index."""
    query = filters.log_query(after, batch)
    while True:
        found = await checked_search(store, query)
        for item in found:
            yield item
        if len(found) < batch:
            return
        query = query.after(found[-1].index)


async def _outcome(store: LogRowStore, disclosure_id: str) -> EntryRecord | None:
    # One indexed lookup per intent (by disclosure id); a bulk lookup in the store
    # would serve an export of millions of rows better.
    entries = await checked_disclosure(store, disclosure_id)
    last = [e for e in entries if e.kind == "outcome"]
    return last[-1] if last else None


async def _rows(
    store: LogRowStore, filters: Filters, after: int | None, batch: int
) -> AsyncGenerator[tuple[int, Row | None], None]:
    """(index, row or None) for every entry read: None when the entry is no match."""
    async with aclosing(_entries(store, filters, after, batch)) as entries:
        async for entry in entries:
            index = entry.index
            if entry.kind not in ("intent", "refused"):
                yield index, None
                continue
            row = Row.of(entry)
            if filters.category is not None and row.partner_category != filters.category:
                yield index, None
                continue
            if row.kind == "intent":
                row = row.with_outcome(await _outcome(store, row.disclosure_id))
            wanted = filters.outcome
            if wanted is not None and (row.outcome or "pending") != wanted:
                yield index, None
                continue
            if filters.problem is not None and row.problem != filters.problem:
                yield index, None
                continue
            yield index, row


async def search_page(
    store: LogRowStore,
    filters: Filters,
    *,
    after: int | None,
    size: int = PAGE_SIZE,
    budget: int = SCAN_BUDGET,
) -> Page:
    """One page of rows after index `after`, reading at most `budget` entries."""
    rows: list[Row] = []
    scanned = 0
    last: int | None = None
    exhausted = True
    async with aclosing(_rows(store, filters, after, min(BATCH, budget))) as found:
        async for index, row in found:
            scanned += 1
            last = index
            if row is not None:
                rows.append(row)
            if len(rows) >= size or scanned >= budget:
                exhausted = False
                break
    return Page(rows=rows, next_after=None if exhausted else last, scanned=scanned)


async def total_rows(store: LogRowStore, filters: Filters) -> int | None:
    """How many decisions match, on every page; None when a filter is checked on the rows
    read (category, an outcome other than refused), which only reading them all can count.
    A count of the store's search columns (each row's are checked by `log verify`)."""
    if filters.row_filtered:
        return None
    return await store.log_count(filters.log_query(None, 1))


async def matching_rows(store: LogRowStore, filters: Filters) -> AsyncIterator[Row]:
    """Every matching row, in the list's order (for the export; no budget)."""
    async with aclosing(_rows(store, filters, None, EXPORT_BATCH)) as found:
        async for _, row in found:
            if row is not None:
                yield row


CSV_COLUMNS: Final = (
    "index",
    "time",
    "disclosure_id",
    "decision",
    "outcome",
    "partner_status",
    "problem",
    "caller",
    "partner",
    "partner_category",
    "operation",
    "purpose",
    "legal_basis",
    "fields",
    "withheld",
    "needs_review",
    "consent_id",
    "legal_request_id",
    "policy_version",
    "retention_days",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_values(row: Row) -> list[object]:
    return [
        row.index,
        row.time,
        row.disclosure_id,
        row.kind,
        row.outcome or ("pending" if row.kind == "intent" else ""),
        row.partner_status,
        row.problem,
        row.caller,
        row.partner,
        row.partner_category,
        row.operation,
        row.purpose,
        row.legal_basis,
        row.fields_text,
        ";".join(row.withheld),
        row.needs_review,
        row.consent_id,
        row.legal_request_id,
        row.policy_version,
        row.retention_days,
    ]


def csv_lines(rows: Iterable[Row], *, header: bool) -> str:
    """CSV text (RFC 4180, CRLF) for `rows`, with the header line first if asked."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(value) for value in _csv_values(row)])
    return out.getvalue()
