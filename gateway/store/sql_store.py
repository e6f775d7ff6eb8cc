"""What both SQL adapters do the same way, written once: their shared SQL and the methods
whose statement and flow are the same on SQLite and PostgreSQL.

An adapter subclasses :class:`SqlStore` and gives it: how to run one statement on its
connection (:meth:`SqlStore._rows`, :meth:`SqlStore._run`, each in a transaction of
its own and translating its driver's exceptions), how values are bound (an
:class:`Encoding`), how they come back (a :class:`~gateway.store.mapping.Decoding`, read
by the row mappers of :mod:`gateway.store.mapping`) and how a statement built at run
time gets its placeholders. The statements here are written with ``?``;
:meth:`Statements.numbered` gives PostgreSQL's ``$n`` once, at import. The schema's
versions are written once too, in :mod:`gateway.store.migrations`.

What is kept in the adapters is what differs, or what is hot and tuned per driver: the
log append and its group-commit writer, the subject's facts (SQLite on the loop's
thread, PostgreSQL in one round trip), tree-hash reads, and multi-statement
transactions that lock differently (lawful requests, suspensions, instances).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final

from gateway.partners.model import Suspension
from gateway.policy.facts import Consent
from gateway.store import mapping
from gateway.store.base import (
    InstanceRecord,
    JustificationRecord,
    LogEntry,
    LogRecord,
    StoredCheckpoint,
    StoredLogRow,
    protected_column,
    require_aware,
)
from gateway.store.mapping import Decoding

__all__ = ["SQL", "Encoding", "SqlStore", "Statements", "numbered"]

# Column lists are spelled out so that every statement is a constant; the consent
# columns are in mapping.consent's order.
_SELECT_CONSENTS: Final = (
    "SELECT id, subject, purposes, partners, partner_categories, special_categories, "
    "policy_version, obtained_at, expires_at, withdrawn_at, method, evidence FROM consents"
)


def numbered(sql: str) -> str:
    """`sql` with its ``?`` placeholders numbered ``$1``, ``$2``, … (PostgreSQL's).

    The statements here hold no ``?`` other than placeholders (no literals or comments).
    """
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, start=1))


@dataclass(frozen=True)
class Statements:
    """The SQL both databases run alike, bound in the order the placeholders appear."""

    consent_by_id: str = _SELECT_CONSENTS + " WHERE id = ?"
    consents_of_subject: str = _SELECT_CONSENTS + " WHERE subject = ? ORDER BY obtained_at, id"
    insert_consent: str = (
        "INSERT INTO consents (id, subject, purposes, partners, partner_categories, "
        "special_categories, policy_version, obtained_at, expires_at, withdrawn_at, method, "
        "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    withdraw_consent: str = (
        "UPDATE consents SET withdrawn_at = coalesce(withdrawn_at, ?) WHERE id = ? "
        "RETURNING id, subject, purposes, partners, partner_categories, special_categories, "
        "policy_version, obtained_at, expires_at, withdrawn_at, method, evidence"
    )
    insert_justification: str = (
        "INSERT INTO justifications (disclosure_id, reviewer_id, text, at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (disclosure_id) DO NOTHING"
    )
    justification: str = (
        "SELECT disclosure_id, reviewer_id, text, at FROM justifications WHERE disclosure_id = ?"
    )
    set_restriction: str = (
        "INSERT INTO subjects (subject, restricted, restriction_reason, "
        "restriction_changed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (subject) DO UPDATE SET restricted = excluded.restricted, "
        "restriction_reason = excluded.restriction_reason, "
        "restriction_changed_at = excluded.restriction_changed_at"
    )
    set_profile: str = (
        "INSERT INTO subjects (subject, profile) VALUES (?, ?) "
        "ON CONFLICT (subject) DO UPDATE SET profile = excluded.profile"
    )
    withdraw_subject_consents: str = (
        "UPDATE consents SET withdrawn_at = ? WHERE subject = ? AND withdrawn_at IS NULL"
    )
    clear_subject_evidence: str = (
        "UPDATE consents SET evidence = '' WHERE subject = ? AND evidence <> ''"
    )
    replace_profile: str = "UPDATE subjects SET profile = ? WHERE subject = ?"
    legal_request_subjects: str = (
        "SELECT id, subjects, sealed_subjects FROM legal_requests WHERE id > ? ORDER BY id LIMIT ?"
    )
    set_legal_request_subjects: str = (
        "UPDATE legal_requests SET subjects = ?, sealed_subjects = ? "
        "WHERE id = ? AND sealed_subjects = ?"
    )
    insert_legal_request: str = (
        "INSERT INTO legal_requests (id, authority, reference, instrument, "
        "subjects, partners, received_at, registered_by, status, sealed_subjects) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    insert_suspension: str = (
        "INSERT INTO partner_suspensions (partner_id, reason, suspended_by, suspended_at) "
        "VALUES (?, ?, ?, ?) "
        "ON CONFLICT (partner_id) DO NOTHING"
    )
    suspension: str = (
        "SELECT partner_id, reason, suspended_by, suspended_at FROM partner_suspensions "
        "WHERE partner_id = ?"
    )
    suspensions: str = (
        "SELECT partner_id, reason, suspended_by, suspended_at FROM partner_suspensions"
    )
    delete_suspension: str = (
        "DELETE FROM partner_suspensions WHERE partner_id = ? "
        "RETURNING partner_id, reason, suspended_by, suspended_at"
    )
    suspend_event: str = (
        "INSERT INTO partner_suspension_events (partner_id, action, reason, actor, at) "
        "VALUES (?, 'suspend', ?, ?, ?)"
    )
    resume_event: str = (
        "INSERT INTO partner_suspension_events (partner_id, action, reason, actor, at) "
        "VALUES (?, 'resume', ?, ?, ?)"
    )
    idempotency_key: str = (
        "SELECT request_hash, completed, status, headers, body "
        "FROM idempotency_keys WHERE caller_id = ? AND key = ?"
    )
    complete_idempotency: str = (
        "UPDATE idempotency_keys SET completed = ?, status = ?, headers = ?, body = ? "
        "WHERE caller_id = ? AND key = ?"
    )
    release_idempotency: str = (
        "DELETE FROM idempotency_keys WHERE caller_id = ? AND key = ? AND NOT completed"
    )
    log_range: str = "SELECT idx, entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
    log_of_disclosure: str = (
        "SELECT idx, entry FROM log_entries WHERE disclosure_id = ? ORDER BY idx"
    )
    intents_without_outcome: str = (
        "SELECT i.idx, i.entry FROM log_entries i WHERE i.kind = 'intent' "
        "AND NOT EXISTS (SELECT 1 FROM log_entries o "
        "WHERE o.disclosure_id = i.disclosure_id AND o.kind = 'outcome') "
        "ORDER BY i.idx"
    )
    # Two subqueries: SQLite answers a lone min() or max() from the index, but scans
    # the whole table for both in one SELECT.
    log_time_span: str = (
        "SELECT (SELECT min(logged_at) FROM log_entries), (SELECT max(logged_at) FROM log_entries)"
    )
    log_records: str = (
        "SELECT idx, entry, leaf_hash FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?"
    )
    log_rows: str = (
        "SELECT idx, entry, leaf_hash, kind, disclosure_id, subject_ref, partner, logged_at, "
        "purpose, legal_basis, outcome FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?"
    )
    unhashed_log_rows: str = (
        "SELECT idx, entry FROM log_entries WHERE leaf_hash IS NULL ORDER BY idx LIMIT ?"
    )
    instances: str = (
        "SELECT id, host, pid, started_at, heartbeat_at, claimed_by, recovered_at "
        "FROM instances ORDER BY started_at, id"
    )
    insert_checkpoint: str = "INSERT INTO checkpoints (size, note, created_at) VALUES (?, ?, ?)"
    latest_checkpoint_seq: str = "SELECT max(seq) FROM checkpoints"
    latest_checkpoint: str = (
        "SELECT size, note, created_at, seq FROM checkpoints ORDER BY seq DESC LIMIT 1"
    )
    checkpoints: str = "SELECT size, note, created_at, seq FROM checkpoints ORDER BY seq"
    schema_versions: str = "SELECT version FROM schema_version ORDER BY version"

    def numbered(self) -> Statements:
        """These statements with PostgreSQL's ``$n`` placeholders."""
        return replace(self, **{f.name: numbered(getattr(self, f.name)) for f in fields(self)})


# The statements with ``?`` placeholders (SQLite's).
SQL: Final = Statements()


@dataclass(frozen=True)
class Encoding:
    """How one driver binds a time and a set."""

    time: Callable[[datetime], object]
    set: Callable[[Iterable[str]], object]

    def opt_time(self, value: datetime | None) -> object:
        return None if value is None else self.time(value)


class SqlStore(ABC):
    """The storage port's methods that read and write alike on both databases."""

    _sql: Statements
    _encode: Encoding
    _decode: Decoding
    # A statement built at run time (from fixed names), in this database's placeholders.
    _in_dialect: Callable[[str], str]

    @abstractmethod
    async def _rows(
        self, action: str, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[Any]:
        """The rows of one statement, run in a transaction of its own; `write` when it
        changes rows. A driver's failure becomes StoreUnavailable saying `action`."""

    @abstractmethod
    async def _run(self, action: str, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement that changes rows in a transaction of its own; the number
        of rows it changed."""

    def _consent_params(self, consent: Consent) -> tuple[object, ...]:
        """`consent` bound in the order of CONSENT_COLUMNS."""
        encode = self._encode
        return (
            consent.id,
            consent.subject,
            encode.set(consent.purposes),
            encode.set(consent.partners),
            encode.set(consent.partner_categories),
            encode.set(consent.special_categories),
            consent.policy_version,
            encode.time(consent.obtained_at),
            encode.opt_time(consent.expires_at),
            encode.opt_time(consent.withdrawn_at),
            consent.method,
            consent.evidence,
        )

    async def schema_versions(self) -> list[int]:
        """The versions applied so far, ascending."""
        rows = await self._rows("read the schema version", self._sql.schema_versions)
        return [int(r[0]) for r in rows]

    # -- consents, restriction, profile -------------------------------------------------

    async def withdraw_consent(self, consent_id: str, at: datetime) -> Consent | None:
        require_aware(at, "at")
        rows = await self._rows(
            "withdraw a consent",
            self._sql.withdraw_consent,
            (self._encode.time(at), consent_id),
            write=True,
        )
        return mapping.consent(rows[0], self._decode) if rows else None

    async def get_consent(self, consent_id: str) -> Consent | None:
        rows = await self._rows("read a consent", self._sql.consent_by_id, (consent_id,))
        return mapping.consent(rows[0], self._decode) if rows else None

    async def consents_for_subject(self, subject: str) -> list[Consent]:
        rows = await self._rows("read consents", self._sql.consents_of_subject, (subject,))
        return [mapping.consent(r, self._decode) for r in rows]

    async def add_justification(self, record: JustificationRecord) -> bool:
        require_aware(record.at, "at")
        inserted = await self._run(
            "store a justification",
            self._sql.insert_justification,
            (record.disclosure_id, record.reviewer_id, record.text, self._encode.time(record.at)),
        )
        return inserted == 1

    async def get_justification(self, disclosure_id: str) -> JustificationRecord | None:
        rows = await self._rows("read a justification", self._sql.justification, (disclosure_id,))
        return mapping.justification(rows[0], self._decode) if rows else None

    async def set_restriction(
        self, subject: str, restricted: bool, reason: str, at: datetime
    ) -> None:
        require_aware(at, "at")
        # A bool binds as 1 or 0 in SQLite's INTEGER column, as itself in PostgreSQL's.
        await self._run(
            "store a restriction",
            self._sql.set_restriction,
            (subject, restricted, reason, self._encode.time(at)),
        )

    async def set_profile(self, subject: str, profile: str | None) -> None:
        await self._run("store a profile", self._sql.set_profile, (subject, profile))

    async def legal_request_subjects(
        self, after: str | None, limit: int
    ) -> list[tuple[str, frozenset[str], str]]:
        rows = await self._rows(
            "read lawful requests", self._sql.legal_request_subjects, (after or "", limit)
        )
        decode_set = self._decode.set
        return [(str(r[0]), decode_set(r[1]), str(r[2])) for r in rows]

    async def set_legal_request_subjects(
        self, request_id: str, subjects: frozenset[str], sealed: str, old_sealed: str
    ) -> bool:
        changed = await self._run(
            "rewrite a lawful request",
            self._sql.set_legal_request_subjects,
            (self._encode.set(subjects), sealed, request_id, old_sealed),
        )
        return changed == 1

    async def protected_values(
        self, column: str, after: tuple[object, ...] | None, limit: int
    ) -> list[tuple[tuple[object, ...], str | bytes]]:
        table, keys, name = protected_column(column)
        key_list = ", ".join(keys)
        where = f"{name} IS NOT NULL"
        if after is not None:
            where += f" AND ({key_list}) > ({', '.join('?' * len(keys))})"
        sql = (
            f"SELECT {key_list}, {name} FROM {table} WHERE {where} "  # noqa: S608 - names from PROTECTED_COLUMNS
            f"ORDER BY {key_list} LIMIT ?"
        )
        rows = await self._rows(
            "read stored values", self._in_dialect(sql), (*(after or ()), limit)
        )
        return [(tuple(r[: len(keys)]), r[len(keys)]) for r in rows]

    # -- partner suspensions ------------------------------------------------------------

    async def partner_suspensions(self) -> dict[str, Suspension]:
        rows = await self._rows("read partner suspensions", self._sql.suspensions)
        return {str(r[0]): mapping.suspension(r, self._decode) for r in rows}

    # -- idempotency --------------------------------------------------------------------

    async def complete_idempotency(
        self, caller_id: str, key: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        await self._run(
            "store an idempotent response",
            self._sql.complete_idempotency,
            (True, status, json.dumps(dict(headers), sort_keys=True), body, caller_id, key),
        )

    async def release_idempotency(self, caller_id: str, key: str) -> None:
        await self._run(
            "release an idempotency key", self._sql.release_idempotency, (caller_id, key)
        )

    # -- disclosure log -----------------------------------------------------------------

    async def read_log(self, start: int, end: int) -> list[LogEntry]:
        rows = await self._rows("read the disclosure log", self._sql.log_range, (start, end))
        return mapping.entries(rows)

    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]:
        rows = await self._rows(
            "read the disclosure log", self._sql.log_of_disclosure, (disclosure_id,)
        )
        return mapping.entries(rows)

    async def intents_without_outcome(self) -> list[LogEntry]:
        rows = await self._rows("read the disclosure log", self._sql.intents_without_outcome)
        return mapping.entries(rows)

    async def log_time_span(self) -> tuple[datetime, datetime] | None:
        rows = await self._rows("read the disclosure log", self._sql.log_time_span)
        first, last = rows[0][0], rows[0][1]
        return None if first is None else (self._decode.time(first), self._decode.time(last))

    async def read_log_records(self, start: int, limit: int) -> list[LogRecord]:
        rows = await self._rows("read the disclosure log", self._sql.log_records, (start, limit))
        return mapping.log_records(rows)

    async def read_log_rows(self, start: int, limit: int) -> list[StoredLogRow]:
        rows = await self._rows("read the disclosure log", self._sql.log_rows, (start, limit))
        return mapping.log_rows(rows, self._decode)

    async def log_rows_without_leaf_hash(self, limit: int) -> list[LogEntry]:
        rows = await self._rows("read the disclosure log", self._sql.unhashed_log_rows, (limit,))
        return mapping.entries(rows)

    # -- instances ----------------------------------------------------------------------

    async def list_instances(self) -> list[InstanceRecord]:
        rows = await self._rows("list instances", self._sql.instances)
        return [mapping.instance(r, self._decode) for r in rows]

    # -- checkpoints --------------------------------------------------------------------

    async def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        require_aware(at, "at")
        await self._run(
            "store a checkpoint", self._sql.insert_checkpoint, (size, note, self._encode.time(at))
        )

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._rows("read checkpoints", self._sql.latest_checkpoint)
        return mapping.checkpoint(rows[0], self._decode) if rows else None

    async def checkpoints(self) -> list[StoredCheckpoint]:
        rows = await self._rows("read checkpoints", self._sql.checkpoints)
        return [mapping.checkpoint(r, self._decode) for r in rows]
