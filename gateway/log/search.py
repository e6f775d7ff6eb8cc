"""Finding disclosures in the log, and exporting it (``gateway log search`` / ``export``).

A search answers with *disclosures*: the first entry of each (``intent`` or ``refused``)
and its outcome entries. The subject is never looked up as such: the caller passes the
subject's references (one per period still linkable, ``LogKeys.subject_refs``), so a
subject whose periods were forgotten is simply not found.

Filters on the first entry (subject, partner, purpose, legal basis, time) are answered
by the store's indexes. ``outcome`` (sent, failed, unknown, refused) is answered from
the outcome entries when nothing narrower is given — e.g. the disclosures crash
recovery marked ``unknown`` — and by reading each candidate's outcome otherwise.
Every row an index returns is checked against the filters by its own bytes
(``gateway.log.columns``): an altered index is a refusal, never a wrong answer.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from gateway.crypto.subject_keys import LogKeys
from gateway.log.columns import (
    NotAnEntry,
    SearchIndexDamaged,
    SearchStore,
    checked_disclosure,
    checked_search,
    columns_of_bytes,
)
from gateway.store.base import MAX_SEARCH_LIMIT, LogEntry, LogQuery, LogRecord

__all__ = [
    "CSV_COLUMNS",
    "OUTCOME_FILTERS",
    "Found",
    "Query",
    "csv_header",
    "csv_row",
    "export_entries",
    "search",
    "subject_refs",
]

OUTCOME_FILTERS: Final = ("sent", "failed", "unknown", "refused")
EXPORT_CHUNK: Final = 5_000

# Every field an entry may have, in a stable order; anything else goes to "extra".
CSV_COLUMNS: Final = (
    "index",
    "time",
    "kind",
    "disclosure_id",
    "caller",
    "instance",
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
    "subject_ref",
    "fields",
    "withheld",
    "withheld_unknown",
    "data_digest",
    "needs_review",
    "retention_days",
    "outcome",
    "partner_status",
    "attempts",
    "problem",
    "maybe_received",
    "reasons",
    "rejected_field_names",
    "v",
    "extra",
)
# A cell starting with one of these is a formula to a spreadsheet program.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class SpanStore(Protocol):
    async def log_time_span(self) -> tuple[datetime, datetime] | None: ...
    async def log_size(self) -> int: ...
    async def read_log(self, start: int, end: int) -> list[LogEntry]: ...


async def subject_refs(
    store: SpanStore,
    keys: LogKeys,
    subject: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """The subject's references for the months the log (and the time range) covers.

    One per month still linkable; months outside the log's first and last entry are
    left out, which keeps the lookup a few index probes rather than one per month
    since the key chain began.
    """
    span = await store.log_time_span()
    if span is None:
        return []
    # The span is read from the time column; the first and last entries' own times widen
    # it, so that an edited column cannot shrink the months searched (verify names it).
    earliest, latest = span
    size = await store.log_size()
    for _, raw in [*await store.read_log(0, 1), *await store.read_log(size - 1, size)]:
        try:
            at = columns_of_bytes(raw).time
        except NotAnEntry:
            continue
        earliest, latest = min(earliest, at), max(latest, at)
    first = earliest if since is None else max(since, earliest)
    last = latest if until is None else min(until, latest)
    if first > last:
        return []
    return keys.subject_refs(subject, since=first, until=last)


class ExportStore(Protocol):
    async def read_log_records(self, start: int, limit: int) -> list[LogRecord]: ...


@dataclass(frozen=True)
class Query:
    """Which disclosures to look for; every filter given must match. (`search` turns it
    into the store's row queries, ``LogQuery``, one per page.)"""

    subject_refs: Sequence[str] | None = None
    partner: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # on the first entry's time, inclusive
    until: datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOME_FILTERS:
            raise ValueError(f"outcome {self.outcome!r} not among {OUTCOME_FILTERS}")


@dataclass(frozen=True)
class Found:
    """One disclosure: its first entry and its outcome entries (with their indexes)."""

    index: int
    entry: dict[str, Any]
    outcomes: tuple[tuple[int, dict[str, Any]], ...] = ()

    @property
    def outcome(self) -> str:
        """refused, the latest outcome's value, or pending (no outcome entry yet)."""
        if self.entry.get("kind") == "refused":
            return "refused"
        if not self.outcomes:
            return "pending"
        return str(self.outcomes[-1][1].get("outcome"))

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "outcome": self.outcome,
            "entry": self.entry,
            "outcome_entries": [{"index": i, "entry": e} for i, e in self.outcomes],
        }


def _time(entry: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry.get("time", "")).replace("Z", "+00:00"))


def _matches(entry: Mapping[str, Any], query: Query) -> bool:
    if entry.get("kind") not in ("intent", "refused"):
        return False
    for name, wanted in (
        ("partner", query.partner),
        ("purpose", query.purpose),
        ("legal_basis", query.legal_basis),
    ):
        if wanted is not None and entry.get(name) != wanted:
            return False
    if query.subject_refs is not None and entry.get("subject_ref") not in query.subject_refs:
        return False
    at = _time(entry)
    return (query.since is None or at >= query.since) and (query.until is None or at < query.until)


async def _disclosure(
    store: SearchStore, disclosure_id: str, found_at: int
) -> tuple[LogEntry, list[LogEntry]]:
    """The first entry of a disclosure and its others; `found_at` is the index of the
    entry that named it, which the disclosure's own lookup must return too."""
    rows = await checked_disclosure(store, disclosure_id)
    if all(index != found_at for index, _ in rows):
        raise SearchIndexDamaged(found_at, "disclosure_id")
    first = next((r for r in rows if json.loads(r[1]).get("kind") != "outcome"), rows[0])
    return first, [r for r in rows if r is not first]


async def search(
    store: SearchStore, query: Query, *, page: int = MAX_SEARCH_LIMIT
) -> AsyncIterator[Found]:
    """The disclosures matching `query`, oldest first (by first entry, or by outcome)."""
    if query.since is not None and query.until is not None and query.since >= query.until:
        return  # an empty time range finds nothing (a LogQuery refuses one as a mistake)
    if query.outcome in ("sent", "failed", "unknown") and query.subject_refs is None:
        async for found in _by_outcome(store, query, page):
            yield found
        return
    kinds = (
        ["intent", "refused"]
        if query.outcome is None
        else ["refused"]
        if query.outcome == "refused"
        else ["intent"]
    )
    page_query = LogQuery(
        subject_refs=query.subject_refs,
        partner=query.partner,
        purpose=query.purpose,
        legal_basis=query.legal_basis,
        kinds=kinds,
        since=query.since,
        until=query.until,
        limit=page,
    )
    while rows := await checked_search(store, page_query):
        for index, raw in rows:
            entry = json.loads(raw)
            outcomes: tuple[tuple[int, dict[str, Any]], ...] = ()
            if entry.get("kind") == "intent":
                _, others = await _disclosure(store, str(entry["disclosure_id"]), index)
                outcomes = tuple((i, json.loads(e)) for i, e in others)
            found = Found(index, entry, outcomes)
            if query.outcome is None or found.outcome == query.outcome:
                yield found
        page_query = page_query.after(rows[-1][0])


async def _by_outcome(store: SearchStore, query: Query, page: int) -> AsyncIterator[Found]:
    seen: set[str] = set()
    page_query = LogQuery(kind="outcome", outcome=query.outcome, partner=query.partner, limit=page)
    while rows := await checked_search(store, page_query):
        for found_at, raw in rows:
            disclosure_id = str(json.loads(raw)["disclosure_id"])
            if disclosure_id in seen:
                continue
            seen.add(disclosure_id)
            (index, first), others = await _disclosure(store, disclosure_id, found_at)
            entry = json.loads(first)
            found = Found(index, entry, tuple((i, json.loads(e)) for i, e in others))
            if _matches(entry, query) and found.outcome == query.outcome:
                yield found
        page_query = page_query.after(rows[-1][0])


async def export_entries(
    store: ExportStore, *, chunk: int = EXPORT_CHUNK
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Every entry in index order, parsed."""
    start = 0
    while rows := await store.read_log_records(start, chunk):
        for index, raw, _ in rows:
            yield index, json.loads(raw)
        start = rows[-1][0] + 1


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_header() -> str:
    return _csv_line(CSV_COLUMNS)


def csv_row(index: int, entry: Mapping[str, Any]) -> str:
    known = set(CSV_COLUMNS)
    extra = {k: v for k, v in entry.items() if k not in known}
    values = {**entry, "index": index, "extra": extra or None}
    return _csv_line([_cell(values.get(column)) for column in CSV_COLUMNS])


def _csv_line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
