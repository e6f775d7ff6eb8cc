"""Rows as read → the port's records, written once for both databases.

The rows the two adapters read hold the same columns in the same order; what differs is
how a driver hands back a value: SQLite gives times as text and sets as JSON text,
asyncpg gives ``datetime`` and lists. A :class:`Decoding` says that for one driver, and
every mapper here takes one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from gateway.partners.model import Suspension, SuspensionEvent
from gateway.policy.facts import Consent, LegalRequest
from gateway.store.records import (
    Approval,
    IdempotencyClaim,
    InstanceRecord,
    JustificationRecord,
    LegalRequestRecord,
    LogColumns,
    LogEntry,
    LogRecord,
    OutboxNotice,
    PersonalToken,
    Rejection,
    StoredCheckpoint,
    StoredLogRow,
    StoredResponse,
    TreeHash,
    WitnessSize,
)

__all__ = [
    "AS_READ",
    "FROM_TEXT",
    "Decoding",
    "checkpoint",
    "claim",
    "consent",
    "entries",
    "instance",
    "justification",
    "legal_request",
    "legal_request_facts",
    "log_records",
    "log_rows",
    "opt_bytes",
    "outbox_notice",
    "suspension",
    "suspension_event",
    "tree_hashes",
    "witness_size",
]


class Row(Protocol):
    """A row as read: a tuple (sqlite3, aiosqlite) or an asyncpg Record."""

    def __getitem__(self, index: int, /) -> Any: ...


@dataclass(frozen=True)
class Decoding:
    """How one driver hands back a stored time and a stored set."""

    time: Callable[[Any], datetime]
    set: Callable[[Any], frozenset[str]]

    def opt_time(self, value: Any) -> datetime | None:
        return None if value is None else self.time(value)


def _json_set(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


def _as_read(value: datetime) -> datetime:
    return value


# SQLite: times as fixed-width UTC ISO 8601 text, sets as sorted JSON arrays.
FROM_TEXT: Final = Decoding(time=datetime.fromisoformat, set=_json_set)
# asyncpg: timestamptz as an aware datetime, text[] as a list.
AS_READ: Final = Decoding(time=_as_read, set=frozenset)


def consent(row: Row, d: Decoding) -> Consent:
    """A row of id, subject, purposes, partners, partner_categories, special_categories,
    policy_version, obtained_at, expires_at, withdrawn_at, method, evidence."""
    return Consent(
        id=row[0],
        subject=row[1],
        purposes=d.set(row[2]),
        partners=d.set(row[3]),
        partner_categories=d.set(row[4]),
        special_categories=d.set(row[5]),
        policy_version=row[6],
        obtained_at=d.time(row[7]),
        expires_at=d.opt_time(row[8]),
        withdrawn_at=d.opt_time(row[9]),
        method=row[10],
        evidence=row[11],
    )


def legal_request(row: Row, approvals: Iterable[Approval], d: Decoding) -> LegalRequestRecord:
    """A row of id, authority, reference, instrument, subjects, partners, received_at,
    registered_by, status, sealed_subjects, and the rejection's reviewer_id, reason and
    rejected_at (NULLs: none), then anything; with its approvals."""
    rejection = None if row[10] is None else Rejection(row[10], row[11], d.time(row[12]))
    return LegalRequestRecord(
        id=row[0],
        authority=row[1],
        reference=row[2],
        instrument=row[3],
        subjects=d.set(row[4]),
        partners=d.set(row[5]),
        received_at=d.time(row[6]),
        registered_by=row[7],
        status=row[8],
        approvals=tuple(approvals),
        sealed_subjects=row[9],
        rejection=rejection,
    )


def legal_request_facts(row: Row, d: Decoding) -> LegalRequest:
    """A row of id, status, subjects, partners: what a decision reads of a request."""
    return LegalRequest(id=row[0], status=row[1], subjects=d.set(row[2]), partners=d.set(row[3]))


def suspension(row: Row, d: Decoding) -> Suspension:
    """A row of partner_id, reason, suspended_by, suspended_at."""
    return Suspension(partner_id=str(row[0]), reason=str(row[1]), by=str(row[2]), at=d.time(row[3]))


def suspension_event(row: Row, d: Decoding) -> SuspensionEvent:
    """A row of seq, partner_id, action, reason, actor, at."""
    return SuspensionEvent(int(row[0]), row[1], row[2], row[3], row[4], d.time(row[5]))


def justification(row: Row, d: Decoding) -> JustificationRecord:
    """A row of disclosure_id, reviewer_id, text, at."""
    return JustificationRecord(row[0], row[1], row[2], d.time(row[3]))


def instance(row: Row, d: Decoding) -> InstanceRecord:
    """A row of id, host, pid, started_at, heartbeat_at, claimed_by, recovered_at."""
    return InstanceRecord(
        id=row[0],
        host=row[1],
        pid=int(row[2]),
        started_at=d.time(row[3]),
        heartbeat_at=d.time(row[4]),
        claimed_by=row[5],
        recovered_at=d.opt_time(row[6]),
    )


def checkpoint(row: Row, d: Decoding) -> StoredCheckpoint:
    """A row of size, note, created_at, seq, cosigned_note."""
    return StoredCheckpoint(
        size=int(row[0]),
        note=str(row[1]),
        at=d.time(row[2]),
        seq=int(row[3]),
        cosigned=None if row[4] is None else str(row[4]),
    )


def witness_size(row: Row, d: Decoding) -> WitnessSize:
    """A row of witness, size, checkpoint_seq, updated_at."""
    return WitnessSize(
        witness=str(row[0]), size=int(row[1]), checkpoint_seq=int(row[2]), at=d.time(row[3])
    )


def outbox_notice(row: Row, d: Decoding) -> OutboxNotice:
    """A row of statements._OUTBOX_COLUMNS."""
    return OutboxNotice(
        id=str(row[0]),
        kind=str(row[1]),
        partner=str(row[2]),
        operation=str(row[3]),
        reference=str(row[4]),
        payload=str(row[5]),
        status=str(row[6]),
        attempts=int(row[7]),
        created_at=d.time(row[8]),
        next_at=d.time(row[9]),
        last_error=str(row[10]),
        disclosure_id=str(row[11]),
        lease_owner=str(row[12]),
        lease_until=d.opt_time(row[13]),
        done_at=d.opt_time(row[14]),
    )


def personal_token(row: Row, d: Decoding) -> PersonalToken:
    """A row of statements._SELECT_TOKENS."""
    return PersonalToken(
        id=str(row[0]),
        person=str(row[1]),
        roles=d.set(row[2]),
        token_hash=str(row[3]),
        created_at=d.time(row[4]),
        expires_at=d.time(row[5]),
        revoked_at=d.opt_time(row[6]),
    )


def claim(request_hash: str, row: Row) -> IdempotencyClaim:
    """What a stored key (request_hash, completed, status, headers, body) answers a
    request of `request_hash`."""
    if row[0] != request_hash:
        return IdempotencyClaim("mismatch")
    if not row[1]:
        return IdempotencyClaim("in_progress")
    return IdempotencyClaim(
        "completed", StoredResponse(int(row[2]), json.loads(row[3]), bytes(row[4]))
    )


def opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def entries(rows: Iterable[Row]) -> list[LogEntry]:
    """Rows of idx, entry."""
    return [(int(r[0]), bytes(r[1])) for r in rows]


def log_records(rows: Iterable[Row]) -> list[LogRecord]:
    """Rows of idx, entry, leaf_hash."""
    return [(int(r[0]), bytes(r[1]), opt_bytes(r[2])) for r in rows]


def tree_hashes(rows: Iterable[Row]) -> list[TreeHash]:
    """Rows of level, idx, hash."""
    return [(int(r[0]), int(r[1]), opt_bytes(r[2])) for r in rows]


def log_rows(rows: Iterable[Row], d: Decoding) -> list[StoredLogRow]:
    """Rows of idx, entry, leaf_hash, kind, disclosure_id, subject_ref, partner,
    logged_at, purpose, legal_basis, outcome, consent_id (all NULL: no projected row),
    below the mark.

    As read: both drivers give idx as an int and entry and leaf_hash as bytes (or NULL).
    Kept lean: `log verify` reads every row through here.
    """
    time = d.time
    return [
        (
            r[0],
            r[1],
            r[2],
            None
            if r[3] is None
            else LogColumns(r[3], r[4], r[5], r[6], time(r[7]), r[8], r[9], r[10], r[11]),
            bool(r[12]),
        )
        for r in rows
    ]
