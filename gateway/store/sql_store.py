"""What both SQL adapters do the same way, written once: the methods whose statements
(:mod:`gateway.store.statements`) and flow are the same on SQLite and PostgreSQL.

An adapter subclasses :class:`SqlStore` and gives it: how to run one statement on its
connection (:meth:`SqlStore._rows`, :meth:`SqlStore._run`, each in a transaction of
its own and translating its driver's exceptions), how values are bound (an
:class:`Encoding`), how they come back (a :class:`~gateway.store.mapping.Decoding`, read
by the row mappers of :mod:`gateway.store.mapping`) and how a statement built at run
time gets its placeholders. The schema's versions are written once too, in
:mod:`gateway.store.migrations`.

Transactions of several statements are written here too, against a
:class:`Transaction` the adapter opens (:meth:`SqlStore._transaction`): an erasure, a
lawful request's registration, a suspension and its event, a checkpoint compared with
the latest one.

What is kept in the adapters is what differs, or what is hot and tuned per driver: the
log append and its group-commit writer, the subject's facts (SQLite on the loop's
thread, PostgreSQL in one round trip), tree-hash reads, and transactions that read or
lock differently (approvals, idempotency claims, instances on the store's clock).
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Protocol

from gateway.errors import ConflictError
from gateway.partners.model import Suspension, SuspensionEvent
from gateway.policy.facts import Consent
from gateway.store import mapping, projection, rollup_sql, summary_sql
from gateway.store.exposure_sql import (
    ExposureCount,
    ExposureSql,
    ExposureTotals,
    SubjectRefCount,
)
from gateway.store.mapping import Decoding
from gateway.store.records import (
    OUTBOX_STATUSES,
    Approval,
    InstanceRecord,
    JustificationRecord,
    LegalRequestRecord,
    LogEntry,
    LogRecord,
    NotAnEntry,
    OutboxNotice,
    PersonalToken,
    Rejection,
    RestrictionRow,
    RopaCounts,
    RopaFieldCount,
    RopaRowCount,
    StoredCheckpoint,
    StoredLogRow,
    WitnessAlarm,
    WitnessSize,
    check_search_limit,
    legal_request_status,
    protected_column,
    require_aware,
    review_conflict,
)
from gateway.store.rollup_sql import Progress, Rollup
from gateway.store.ropa_sql import RopaSql
from gateway.store.statements import LEGAL_REQUEST_STATUS, Statements
from gateway.store.summary_sql import DayCount, KeyCount, SummaryExpressions

__all__ = ["PRUNE_BATCH", "RECOUNT_RANGE", "ROLLUP_BATCH", "Encoding", "SqlStore", "Transaction"]

# Rows a retention sweep deletes per transaction: SQLite's one writer (the log's appends
# among them) waits for one batch at a time, never for the whole sweep.
PRUNE_BATCH: Final = 500

# Log entries counted into the rollups per transaction: SQLite's one writer (the log's
# appends among them) waits for one batch at a time — about 65 ms here (20,000: 250 ms) —
# never for a year.
ROLLUP_BATCH: Final = 5_000

# Log entries `check_rollup` counts per statement: it writes nothing, so only PostgreSQL's
# command timeout (30 s) and the length of a statement's snapshot bound it.
RECOUNT_RANGE: Final = 100_000

# Later than any planned attempt of an outbox notice (a person's retry claims it anyway).
_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Encoding:
    """How one driver binds a time and a set."""

    time: Callable[[datetime], object]
    set: Callable[[Iterable[str]], object]

    def opt_time(self, value: datetime | None) -> object:
        return None if value is None else self.time(value)


class Transaction(Protocol):
    """Statements run in order in one open transaction of an adapter's connection.

    A driver's exception leaves as it is; the adapter's :meth:`SqlStore._transaction`
    translates it (and rolls back).
    """

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows `sql` returns."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run `sql`; the number of rows it changed."""

    async def run_many(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """Run `sql` once for each set of `params`."""


class SqlStore(ABC):
    """The storage port's methods that read and write alike on both databases."""

    _sql: Statements
    _encode: Encoding
    _decode: Decoding
    # A statement built at run time (from fixed names), in this database's placeholders.
    _in_dialect: Callable[[str], str]
    # A partner's exposure (gateway.store.exposure_sql), in this database's placeholders.
    _exposure: ExposureSql
    # Lawful requests with their approvals: a SELECT over `legal_requests l` (a WHERE on
    # l's columns may follow), its ORDER BY, and `_legal_request_records` for its rows.
    _legal_requests_select: str
    _legal_requests_order: str
    # Appended to the read that locks a lawful request while an approval or a rejection is
    # recorded (nothing where the write transaction already excludes other writers).
    _for_update: str = ""
    # Run first in the checkpoint compare-and-insert, when the write transaction itself
    # does not already order concurrent checkpoint writers (PostgreSQL's does not).
    _lock_checkpoints: str | None = None
    # The overview's expressions this database writes its own way (summary_sql).
    _summary: SummaryExpressions
    # The record of processing's two GROUP BY statements, in this database's JSON reads.
    _ropa: RopaSql
    # One projection pass at a time in this process (each adapter makes its own).
    _projecting: asyncio.Lock

    @abstractmethod
    def _transaction(self, action: str) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction of its own, committed when the block ends (rolled back when
        it raises). A driver's failure becomes StoreUnavailable saying `action`."""

    @abstractmethod
    def _of_disclosures(self, disclosure_ids: Sequence[str]) -> tuple[str, Sequence[Any]]:
        """The read of every entry of these disclosures (a few dozen), in index order,
        each found by the disclosure index: its SQL and what it binds."""

    @abstractmethod
    def _legal_request_records(self, rows: list[Any]) -> list[LegalRequestRecord]:
        """Rows of `_legal_requests_select` (in its order) as records with their approvals."""

    @abstractmethod
    def _conflict(self, what: str) -> AbstractContextManager[None]:
        """Within a transaction: an insert that meets an existing key becomes
        ConflictError about a `what`."""

    @abstractmethod
    async def _rows(
        self, action: str, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[Any]:
        """The rows of one statement, run in a transaction of its own; `write` when it
        changes rows. A driver's failure becomes StoreUnavailable saying `action`."""

    async def _long_rows(self, action: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Like `_rows`, for a read that takes long (a range of the log counted): where
        the database's connections are few (SQLite), on one that no disclosure's
        statement waits for."""
        return await self._rows(action, sql, params)

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

    async def consents_to_lapse(
        self,
        min_version: str,
        now: datetime,
        limit: int = 500,
        *,
        claimed_before: datetime | None = None,
    ) -> list[Consent]:
        require_aware(now, "now")
        claimed = now if claimed_before is None else require_aware(claimed_before, "claimed_before")
        rows = await self._rows(
            "read consents to lapse",
            self._sql.consents_to_lapse,
            (min_version, self._encode.time(now), self._encode.time(claimed), limit),
        )
        return [mapping.consent(r, self._decode) for r in rows]

    async def mark_consent_lapsed(self, consent_id: str, at: datetime) -> None:
        require_aware(at, "at")
        await self._run(
            "mark a consent lapsed",
            self._sql.mark_consent_lapsed,
            (self._encode.time(at), consent_id),
        )

    async def get_consent(self, consent_id: str) -> Consent | None:
        rows = await self._rows("read a consent", self._sql.consent_by_id, (consent_id,))
        return mapping.consent(rows[0], self._decode) if rows else None

    async def consents_for_subject(self, subject: str) -> list[Consent]:
        rows = await self._rows("read consents", self._sql.consents_of_subject, (subject,))
        return [mapping.consent(r, self._decode) for r in rows]

    async def forget_subject(
        self, subject: str, at: datetime, profile: str | None
    ) -> tuple[int, int]:
        require_aware(at, "at")
        sql = self._sql
        async with self._transaction("erase a subject's records") as tx:
            withdrawn = await tx.run(
                sql.withdraw_subject_consents, (self._encode.time(at), subject)
            )
            cleared = await tx.run(sql.clear_subject_evidence, (subject,))
            await tx.run(sql.replace_profile, (profile, subject))
        return cleared, withdrawn

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

    async def restrictions(self, after: str | None, limit: int) -> list[RestrictionRow]:
        rows = await self._rows("read restrictions", self._sql.restrictions, (after or "", limit))
        decode = self._decode.time
        return [RestrictionRow(str(r[0]), bool(r[1]), str(r[2]), decode(r[3])) for r in rows]

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

    # -- lawful requests ----------------------------------------------------------------

    async def add_legal_request(self, record: LegalRequestRecord) -> None:
        require_aware(record.received_at, "received_at")
        status = legal_request_status(record, record.approvals)
        encode = self._encode
        async with self._transaction("store a lawful request") as tx:
            with self._conflict("lawful request"):
                await tx.run(
                    self._sql.insert_legal_request,
                    (
                        record.id,
                        record.authority,
                        record.reference,
                        record.instrument,
                        encode.set(record.subjects),
                        encode.set(record.partners),
                        encode.time(record.received_at),
                        record.registered_by,
                        status,
                        record.sealed_subjects,
                    ),
                )
            await tx.run_many(
                self._sql.insert_approval,
                [(record.id, a.reviewer_id, encode.time(a.at)) for a in record.approvals],
            )

    def _legal_requests_where(self, condition: str) -> str:
        """The lawful requests matching `condition` (with ``?``), in order, in this dialect."""
        select = self._legal_requests_select
        return self._in_dialect(f"{select} WHERE {condition}{self._legal_requests_order}")

    async def get_legal_request(self, request_id: str) -> LegalRequestRecord | None:
        rows = await self._rows(
            "read a lawful request", self._legal_requests_where("l.id = ?"), (request_id,)
        )
        records = self._legal_request_records(rows)
        return records[0] if records else None

    async def _locked_legal_request(
        self, tx: Transaction, request_id: str
    ) -> LegalRequestRecord | None:
        """The request as committed, its row locked until `tx` ends: approvals and
        rejections of one request take turns (the row lock, or SQLite's write lock), so
        each sees every approval and rejection committed before it."""
        if not await tx.rows(self._sql.legal_request_id + self._for_update, (request_id,)):
            return None
        rows = await tx.rows(self._legal_requests_where("l.id = ?"), (request_id,))
        [record] = self._legal_request_records(rows)
        return record

    async def approve_legal_request(
        self, request_id: str, reviewer_id: str, at: datetime
    ) -> LegalRequestRecord | None:
        require_aware(at, "at")
        async with self._transaction("record an approval") as tx:
            record = await self._locked_legal_request(tx, request_id)
            if record is None:
                return None
            if (conflict := review_conflict(record, reviewer_id, "approve")) is not None:
                raise ConflictError(conflict)
            await tx.run(
                self._sql.insert_approval, (request_id, reviewer_id, self._encode.time(at))
            )
            approvals = (*record.approvals, Approval(reviewer_id, at))
            status = legal_request_status(record, approvals)
            if status != record.status:
                await tx.run(self._sql.set_legal_request_status, (status, request_id))
        return replace(record, status=status, approvals=approvals)

    async def reject_legal_request(
        self, request_id: str, rejection: Rejection
    ) -> LegalRequestRecord | None:
        require_aware(rejection.at, "at")
        async with self._transaction("record a rejection") as tx:
            record = await self._locked_legal_request(tx, request_id)
            if record is None:
                return None
            if (conflict := review_conflict(record, rejection.reviewer_id, "reject")) is not None:
                raise ConflictError(conflict)
            await tx.run(
                self._sql.insert_rejection,
                (
                    request_id,
                    rejection.reviewer_id,
                    rejection.reason,
                    self._encode.time(rejection.at),
                ),
            )
        return replace(record, status="rejected", rejection=rejection)

    async def list_legal_requests(self, status: str | None = None) -> list[LegalRequestRecord]:
        action = "list lawful requests"
        if status is None:
            select = self._legal_requests_select + self._legal_requests_order
            rows = await self._rows(action, select)
        else:
            where = self._legal_requests_where(f"{LEGAL_REQUEST_STATUS} = ?")
            rows = await self._rows(action, where, (status,))
        return self._legal_request_records(rows)

    # -- partner suspensions ------------------------------------------------------------

    async def suspend_partner(self, suspension: Suspension) -> Suspension:
        require_aware(suspension.at, "at")
        sql = self._sql
        values = (
            suspension.partner_id,
            suspension.reason,
            suspension.by,
            self._encode.time(suspension.at),
        )
        async with self._transaction("suspend a partner") as tx:
            if await tx.run(sql.insert_suspension, values) == 1:
                await tx.run(sql.suspend_event, values)
                return suspension
            # The conflicting row; suspensions are only deleted by resume.
            [row] = await tx.rows(sql.suspension, (suspension.partner_id,))
        return mapping.suspension(row, self._decode)

    async def resume_partner(
        self, partner_id: str, actor: str, reason: str, at: datetime
    ) -> Suspension | None:
        require_aware(at, "at")
        async with self._transaction("resume a partner") as tx:
            rows = await tx.rows(self._sql.delete_suspension, (partner_id,))
            if not rows:
                return None
            await tx.run(self._sql.resume_event, (partner_id, reason, actor, self._encode.time(at)))
        return mapping.suspension(rows[0], self._decode)

    async def partner_suspensions(self) -> dict[str, Suspension]:
        rows = await self._rows("read partner suspensions", self._sql.suspensions)
        return {str(r[0]): mapping.suspension(r, self._decode) for r in rows}

    async def suspension_history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]:
        check_search_limit(limit)
        action = "read the suspension history"
        if partner_id is None:
            rows = await self._rows(action, self._sql.suspension_events, (limit,))
        else:
            rows = await self._rows(
                action, self._sql.suspension_events_of_partner, (partner_id, limit)
            )
        return [mapping.suspension_event(r, self._decode) for r in rows]

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

    async def prune_idempotency_keys(self, claimed_before: datetime) -> int:
        require_aware(claimed_before, "claimed_before")
        before = self._encode.time(claimed_before)
        pruned = 0
        while True:
            deleted = await self._run(
                "prune idempotency keys",
                self._sql.prune_idempotency_keys,
                (before, PRUNE_BATCH),
            )
            pruned += deleted
            if deleted < PRUNE_BATCH:
                return pruned

    # -- disclosure log -----------------------------------------------------------------

    # -- the projection of the search columns (gateway.store.projection) ----------------

    async def project_log(self) -> int:
        # Read first: a reader that finds nothing to project takes no lock (SQLite's one
        # writer is the log's too): the usual read costs this one statement.
        action = "project the disclosure log"
        mark, end = await self._mark_and_end(action)
        if mark >= end:
            return int(mark)
        # One pass at a time in this process; other processes are kept out by the mark.
        async with self._projecting:
            while True:
                mark, done = await self._project_batch(action)
                if done:
                    return mark

    async def _mark_and_end(self, action: str) -> tuple[int, int]:
        """The projection's mark and the log's end, in one read."""
        [(mark, end)] = await self._rows(action, projection.MARK_AND_END)
        return int(mark), int(end)

    async def _project_batch(self, action: str) -> tuple[int, bool]:
        """Project the next PROJECT_BATCH entries above the mark at most: the mark after,
        and whether the log's end was reached."""
        [(start,)] = await self._rows(action, projection.MARK)
        start = int(start)
        entries = await self._rows(
            action, self._in_dialect(projection.NEXT_ENTRIES), (start, projection.PROJECT_BATCH)
        )
        if not entries:
            return start, True
        # Derived before the write transaction: the lock is held for the inserts only.
        rows = []
        time = self._encode.time
        for index, data in entries:
            try:
                c = projection.columns_of_bytes(bytes(data))
            except NotAnEntry:
                continue  # no row: `log verify` names the entry
            rows.append(
                (
                    index,
                    c.kind,
                    c.disclosure_id,
                    c.subject_ref,
                    c.partner,
                    time(c.time),
                    c.purpose,
                    c.legal_basis,
                    c.outcome,
                    c.consent_id,
                )
            )
        end = int(entries[-1][0]) + 1
        await self._write_projection(action, start, end, rows)
        return end, len(entries) < projection.PROJECT_BATCH

    async def _write_projection(
        self, action: str, start: int, end: int, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Move the projection's mark from `start` to `end` and insert `rows` (the
        columns of the entries between), in one transaction; nothing if another pass
        moved the mark first."""
        async with self._transaction(action) as tx:
            if await tx.run(self._in_dialect(projection.SET_MARK), (end, start)):
                await tx.run_many(self._in_dialect(projection.INSERT_ROW), rows)

    async def projected_size(self) -> int:
        [(mark,)] = await self._rows("read the projection's mark", projection.MARK)
        return int(mark)

    async def rebuild_projection(self) -> int:
        async with self._transaction("clear the projection of the disclosure log") as tx:
            await tx.run(projection.CLEAR)
            await tx.run(projection.CLEAR_MARK)
        return await self.project_log()

    # -- disclosure log -----------------------------------------------------------------

    async def read_log(self, start: int, end: int) -> list[LogEntry]:
        rows = await self._rows("read the disclosure log", self._sql.log_range, (start, end))
        return mapping.entries(rows)

    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]:
        await self.project_log()
        rows = await self._rows(
            "read the disclosure log", self._sql.log_of_disclosure, (disclosure_id,)
        )
        return mapping.entries(rows)

    async def log_entries_for_disclosures(self, disclosure_ids: Sequence[str]) -> list[LogEntry]:
        if not disclosure_ids:
            return []
        await self.project_log()
        sql, params = self._of_disclosures(disclosure_ids)
        rows = await self._rows("read the disclosure log", sql, params)
        return mapping.entries(rows)

    async def consent_intents(
        self, consent_id: str, since: datetime, after_index: int, limit: int
    ) -> list[LogEntry]:
        require_aware(since, "since")
        check_search_limit(limit)
        await self.project_log()
        rows = await self._rows(
            "read the disclosure log",
            self._sql.consent_intents,
            (consent_id, after_index, self._encode.time(since), limit),
        )
        return mapping.entries(rows)

    async def intents_without_outcome(self) -> list[LogEntry]:
        await self.project_log()
        rows = await self._rows("read the disclosure log", self._sql.intents_without_outcome)
        return mapping.entries(rows)

    async def log_time_span(self) -> tuple[datetime, datetime] | None:
        await self.project_log()
        rows = await self._rows("read the disclosure log", self._sql.log_time_span)
        first, last = rows[0][0], rows[0][1]
        return None if first is None else (self._decode.time(first), self._decode.time(last))

    async def partner_exposure(
        self, partner: str, since: datetime, until: datetime
    ) -> tuple[ExposureTotals, list[ExposureCount], list[ExposureCount]]:
        action = "count a partner's exposure"
        await self.project_log()
        window = (partner, self._encode.time(since), self._encode.time(until))
        totals = (await self._rows(action, self._exposure.totals, window))[0]
        fields = await self._rows(action, self._exposure.fields, window)
        categories = await self._rows(action, self._exposure.categories, window)
        return (
            ExposureTotals(int(totals[0]), int(totals[1]), int(totals[2])),
            [ExposureCount(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in fields],
            [ExposureCount(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in categories],
        )

    async def exposure_subject_refs(
        self, partner: str, since: datetime, until: datetime, after: str, limit: int
    ) -> list[SubjectRefCount]:
        params = (partner, self._encode.time(since), self._encode.time(until), after, limit)
        await self.project_log()
        rows = await self._rows("read a partner's exposure", self._exposure.subject_refs, params)
        return [SubjectRefCount(str(r[0]), int(r[1]), r[2] == "sent") for r in rows]

    async def ropa_counts(self, since: datetime, until: datetime) -> RopaCounts:
        require_aware(since, "since")
        require_aware(until, "until")
        await self.roll_up_log()
        periods, parts = _window_parts(since, until)
        enc = self._encode.time
        params = (*periods, *(enc(t) for part in parts for t in part))
        action = "count the record of processing"
        ropa = self._ropa
        rows = await self._rows(action, self._in_dialect(ropa.rows), params)
        fields = await self._rows(action, self._in_dialect(ropa.fields), params)
        consents = {
            tuple(r[:4]): (int(r[4]), int(r[5]))
            for r in await self._rows(action, self._in_dialect(ropa.consents), params)
        }
        t = self._decode.time
        return RopaCounts(
            rows=tuple(
                RopaRowCount(
                    str(r[0]),
                    str(r[1]),
                    str(r[2]),
                    str(r[3]),
                    int(r[4]),
                    t(r[5]),
                    t(r[6]),
                    *consents.get(tuple(r[:4]), (0, 0)),
                )
                for r in rows
            ),
            fields=tuple(
                RopaFieldCount(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]))
                for r in fields
            ),
        )

    # -- the per-day rollups of the log (rollup_sql) -------------------------------------

    @property
    def _rollups(self) -> tuple[Rollup, ...]:
        return (*self._ropa.rollups, *summary_sql.summary_rollups(self._summary))

    async def roll_up_log(self, progress: Progress | None = None) -> int:
        # Read first: a reader that finds nothing to count takes no write lock (SQLite's
        # one writer is the log's too).
        action = "count the disclosure log"
        await self.project_log()
        [(mark,)] = await self._rows(action, rollup_sql.MARK)
        [(size,)] = await self._rows(action, rollup_sql.LOG_END)
        if int(mark) >= int(size):
            return int(mark)
        while True:
            mark, size, done = await self._roll_up_batch()
            if progress is not None:
                progress(mark, size)
            if done:
                return mark

    async def _roll_up_batch(self) -> tuple[int, int, bool]:
        """Count the next ROLLUP_BATCH entries at most: the mark after, the log's size,
        and whether it is the end of the log."""
        action = "count the disclosure log"
        [(start,)] = await self._rows(action, rollup_sql.MARK)
        [(size,)] = await self._rows(action, rollup_sql.LOG_END)
        start, size = int(start), int(size)
        end = min(size, start + ROLLUP_BATCH)
        if end <= start:
            return start, size, True
        # Counted before the write transaction, which holds SQLite's one writer (the
        # log's too) for the upserts only: counting under it held every disclosure's
        # intent commit for about 300 ms once a minute (the soak's p99). The entries below
        # the projection's mark never change, so a count read outside it is the same.
        counted = [
            rollup_sql.plain_rows(
                await self._long_rows(action, self._in_dialect(r.counted), (start, end))
            )
            for r in self._rollups
        ]
        async with self._transaction(action) as tx:
            # Moved from `start` or not at all: a reader (or instance) that counted the
            # range first wins, and this count is dropped; the caller reads the mark again.
            if not await tx.run(self._in_dialect(rollup_sql.SET_MARK), (end, start)):
                return start, size, False
            for rollup, rows in zip(self._rollups, counted, strict=True):
                if rows:
                    await tx.run_many(self._in_dialect(rollup.upsert), rows)
        return end, size, end == size

    async def rebuild_rollup(self, progress: Progress | None = None) -> int:
        async with self._transaction("clear the counts of the disclosure log") as tx:
            for rollup in self._rollups:
                await tx.run(rollup.clear)
            await tx.run(rollup_sql.CLEAR_MARK)
        return await self.roll_up_log(progress)

    async def check_rollup(self, progress: Progress | None = None) -> tuple[int, list[str]]:
        action = "check the counts of the disclosure log"
        mark_sql = rollup_sql.MARK
        while True:
            # The tables as of one mark, without holding a lock while the entries are
            # counted: a catch-up between the two reads of the mark means reading again.
            [(mark,)] = await self._rows(action, mark_sql)
            stored = [await self._rows(action, rollup.stored) for rollup in self._rollups]
            [(again,)] = await self._rows(action, mark_sql)
            if again == mark:
                break
        # The entries below the mark never change (the log is append-only): counted at
        # leisure, a range per statement (one over ten million entries outlasts
        # PostgreSQL's command timeout and holds a snapshot as long), they are what the
        # tables must hold.
        tallies = [rollup_sql.Tally(rollup) for rollup in self._rollups]
        for start, end in rollup_sql.ranges(0, int(mark), RECOUNT_RANGE):
            for tally in tallies:
                counted = self._in_dialect(tally.rollup.counted)
                tally.add(await self._long_rows(action, counted, (start, end)))
            if progress is not None:
                progress(end, int(mark))
        differ: list[str] = []
        for tally, rows in zip(tallies, stored, strict=True):
            missing, extra = tally.difference(rows)
            if missing or extra:
                differ.append(
                    f"{tally.rollup.table}: {missing} row(s) the entries give are not stored, "
                    f"{extra} stored row(s) the entries do not give"
                )
        return int(mark), differ

    async def read_log_records(self, start: int, limit: int) -> list[LogRecord]:
        rows = await self._rows("read the disclosure log", self._sql.log_records, (start, limit))
        return mapping.log_records(rows)

    async def read_log_rows(self, start: int, limit: int) -> list[StoredLogRow]:
        rows = await self._rows(
            "read the disclosure log", self._sql.log_rows, (start, start, limit)
        )
        return mapping.log_rows(rows, self._decode)

    async def log_rows_without_leaf_hash(self, limit: int) -> list[LogEntry]:
        rows = await self._rows("read the disclosure log", self._sql.unhashed_log_rows, (limit,))
        return mapping.entries(rows)

    # -- the overview's counts (summary_sql) ---------------------------------------------

    async def decisions_by_day(self, since: datetime) -> list[DayCount]:
        rows = await self._summary_rows(summary_sql.DECISIONS_BY_DAY, since)
        return [DayCount(date.fromisoformat(str(r[0])), str(r[1]), int(r[2])) for r in rows]

    async def refusals_by_problem(self, since: datetime) -> list[KeyCount]:
        rows = await self._summary_rows(summary_sql.REFUSALS_BY_PROBLEM, since)
        return [KeyCount(str(r[0]), int(r[1])) for r in rows]

    async def decisions_by_partner(self, since: datetime, limit: int) -> list[KeyCount]:
        rows = await self._summary_rows(summary_sql.DECISIONS_BY_PARTNER, since, limit)
        return [KeyCount(str(r[0]), int(r[1])) for r in rows]

    async def _summary_rows(self, sql: str, since: datetime, *params: object) -> list[Any]:
        require_aware(since, "since")
        await self.roll_up_log()
        day = since.astimezone(UTC).date().isoformat()
        return await self._rows("count the disclosure log", self._in_dialect(sql), (day, *params))

    # -- instances ----------------------------------------------------------------------

    async def list_instances(self) -> list[InstanceRecord]:
        rows = await self._rows("list instances", self._sql.instances)
        return [mapping.instance(r, self._decode) for r in rows]

    async def prune_instances(self, recovered_before: datetime) -> int:
        require_aware(recovered_before, "recovered_before")
        return await self._run(
            "prune instances", self._sql.prune_instances, (self._encode.time(recovered_before),)
        )

    # -- checkpoints --------------------------------------------------------------------

    async def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        require_aware(at, "at")
        await self._run(
            "store a checkpoint", self._sql.insert_checkpoint, (size, note, self._encode.time(at))
        )

    async def add_checkpoint_after(
        self, previous_seq: int | None, size: int, note: str, at: datetime
    ) -> bool:
        require_aware(at, "at")
        # The write transaction (and the lock) holds from the read to the insert, across
        # processes and instances.
        async with self._transaction("store a checkpoint") as tx:
            if self._lock_checkpoints is not None:
                await tx.rows(self._lock_checkpoints)
            [(latest,)] = await tx.rows(self._sql.latest_checkpoint_seq)
            if (None if latest is None else int(latest)) != previous_seq:
                return False
            await tx.run(self._sql.insert_checkpoint, (size, note, self._encode.time(at)))
        return True

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._rows("read checkpoints", self._sql.latest_checkpoint)
        return mapping.checkpoint(rows[0], self._decode) if rows else None

    async def checkpoints(self) -> list[StoredCheckpoint]:
        rows = await self._rows("read checkpoints", self._sql.checkpoints)
        return [mapping.checkpoint(r, self._decode) for r in rows]

    # -- witnessing ---------------------------------------------------------------------

    async def witness_sizes(self) -> dict[str, WitnessSize]:
        rows = await self._rows("read witness sizes", self._sql.witness_sizes)
        return {r.witness: r for r in (mapping.witness_size(row, self._decode) for row in rows)}

    async def record_witnessing(
        self, seq: int, cosigned_note: str | None, sizes: Mapping[str, int], at: datetime
    ) -> None:
        require_aware(at, "at")
        async with self._transaction("store what the witnesses cosigned") as tx:
            if cosigned_note is not None:
                await tx.run(self._sql.set_cosigned_note, (cosigned_note, seq))
            await tx.run_many(
                self._sql.upsert_witness_size,
                [(name, size, seq, self._encode.time(at)) for name, size in sizes.items()],
            )

    async def cosigned_checkpoints(self, limit: int) -> list[StoredCheckpoint]:
        rows = await self._rows("read checkpoints", self._sql.cosigned_checkpoints, (limit,))
        return [mapping.checkpoint(r, self._decode) for r in rows]

    async def checkpoint_by_seq(self, seq: int) -> StoredCheckpoint | None:
        rows = await self._rows("read checkpoints", self._sql.checkpoint_by_seq, (seq,))
        return mapping.checkpoint(rows[0], self._decode) if rows else None

    def _witness_alarm(self, row: Any) -> WitnessAlarm:
        return WitnessAlarm(
            str(row[0]), int(row[1]), int(row[2]), str(row[3]), self._decode.time(row[4])
        )

    async def witness_alarms(self) -> list[WitnessAlarm]:
        rows = await self._rows("read witness alarms", self._sql.witness_alarms)
        return [self._witness_alarm(r) for r in rows]

    async def raise_witness_alarm(self, alarm: WitnessAlarm) -> None:
        require_aware(alarm.raised_at, "raised_at")
        await self._run(
            "keep a witness alarm",
            self._sql.upsert_witness_alarm,
            (
                alarm.witness,
                alarm.witness_size,
                alarm.log_size,
                alarm.reason,
                self._encode.time(alarm.raised_at),
            ),
        )

    async def clear_witness_alarm(self, witness: str) -> WitnessAlarm | None:
        rows = await self._rows(
            "clear a witness alarm", self._sql.delete_witness_alarm, (witness,), write=True
        )
        return self._witness_alarm(rows[0]) if rows else None

    # -- the notice outbox ----------------------------------------------------------------

    def _outbox_params(self, n: OutboxNotice) -> tuple[object, ...]:
        """`n` bound in the order of statements._OUTBOX_COLUMNS."""
        t = self._encode.opt_time
        return (
            n.id,
            n.kind,
            n.partner,
            n.operation,
            n.reference,
            n.payload,
            n.status,
            n.attempts,
            self._encode.time(require_aware(n.created_at, "created_at")),
            self._encode.time(require_aware(n.next_at, "next_at")),
            n.last_error,
            n.disclosure_id,
            n.lease_owner,
            t(n.lease_until),
            t(n.done_at),
        )

    async def add_outbox_notice(self, notice: OutboxNotice) -> None:
        await self._run(
            "store an outbox notice", self._sql.insert_outbox_notice, self._outbox_params(notice)
        )

    async def outbox_notices(
        self, statuses: Sequence[str] | None = None, limit: int = 1000
    ) -> list[OutboxNotice]:
        # Three placeholders, one per status; fewer statuses repeat the last (never empty).
        wanted = list(OUTBOX_STATUSES if statuses is None else statuses) or [""]
        wanted += [wanted[-1]] * (len(OUTBOX_STATUSES) - len(wanted))
        rows = await self._rows(
            "read the notice outbox", self._sql.outbox_notices, (*wanted[:3], limit)
        )
        return [mapping.outbox_notice(r, self._decode) for r in rows]

    async def outbox_notice(self, notice_id: str) -> OutboxNotice | None:
        rows = await self._rows("read the notice outbox", self._sql.outbox_notice, (notice_id,))
        return mapping.outbox_notice(rows[0], self._decode) if rows else None

    async def claim_outbox_notice(
        self, notice_id: str, owner: str, now: datetime, until: datetime, *, due_only: bool
    ) -> OutboxNotice | None:
        at = self._encode.time(require_aware(now, "now"))
        # Not due_only (a person's retry): whenever its next attempt was planned.
        due = at if due_only else self._encode.time(_NEVER)
        async with self._transaction("claim an outbox notice") as tx:
            changed = await tx.run(
                self._sql.claim_outbox_notice,
                (owner, self._encode.time(until), notice_id, at, due),
            )
            if not changed:
                return None
            rows = await tx.rows(self._sql.outbox_notice, (notice_id,))
        return mapping.outbox_notice(rows[0], self._decode)

    async def finish_outbox_attempt(self, notice: OutboxNotice, owner: str) -> bool:
        changed = await self._run(
            "store an outbox attempt",
            self._sql.finish_outbox_attempt,
            (
                notice.status,
                notice.attempts,
                self._encode.time(notice.next_at),
                notice.last_error,
                notice.disclosure_id,
                self._encode.opt_time(notice.done_at),
                notice.id,
                owner,
            ),
        )
        return changed == 1

    # -- personal API tokens (schema 13) -------------------------------------------------

    async def add_personal_token(self, token: PersonalToken) -> None:
        await self._run(
            "store a personal token",
            self._sql.insert_personal_key,
            (
                token.id,
                token.person,
                self._encode.set(token.roles),
                token.token_hash,
                self._encode.time(require_aware(token.created_at, "created_at")),
                self._encode.time(require_aware(token.expires_at, "expires_at")),
                self._encode.opt_time(token.revoked_at),
            ),
        )

    async def personal_token_by_hash(self, token_hash: str) -> PersonalToken | None:
        rows = await self._rows(
            "read personal tokens", self._sql.personal_token_by_hash, (token_hash,)
        )
        return mapping.personal_token(rows[0], self._decode) if rows else None

    async def personal_tokens_of(self, person: str, limit: int = 100) -> list[PersonalToken]:
        rows = await self._rows(
            "read personal tokens", self._sql.personal_tokens_of, (person, limit)
        )
        return [mapping.personal_token(r, self._decode) for r in rows]

    async def revoke_personal_token(self, token_id: str, person: str, at: datetime) -> bool:
        changed = await self._run(
            "revoke a personal token",
            self._sql.revoke_personal_key,
            (self._encode.time(require_aware(at, "at")), token_id, person),
        )
        return changed == 1

    # -- a consent's lapse claimed (schema 15) ----------------------------------------------

    async def consent_lapse_claim(self, consent_id: str) -> datetime | None:
        rows = await self._rows(
            "read a consent's lapse claim", self._sql.consent_lapse_claim, (consent_id,)
        )
        return self._decode.opt_time(rows[0][0]) if rows else None

    async def claim_consent_lapse(
        self, consent_id: str, at: datetime, over: datetime | None = None
    ) -> bool:
        claimed = self._encode.time(require_aware(at, "at"))
        params: tuple[object, ...] = (claimed, consent_id)
        sql = self._sql.claim_consent_lapse
        if over is not None:
            sql = self._sql.take_over_consent_lapse
            params = (*params, self._encode.time(require_aware(over, "over")))
        return await self._run("claim a consent's lapse", sql, params) == 1

    # -- review-site sessions (schema 15) ---------------------------------------------------

    async def add_review_session(
        self, session_id: str, person: str, created_at: datetime, expires_at: datetime
    ) -> None:
        # Expired rows are the retention sweep's to delete (prune_expired_review_sessions),
        # not a sign-in's: one statement on the way in.
        await self._run(
            "store a review session",
            self._sql.insert_review_session,
            (
                session_id,
                person,
                self._encode.time(require_aware(created_at, "created_at")),
                self._encode.time(require_aware(expires_at, "expires_at")),
            ),
        )

    async def review_session_live(self, session_id: str, person: str, now: datetime) -> bool:
        rows = await self._rows(
            "read a review session",
            self._sql.review_session_live,
            (session_id, person, self._encode.time(require_aware(now, "now"))),
        )
        return bool(rows)

    async def end_review_session(self, session_id: str, person: str, at: datetime) -> bool:
        changed = await self._run(
            "end a review session",
            self._sql.end_review_session,
            (self._encode.time(require_aware(at, "at")), session_id, person),
        )
        return changed == 1

    async def live_review_sessions_of(self, person: str, now: datetime) -> int:
        rows = await self._rows(
            "count review sessions",
            self._sql.live_review_sessions_of,
            (person, self._encode.time(require_aware(now, "now"))),
        )
        return int(rows[0][0])

    async def end_review_sessions_of(self, person: str, at: datetime) -> int:
        when = self._encode.time(require_aware(at, "at"))
        return await self._run(
            "end review sessions", self._sql.end_review_sessions_of, (when, person, when)
        )

    # -- retention of sessions and delivered notices ----------------------------------------

    async def prune_expired_review_sessions(self, now: datetime) -> int:
        return await self._prune(
            "prune review sessions", self._sql.prune_expired_review_sessions, now
        )

    async def prune_sent_notices(self, done_before: datetime) -> int:
        return await self._prune("prune sent notices", self._sql.prune_sent_notices, done_before)

    async def _prune(self, action: str, sql: str, before: datetime) -> int:
        bound = self._encode.time(require_aware(before, "before"))
        pruned = 0
        while True:
            deleted = await self._run(action, sql, (bound, PRUNE_BATCH))
            pruned += deleted
            if deleted < PRUNE_BATCH:
                return pruned


def _window_parts(
    since: datetime, until: datetime
) -> tuple[tuple[str, ...], tuple[tuple[datetime, datetime], ...]]:
    """[since, until) as the ranges ropa_sql reads: its whole UTC months [first, last)
    (YYYY-MM), its whole days before and after them (two ranges of YYYY-MM-DD), and its
    partial first and last day (two ranges of times). An empty range is [x, x)."""
    first = _midnight(since)
    if first < since:
        first += timedelta(days=1)
    last = _midnight(until)
    if first >= last:  # no whole day: all of it is one partial range
        none = first.date().isoformat()
        return (none[:7], none[:7], none, none, none, none), ((since, until), (until, until))
    day_one, day_last = first.date(), last.date()
    month_one = day_one if day_one.day == 1 else _next_month(day_one)
    month_last = day_last.replace(day=1)
    if month_one >= month_last:  # no whole month
        month_one = month_last = day_last
    months = (month_one.isoformat()[:7], month_last.isoformat()[:7])
    days = (day_one, month_one, month_last, day_last)
    return (*months, *(d.isoformat() for d in days)), ((since, first), (last, until))


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _midnight(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date(), time(), UTC)
