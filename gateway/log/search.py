"""Finding disclosures in the log, and exporting it (``gateway log search`` / ``export``).

A search answers with *disclosures*: the first entry of each (``intent`` or ``refused``)
and its outcome entries. The subject is never looked up as such: the caller passes the
subject's references (one per period still linkable, ``LogKeys.subject_refs``), so a
subject whose periods were forgotten is simply not found.

Filters on the first entry (subject, partner, purpose, legal basis, time) are answered
by the store's indexes. ``outcome`` (sent, failed, unknown, refused) is answered from
the outcome entries when nothing narrower is given — e.g. the disclosures crash
recovery marked ``unknown`` — and by reading the candidates' outcomes otherwise, those
of up to ``OUTCOME_BATCH`` hits in one read.
Every row an index returns is checked against the filters by its own bytes
(``gateway.log.columns``): an altered index is a refusal, never a wrong answer.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Protocol

from gateway.crypto.subject_keys import LogKeys
from gateway.log.columns import (
    DisclosuresStore,
    NotAnEntry,
    SearchIndexDamaged,
    SearchStore,
    checked_disclosure,
    checked_disclosures,
    checked_search,
    columns_of_bytes,
)
from gateway.log.record import ENTRY_MEMBERS, EntryRecord
from gateway.store.records import MAX_SEARCH_LIMIT, LogEntry, LogQuery, LogRecord

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
# Hits whose outcomes are read together (one read of the store): a caller that wants the
# first 50 disclosures waits for one such read, not one per hit.
OUTCOME_BATCH: Final = 50
# Rows of the first page: a caller that wants the first screen of disclosures waits for
# the entries of about that many rows, not of a thousand; the next pages are whole.
FIRST_PAGE: Final = 100

# Every member an entry may have, then "extra" for anything else.
CSV_COLUMNS: Final = ("index", *ENTRY_MEMBERS, "extra")
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
    """One disclosure: its first entry and its outcome entries."""

    entry: EntryRecord
    outcomes: tuple[EntryRecord, ...] = ()

    @property
    def index(self) -> int:
        return self.entry.index

    @property
    def outcome(self) -> str:
        """refused, the latest outcome's value, or pending (no outcome entry yet)."""
        if self.entry.kind == "refused":
            return "refused"
        if not self.outcomes:
            return "pending"
        return str(self.outcomes[-1].outcome)

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "outcome": self.outcome,
            "entry": self.entry.data,
            "outcome_entries": [{"index": e.index, "entry": e.data} for e in self.outcomes],
        }


def _matches(entry: EntryRecord, query: Query) -> bool:
    if entry.kind not in ("intent", "refused"):
        return False
    for value, wanted in (
        (entry.partner, query.partner),
        (entry.purpose, query.purpose),
        (entry.legal_basis, query.legal_basis),
    ):
        if wanted is not None and value != wanted:
            return False
    if query.subject_refs is not None and entry.subject_ref not in query.subject_refs:
        return False
    at = entry.at
    return (query.since is None or at >= query.since) and (query.until is None or at < query.until)


async def _disclosure(
    store: SearchStore, disclosure_id: str, found_at: int
) -> tuple[EntryRecord, tuple[EntryRecord, ...]]:
    """The first entry of a disclosure and its others; `found_at` is the index of the
    entry that named it, which the disclosure's own lookup must return too."""
    rows = await checked_disclosure(store, disclosure_id)
    if all(row.index != found_at for row in rows):
        raise SearchIndexDamaged(found_at, "disclosure_id")
    first = next((row for row in rows if row.kind != "outcome"), rows[0])
    return first, tuple(row for row in rows if row is not first)


async def search(
    store: DisclosuresStore, query: Query, *, page: int = MAX_SEARCH_LIMIT
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
        limit=min(page, FIRST_PAGE),
    )
    while rows := await checked_search(store, page_query):
        for start in range(0, len(rows), OUTCOME_BATCH):
            hits = rows[start : start + OUTCOME_BATCH]
            others = await _others_of(store, [e for e in hits if e.kind == "intent"])
            for entry in hits:
                found = Found(entry, others.get(entry.index, ()))
                if query.outcome is None or found.outcome == query.outcome:
                    yield found
        page_query = replace(page_query.after(rows[-1].index), limit=page)


async def _others_of(
    store: DisclosuresStore, intents: Sequence[EntryRecord]
) -> dict[int, tuple[EntryRecord, ...]]:
    """The entries other than the intent (its outcomes) of each of `intents`, by the
    intent's index: one read for them all. Each intent must be among its disclosure's own
    entries, as `_disclosure` requires."""
    if not intents:
        return {}
    by_id = await checked_disclosures(store, list(dict.fromkeys(e.disclosure_id for e in intents)))
    others: dict[int, tuple[EntryRecord, ...]] = {}
    for intent in intents:
        rows = by_id[intent.disclosure_id]
        if all(row.index != intent.index for row in rows):
            raise SearchIndexDamaged(intent.index, "disclosure_id")
        first = next((row for row in rows if row.kind != "outcome"), rows[0])
        others[intent.index] = tuple(row for row in rows if row is not first)
    return others


async def _by_outcome(store: SearchStore, query: Query, page: int) -> AsyncIterator[Found]:
    seen: set[str] = set()
    page_query = LogQuery(kind="outcome", outcome=query.outcome, partner=query.partner, limit=page)
    while rows := await checked_search(store, page_query):
        for row in rows:
            disclosure_id = row.disclosure_id
            if disclosure_id in seen:
                continue
            seen.add(disclosure_id)
            found = Found(*await _disclosure(store, disclosure_id, row.index))
            if _matches(found.entry, query) and found.outcome == query.outcome:
                yield found
        page_query = page_query.after(rows[-1].index)


async def export_entries(
    store: ExportStore, *, chunk: int = EXPORT_CHUNK, end: int | None = None
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Every entry in index order, parsed (those before index `end`, if given)."""
    start = 0
    while rows := await store.read_log_records(start, chunk):
        for index, raw, _ in rows:
            if end is not None and index >= end:
                return
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
