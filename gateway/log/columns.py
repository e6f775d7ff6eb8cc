"""The log's search columns: derived from an entry's bytes only, and checked against them.

The store keeps a few of each entry's values (kind, disclosure id, subject reference,
partner, time, purpose, legal basis, outcome, an intent's consent id) in a projection of
the log, written after the entry's commit (``gateway.store.projection``, which derives
them: :func:`columns_of`), so that searches and reports are index lookups. Those copies
are not covered by the Merkle tree: whoever can edit the database could change a subject
reference and a subject's report would no longer find the disclosure, while every leaf hash still
matched. So the columns are only ever written as :func:`columns_of` the entry, and they
are trusted only where they agree with the bytes:

- ``gateway log verify`` (:mod:`gateway.log.audit`) recomputes every projected row's
  columns and names the entry and the column that differ (:func:`disagreeing`), and the
  entries the projection lacks below its high-water mark or holds above it;
- searches (:func:`checked_search`, :func:`checked_disclosure`,
  :func:`checked_consent_intents`) check each row they are
  given against the query they asked (the same ``LogQuery`` value the store answered),
  by its bytes: a row whose columns lie is a refusal (:class:`SearchIndexDamaged`),
  never a line of a report.

This is the one place that comparison is written; both stores only copy the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import orjson

from gateway.errors import LogUnavailableError
from gateway.log.record import EntryRecord
from gateway.store.projection import KINDS, columns_of, columns_of_bytes, consent_of
from gateway.store.records import LogColumns, LogEntry, LogQuery, NotAnEntry, StoredLogRow

__all__ = [
    "ABOVE_MARK",
    "COLUMNS",
    "KINDS",
    "OUTCOMES",
    "UNPROJECTED",
    "ConsentIntentsStore",
    "DisclosuresStore",
    "NotAnEntry",
    "RowFilter",
    "SearchIndexDamaged",
    "SearchStore",
    "check_rows",
    "checked_consent_intents",
    "checked_disclosure",
    "checked_disclosures",
    "checked_search",
    "columns_of",
    "columns_of_bytes",
    "disagreeing",
    "disagreeing_rows",
]

OUTCOMES: Final = ("sent", "failed", "unknown")
COLUMNS: Final = LogColumns._fields
# What `disagreeing_rows` says of an entry the projection should hold and does not, and of
# a projected row above the projection's mark.
UNPROJECTED: Final = ("(no projected row)",)
ABOVE_MARK: Final = ("(projected above the mark)",)


class SearchIndexDamaged(LogUnavailableError):
    """A row the store found by its columns says otherwise in its bytes: the search
    index was altered, and an answer built on it could hide or misattribute
    disclosures. 503: nothing is wrong with the request; the operator must repair."""

    def __init__(self, index: int, column: str) -> None:
        super().__init__(
            f"log entry {index}: its search column '{column}' does not match the entry's "
            "bytes, so the log's search index cannot be trusted and no answer is given "
            "from it; run `gateway log verify` and restore the database",
        )
        self.index = index
        self.column = column


def disagreeing(stored: LogColumns, data: bytes) -> tuple[str, ...]:
    """The columns of `stored` that differ from those derived from `data`, in column order.

    Every column when `data` is not a log entry at all (nothing in the row can be trusted).
    """
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        return COLUMNS
    if not isinstance(entry, dict):
        return COLUMNS
    if _agrees(stored, entry, data):
        return ()
    try:
        derived = columns_of(entry)
    except NotAnEntry:
        return COLUMNS
    return tuple(
        name for name, kept, wanted in zip(COLUMNS, stored, derived, strict=True) if kept != wanted
    )


def disagreeing_rows(rows: Sequence[StoredLogRow]) -> list[tuple[int, tuple[str, ...]]]:
    """``(index, disagreeing(columns, entry))`` of each stored row with a column that differs
    (every row passes through here in `log verify`: the usual row costs one parse and one
    comparison), :data:`UNPROJECTED` for an entry below the projection's mark that has no
    projected row, :data:`ABOVE_MARK` for a projected row at or above the mark (the
    projector writes its rows and moves the mark in one transaction: neither happens)."""
    loads, agrees, decode_error = orjson.loads, _agrees, orjson.JSONDecodeError
    found: list[tuple[int, tuple[str, ...]]] = []
    for index, data, _, stored, below_mark in rows:
        if stored is None:
            # Above the mark: not projected yet (the lag). Below it, only an entry whose
            # bytes are no entry is passed over by the projector.
            if below_mark:
                found.append((index, _unprojected(data)))
            continue
        if not below_mark:
            found.append((index, ABOVE_MARK))
        try:
            entry = loads(data)
        except decode_error:
            found.append((index, COLUMNS))
            continue
        if entry.__class__ is not dict or not agrees(stored, entry, data):
            wrong = disagreeing(stored, data)
            if wrong:
                found.append((index, wrong))
    return found


def _unprojected(data: bytes) -> tuple[str, ...]:
    try:
        columns_of_bytes(data)
    except NotAnEntry:
        return COLUMNS
    return UNPROJECTED


def _agrees(stored: LogColumns, entry: dict[str, Any], data: bytes) -> bool:
    """`columns_of(entry) == stored` for the usual entry, cheaply: verify asks it of every
    row. False sends the row to the full comparison, and is never wrongly True: with no
    U+0000 in the bytes, each test is the one `columns_of` makes of a string value (a
    value of another type never equals a stored string)."""
    kind, disclosure_id, subject_ref, partner, at, purpose, legal_basis, outcome, consent = stored
    get = entry.get
    try:
        return (
            get("kind") == kind
            and kind in KINDS
            and get("disclosure_id") == disclosure_id
            and get("subject_ref") == subject_ref
            and get("partner") == partner
            and get("purpose") == purpose
            and get("legal_basis") == legal_basis
            and outcome == (get("outcome") if kind == "outcome" else _OUTCOME_OF.get(kind, ""))
            and consent == consent_of(kind, get("consent_id"))
            and datetime.fromisoformat(entry["time"]) == at
            and at.tzinfo is not None
            and b"\\u0000" not in data
        )
    except (KeyError, TypeError, ValueError):  # no time, or not one
        return False


# The outcome column of the kinds other than `outcome`.
_OUTCOME_OF: Final[dict[str, str | None]] = {
    "intent": None,
    "refused": "refused",
    "action": None,
}


# -- searches that trust no column they did not check ----------------------------------


class SearchStore(Protocol):
    """What a search reads: the store's log search and a disclosure's entries."""

    async def log_search(self, query: LogQuery) -> list[LogEntry]: ...

    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]: ...


class DisclosuresStore(SearchStore, Protocol):
    """A search store that also reads the entries of many disclosures at once."""

    async def log_entries_for_disclosures(
        self, disclosure_ids: Sequence[str]
    ) -> list[LogEntry]: ...


class RowFilter(Protocol):
    """What a row was found by: names the first column a row's values do not satisfy."""

    def first_mismatch(self, columns: LogColumns) -> str | None: ...


@dataclass(frozen=True)
class _OfDisclosure:
    """The rows of one disclosure (what `log_entries_for_disclosure` finds by)."""

    disclosure_id: str

    def first_mismatch(self, columns: LogColumns) -> str | None:
        return None if columns.disclosure_id == self.disclosure_id else "disclosure_id"


def check_rows(rows: Sequence[LogEntry], found_by: RowFilter) -> list[EntryRecord]:
    """The records of `rows` if each one's bytes satisfy what it was found by;
    SearchIndexDamaged naming the first row and column that do not. Each row is parsed
    here once, and its readers read the record."""
    records = []
    for index, data in rows:
        try:
            record = EntryRecord.parse(index, data)
            derived = columns_of(record.data)
        except NotAnEntry:
            raise SearchIndexDamaged(index, "kind") from None
        column = found_by.first_mismatch(derived)
        if column is not None:
            raise SearchIndexDamaged(index, column)
        records.append(record)
    return records


async def checked_search(store: SearchStore, query: LogQuery) -> list[EntryRecord]:
    """``store.log_search(query)``, every row checked against `query` by its bytes (see
    the module docstring)."""
    return check_rows(await store.log_search(query), query)


@dataclass(frozen=True)
class _OfDisclosures:
    """The rows of several disclosures (what `log_entries_for_disclosures` finds by)."""

    disclosure_ids: frozenset[str]

    def first_mismatch(self, columns: LogColumns) -> str | None:
        return None if columns.disclosure_id in self.disclosure_ids else "disclosure_id"


async def checked_disclosures(
    store: DisclosuresStore, disclosure_ids: Sequence[str]
) -> dict[str, list[EntryRecord]]:
    """``store.log_entries_for_disclosures``, every row checked to be of one of them; the
    rows of each disclosure (in index order) by its id."""
    rows = await store.log_entries_for_disclosures(disclosure_ids)
    by_id: dict[str, list[EntryRecord]] = {d: [] for d in disclosure_ids}
    for record in check_rows(rows, _OfDisclosures(frozenset(disclosure_ids))):
        by_id[record.disclosure_id].append(record)
    return by_id


async def checked_disclosure(store: SearchStore, disclosure_id: str) -> list[EntryRecord]:
    """``store.log_entries_for_disclosure``, every row checked to be of that disclosure."""
    rows = await store.log_entries_for_disclosure(disclosure_id)
    return check_rows(rows, _OfDisclosure(disclosure_id))


class ConsentIntentsStore(Protocol):
    """What a withdrawal's recipients are read from: one consent's intents (schema 16)."""

    async def consent_intents(
        self, consent_id: str, since: datetime, after_index: int, limit: int
    ) -> list[LogEntry]: ...


@dataclass(frozen=True)
class _UnderConsent:
    """The consent-based intents under one consent since a time (what `consent_intents`
    finds by)."""

    consent_id: str
    since: datetime

    def first_mismatch(self, columns: LogColumns) -> str | None:
        for name, value, wanted in (
            ("consent_id", columns.consent_id, self.consent_id),
            ("kind", columns.kind, "intent"),
            ("legal_basis", columns.legal_basis, "consent"),
        ):
            if value != wanted:
                return name
        return "time" if columns.time < self.since else None


async def checked_consent_intents(
    store: ConsentIntentsStore, consent_id: str, since: datetime, after_index: int, limit: int
) -> list[EntryRecord]:
    """``store.consent_intents``, every row checked to be an intent on basis ``consent``
    under `consent_id` since `since`: a row whose consent_id column lies is a refusal
    (SearchIndexDamaged), never a partner told or left out."""
    rows = await store.consent_intents(consent_id, since, after_index, limit)
    return check_rows(rows, _UnderConsent(consent_id, since))
