"""The log's search columns as a projection of its entries (schema 14, issue #20).

The commit a disclosure waits for writes the entry's bytes and leaf hash only. The
columns searches and reports use (kind, disclosure id, subject reference, partner, time,
purpose, legal basis, outcome, an intent's consent id: schema 16) are derived from those
bytes afterwards, here and nowhere else (:func:`columns_of`), into ``log_index``, one row
per entry below the high-water mark ``log_projection.projected_size``. The projector
(``SqlStore.project_log``) reads the entries from the mark, derives their columns
outside any lock, then inserts them and moves the mark in one transaction — the mark
only if it is still where it read it, the rows with ``ON CONFLICT DO NOTHING`` — so
several processes and instances projecting at once write each row once, and a crash
between a commit and its projection only leaves entries above the mark, which the next
pass (the next commit, any read, or the start-up) projects.

An entry whose bytes are not a log entry (edited in the database) gets no row: the mark
passes it, and ``gateway log verify`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from gateway.store.records import LogColumns, NotAnEntry

__all__ = [
    "CLEAR",
    "CLEAR_MARK",
    "INSERT_ROW",
    "KINDS",
    "MARK",
    "MARK_AND_END",
    "NEXT_ENTRIES",
    "PROJECT_BATCH",
    "SET_MARK",
    "check_entry",
    "columns_of",
    "columns_of_bytes",
    "consent_of",
]

KINDS: Final = ("intent", "outcome", "refused", "action")

# Entries projected per transaction: SQLite's one writer (the log's appends among it)
# waits for one batch's inserts at a time; the parsing is done before the write begins.
PROJECT_BATCH: Final = 5_000

# The statements, with ``?`` placeholders (PostgreSQL's adapter numbers them). The log's
# end is its last index plus one: both databases answer it from the primary key.
MARK: Final = "SELECT projected_size FROM log_projection WHERE name = 'search'"
MARK_AND_END: Final = (
    "SELECT (SELECT projected_size FROM log_projection WHERE name = 'search'), "
    "(SELECT COALESCE(max(idx) + 1, 0) FROM log_entries)"
)
NEXT_ENTRIES: Final = "SELECT idx, entry FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?"
INSERT_ROW: Final = (
    "INSERT INTO log_index (idx, kind, disclosure_id, subject_ref, partner, logged_at, "
    "purpose, legal_basis, outcome, consent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (idx) DO NOTHING"
)
CLEAR: Final = "DELETE FROM log_index"
CLEAR_MARK: Final = "UPDATE log_projection SET projected_size = 0 WHERE name = 'search'"
# Moves only from where this projector read it: another one that got there first wins.
SET_MARK: Final = (
    "UPDATE log_projection SET projected_size = ? WHERE name = 'search' AND projected_size = ?"
)


def _text(value: Any) -> str | None:
    """A column's copy of an entry value.

    A refusal records what the caller asked for, and PostgreSQL text cannot hold U+0000:
    one such value would fail the whole projection batch. The entry bytes keep the value
    exactly (JSON escapes it).
    """
    if value.__class__ is str and "\x00" not in value:
        return value  # the common case, tested first: verify derives every row
    return None if value is None else str(value).replace("\x00", "\ufffd")


def check_entry(entry: Mapping[str, Any]) -> None:
    """NotAnEntry unless `entry` has what :func:`columns_of` derives its columns from.

    Asked before an entry is appended, where the columns themselves are not needed: the
    log cannot take an entry back, and one the projector cannot derive would be named by
    every ``gateway log verify`` after."""
    _kind_and_time(entry)


def _kind_and_time(entry: Mapping[str, Any]) -> tuple[str, datetime]:
    kind = entry.get("kind")
    if kind not in KINDS:
        raise NotAnEntry(f"entry kind {str(kind)[:40]!r} not among {KINDS}")
    if "disclosure_id" not in entry:
        raise NotAnEntry("the entry has no disclosure_id")
    text = entry.get("time")
    try:
        at = datetime.fromisoformat(text) if isinstance(text, str) else None  # "Z" since 3.11
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise NotAnEntry("the entry has no valid time with a time zone")
    return kind, at


def columns_of(entry: Mapping[str, Any]) -> LogColumns:
    """The search columns of `entry` (NotAnEntry if it is not a log entry)."""
    kind, at = _kind_and_time(entry)
    if kind == "outcome":
        outcome = _text(entry.get("outcome"))
    else:
        outcome = "refused" if kind == "refused" else None
    # Positional: verify builds one per stored row.
    return LogColumns(
        kind,
        str(entry["disclosure_id"]),
        _text(entry.get("subject_ref")),
        _text(entry.get("partner")),
        at,
        _text(entry.get("purpose")),
        _text(entry.get("legal_basis")),
        outcome,
        consent_of(kind, entry.get("consent_id")),
    )


def consent_of(kind: str, value: Any) -> str | None:
    """The consent_id column of an entry of `kind` whose ``consent_id`` is `value`: an
    intent's, when it is a string (the only consent ids the gateway writes; schema 16's
    backfill reads JSON strings only, so both derive the same); else None. Acts name
    consents too (a withdrawal, a lapse): they are no disclosure under it."""
    return _text(value) if kind == "intent" and value.__class__ is str else None


def columns_of_bytes(data: bytes) -> LogColumns:
    """The search columns of the entry serialized as `data` (NotAnEntry otherwise)."""
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise NotAnEntry("the entry's bytes are not JSON") from None
    if not isinstance(entry, dict):
        raise NotAnEntry("the entry's bytes are not a JSON object")
    return columns_of(entry)
