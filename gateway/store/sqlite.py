"""SQLite adapter of the storage port: the embedded default, one file, no server.

One aiosqlite connection (its own thread) in WAL mode with ``synchronous=FULL``, so a
commit is on disk when it returns. Coroutines of one process share the connection, so
every operation holds an asyncio lock: without it, one coroutine's statements could
land inside another's open transaction. Writes use ``BEGIN IMMEDIATE``, which takes
SQLite's write lock at once; that also orders writers of other processes on the same
file (they wait up to the busy timeout), so the log's indexes stay gapless.

Sets are stored as sorted JSON arrays and times as fixed-width UTC ISO 8601 text,
which sorts like the times themselves.

sqlite3's and the file system's exceptions are translated here, once, into
:class:`~gateway.store.base.StoreUnavailable`; a duplicate id becomes ``conflict``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import aiosqlite

from gateway.errors import GatewayError
from gateway.facts import Consent, LegalRequest, SubjectFacts
from gateway.store.base import (
    Approval,
    IdempotencyClaim,
    JustificationRecord,
    LegalRequestRecord,
    LogEntry,
    LogRecord,
    LogRow,
    Migration,
    StoredCheckpoint,
    StoredResponse,
    StoreUnavailable,
    TreeHash,
    check_search_limit,
    facts_of,
    legal_request_status,
    require_aware,
)

__all__ = ["MIGRATIONS", "SqliteStore"]

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "consents, subjects, lawful requests, idempotency keys, disclosure log, checkpoints",
        (
            """
            CREATE TABLE consents (
                id TEXT PRIMARY KEY,
                subject TEXT NOT NULL,
                purposes TEXT NOT NULL,
                partners TEXT NOT NULL,
                partner_categories TEXT NOT NULL,
                special_categories TEXT NOT NULL,
                policy_version TEXT NOT NULL,
                obtained_at TEXT NOT NULL,
                expires_at TEXT,
                withdrawn_at TEXT,
                method TEXT NOT NULL,
                evidence TEXT NOT NULL
            )
            """,
            "CREATE INDEX consents_by_subject ON consents (subject)",
            """
            CREATE TABLE subjects (
                subject TEXT PRIMARY KEY,
                restricted INTEGER NOT NULL DEFAULT 0,
                restriction_reason TEXT NOT NULL DEFAULT '',
                restriction_changed_at TEXT,
                date_of_birth TEXT
            )
            """,
            """
            CREATE TABLE legal_requests (
                id TEXT PRIMARY KEY,
                authority TEXT NOT NULL,
                reference TEXT NOT NULL,
                instrument TEXT NOT NULL,
                subjects TEXT NOT NULL,
                partners TEXT NOT NULL,
                received_at TEXT NOT NULL,
                registered_by TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'approved'))
            )
            """,
            "CREATE INDEX legal_requests_by_status ON legal_requests (status, received_at)",
            """
            CREATE TABLE legal_request_approvals (
                request_id TEXT NOT NULL REFERENCES legal_requests (id),
                reviewer_id TEXT NOT NULL,
                approved_at TEXT NOT NULL,
                PRIMARY KEY (request_id, reviewer_id)
            )
            """,
            """
            CREATE TABLE idempotency_keys (
                caller_id TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                claimed_at TEXT NOT NULL,
                completed INTEGER NOT NULL DEFAULT 0,
                status INTEGER,
                headers TEXT,
                body BLOB,
                PRIMARY KEY (caller_id, key)
            )
            """,
            # idx is the rowid: appends and range reads walk the table's own b-tree.
            """
            CREATE TABLE log_entries (
                idx INTEGER PRIMARY KEY CHECK (idx >= 0),
                entry BLOB NOT NULL,
                kind TEXT NOT NULL,
                disclosure_id TEXT NOT NULL,
                subject_ref TEXT,
                partner TEXT,
                logged_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX log_entries_by_disclosure ON log_entries (disclosure_id, kind)",
            "CREATE INDEX log_entries_by_subject ON log_entries (subject_ref, idx)",
            "CREATE INDEX log_entries_by_partner ON log_entries (partner, idx)",
            "CREATE INDEX log_entries_by_kind ON log_entries (kind, idx)",
            "CREATE INDEX log_entries_by_time ON log_entries (logged_at)",
            """
            CREATE TABLE checkpoints (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                size INTEGER NOT NULL CHECK (size >= 0),
                note TEXT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "disclosure log: leaf hashes, search columns, Merkle subtree hashes",
        (
            "ALTER TABLE log_entries ADD COLUMN leaf_hash BLOB "
            "CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32)",
            "ALTER TABLE log_entries ADD COLUMN purpose TEXT",
            "ALTER TABLE log_entries ADD COLUMN legal_basis TEXT",
            "ALTER TABLE log_entries ADD COLUMN outcome TEXT",
            # Rows of schema 1 get their search columns from their own JSON; their leaf
            # hashes are filled in by gateway.log (storage never hashes).
            """
            UPDATE log_entries SET
                purpose = json_extract(CAST(entry AS TEXT), '$.purpose'),
                legal_basis = json_extract(CAST(entry AS TEXT), '$.legal_basis'),
                outcome = CASE kind
                    WHEN 'refused' THEN 'refused'
                    WHEN 'outcome' THEN json_extract(CAST(entry AS TEXT), '$.outcome')
                END
            WHERE json_valid(CAST(entry AS TEXT))
            """,
            "CREATE INDEX log_entries_by_outcome ON log_entries (outcome, idx)",
            # Empty once every leaf hash is there, so finding none costs nothing.
            "CREATE INDEX log_entries_unhashed ON log_entries (idx) WHERE leaf_hash IS NULL",
            """
            CREATE TABLE log_nodes (
                level INTEGER NOT NULL CHECK (level > 0),
                idx INTEGER NOT NULL CHECK (idx >= 0),
                hash BLOB NOT NULL CHECK (length(hash) = 32),
                PRIMARY KEY (level, idx)
            ) WITHOUT ROWID
            """,
        ),
    ),
    Migration(
        3,
        "justifications of emergency disclosures",
        (
            """
            CREATE TABLE justifications (
                disclosure_id TEXT PRIMARY KEY,
                reviewer_id TEXT NOT NULL,
                text TEXT NOT NULL,
                at TEXT NOT NULL
            )
            """,
        ),
    ),
)

_SCHEMA_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at TEXT NOT NULL
    )
"""

# Column lists are spelled out in each statement so that every query is a constant.
_SELECT_CONSENTS = (
    "SELECT id, subject, purposes, partners, partner_categories, special_categories, "
    "policy_version, obtained_at, expires_at, withdrawn_at, method, evidence FROM consents"
)

# A LEFT JOIN, one row per approval (or one with NULLs), grouped in Python.
_LEGAL_REQUESTS = """
    SELECT l.id, l.authority, l.reference, l.instrument, l.subjects, l.partners,
           l.received_at, l.registered_by, l.status, a.reviewer_id, a.approved_at
    FROM legal_requests l
    LEFT JOIN legal_request_approvals a ON a.request_id = l.id
"""
_LEGAL_REQUESTS_ORDER = " ORDER BY l.received_at, l.id, a.approved_at, a.reviewer_id"

_UNIQUE_VIOLATIONS: Final = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}
)


def _describe(exc: BaseException) -> str:
    # The class and SQLite's error name only: messages may quote values.
    name = getattr(exc, "sqlite_errorname", None)
    return type(exc).__name__ + (f", {name}" if name else "")


@contextmanager
def _failures(action: str) -> Iterator[None]:
    """Translate a database or file-system failure while doing `action` into StoreUnavailable."""
    try:
        yield
    except GatewayError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnavailable(
            f"could not {action} in the SQLite database ({_describe(exc)}); check that the "
            "file named by storage.url is in a writable directory with free space and not "
            "locked by another program"
        ) from exc


@contextmanager
def _unique(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode in _UNIQUE_VIOLATIONS:
            raise GatewayError(
                "conflict", f"a {what} with this id already exists; use a new id"
            ) from None
        raise


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else _time(value)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_parse_time(text: str | None) -> datetime | None:
    return None if text is None else _parse_time(text)


def _set(values: Iterable[str]) -> str:
    return json.dumps(sorted(values), separators=(",", ":"))


def _parse_set(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


def _consent(row: Sequence[Any]) -> Consent:
    return Consent(
        id=row[0],
        subject=row[1],
        purposes=_parse_set(row[2]),
        partners=_parse_set(row[3]),
        partner_categories=_parse_set(row[4]),
        special_categories=_parse_set(row[5]),
        policy_version=row[6],
        obtained_at=_parse_time(row[7]),
        expires_at=_opt_parse_time(row[8]),
        withdrawn_at=_opt_parse_time(row[9]),
        method=row[10],
        evidence=row[11],
    )


def _legal_requests(rows: Iterable[Sequence[Any]]) -> list[LegalRequestRecord]:
    """Rows of _LEGAL_REQUESTS (ordered by request) → records with their approvals."""
    records: dict[str, LegalRequestRecord] = {}
    approvals: dict[str, list[Approval]] = {}
    for row in rows:
        request_id = row[0]
        if request_id not in records:
            records[request_id] = LegalRequestRecord(
                id=request_id,
                authority=row[1],
                reference=row[2],
                instrument=row[3],
                subjects=_parse_set(row[4]),
                partners=_parse_set(row[5]),
                received_at=_parse_time(row[6]),
                registered_by=row[7],
                status=row[8],
            )
            approvals[request_id] = []
        if row[9] is not None:
            approvals[request_id].append(Approval(row[9], _parse_time(row[10])))
    return [replace(r, approvals=tuple(approvals[r.id])) for r in records.values()]


def _entries(rows: Iterable[Sequence[Any]]) -> list[LogEntry]:
    return [(int(r[0]), bytes(r[1])) for r in rows]


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        size=int(row[0]), note=str(row[1]), at=_parse_time(row[2]), seq=int(row[3])
    )


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


# SQLite refuses compound statements of more than 500 SELECTs.
_MAX_UNION = 200


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


async def _enter_wal_mode(conn: aiosqlite.Connection, busy_timeout: float) -> None:
    # Switching the journal mode needs a moment alone with the file, and SQLite answers
    # SQLITE_BUSY at once (no busy handler) while another process is opening it too.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


class SqliteStore:
    """The storage port on one SQLite file (see the module docstring for the guarantees)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout: float = 5.0) -> SqliteStore:
        """A store on the file at `path` (created with its parent directories if missing).

        `path` may be ``":memory:"`` for a private in-memory database (tests, dry runs).
        `busy_timeout` is how long a write waits for another process's write lock.
        """
        with _failures("open the database file"):
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are begun and ended explicitly below.
            conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
            try:
                await _enter_wal_mode(conn, busy_timeout)
                await conn.execute("PRAGMA synchronous = FULL")
                await conn.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                await conn.close()
                raise
        return cls(conn)

    @asynccontextmanager
    async def _use(self, action: str, *, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, inside a transaction, for this coroutine alone."""
        async with self._lock:
            if self._closed:
                raise StoreUnavailable(f"could not {action}: the store is closed")
            with _failures(action):
                conn = self._conn
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    # Also after a failed COMMIT, which can leave the transaction open.
                    if conn.in_transaction:
                        await conn.rollback()
                    raise

    async def migrate(self) -> None:
        async with self._use("migrate the schema", write=True) as conn:
            await conn.execute(_SCHEMA_VERSION_TABLE)
            applied = {
                r[0] for r in await conn.execute_fetchall("SELECT version FROM schema_version")
            }
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, _time(datetime.now(UTC))),
                )

    async def schema_versions(self) -> list[int]:
        """The versions applied so far, ascending."""
        async with self._use("read the schema version", write=False) as conn:
            rows = await conn.execute_fetchall("SELECT version FROM schema_version ORDER BY 1")
        return [int(r[0]) for r in rows]

    async def ping(self) -> None:
        async with self._use("reach the database", write=False) as conn:
            await conn.execute_fetchall("SELECT count(*) FROM schema_version")

    async def close(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self._conn.close()

    # -- consents, restriction, profile -------------------------------------------------

    async def add_consent(self, consent: Consent) -> None:
        require_aware(consent.obtained_at, "obtained_at")
        async with self._use("store a consent", write=True) as conn:
            with _unique("consent"):
                await conn.execute(
                    "INSERT INTO consents (id, subject, purposes, partners, "
                    "partner_categories, special_categories, policy_version, obtained_at, "
                    "expires_at, withdrawn_at, method, evidence) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        consent.id,
                        consent.subject,
                        _set(consent.purposes),
                        _set(consent.partners),
                        _set(consent.partner_categories),
                        _set(consent.special_categories),
                        consent.policy_version,
                        _time(consent.obtained_at),
                        _opt_time(consent.expires_at),
                        _opt_time(consent.withdrawn_at),
                        consent.method,
                        consent.evidence,
                    ),
                )

    async def withdraw_consent(self, consent_id: str, at: datetime) -> Consent | None:
        require_aware(at, "at")
        async with self._use("withdraw a consent", write=True) as conn:
            rows = list(
                await conn.execute_fetchall(
                    "UPDATE consents SET withdrawn_at = coalesce(withdrawn_at, ?) WHERE id = ? "
                    "RETURNING id, subject, purposes, partners, partner_categories, "
                    "special_categories, policy_version, obtained_at, expires_at, "
                    "withdrawn_at, method, evidence",
                    (_time(at), consent_id),
                )
            )
        return _consent(rows[0]) if rows else None

    async def add_justification(self, record: JustificationRecord) -> bool:
        require_aware(record.at, "at")
        async with self._use("store a justification", write=True) as conn:
            cursor = await conn.execute(
                "INSERT INTO justifications (disclosure_id, reviewer_id, text, at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (disclosure_id) DO NOTHING",
                (record.disclosure_id, record.reviewer_id, record.text, _time(record.at)),
            )
            return cursor.rowcount == 1

    async def get_justification(self, disclosure_id: str) -> JustificationRecord | None:
        async with self._use("read a justification", write=False) as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT disclosure_id, reviewer_id, text, at FROM justifications "
                    "WHERE disclosure_id = ?",
                    (disclosure_id,),
                )
            )
        if not rows:
            return None
        row = rows[0]
        return JustificationRecord(row[0], row[1], row[2], _parse_time(row[3]))

    async def justified(self, disclosure_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        async with self._use("read justifications", write=False) as conn:
            for start in range(0, len(disclosure_ids), 500):
                chunk = list(disclosure_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = await conn.execute_fetchall(
                    "SELECT disclosure_id FROM justifications "  # noqa: S608 - placeholders only
                    f"WHERE disclosure_id IN ({marks})",
                    chunk,
                )
                found.update(str(r[0]) for r in rows)
        return found

    async def get_consent(self, consent_id: str) -> Consent | None:
        async with self._use("read a consent", write=False) as conn:
            rows = list(
                await conn.execute_fetchall(_SELECT_CONSENTS + " WHERE id = ?", (consent_id,))
            )
        return _consent(rows[0]) if rows else None

    async def consents_for_subject(self, subject: str) -> list[Consent]:
        async with self._use("read consents", write=False) as conn:
            rows = await conn.execute_fetchall(
                _SELECT_CONSENTS + " WHERE subject = ? ORDER BY obtained_at, id",
                (subject,),
            )
        return [_consent(r) for r in rows]

    async def set_restriction(
        self, subject: str, restricted: bool, reason: str, at: datetime
    ) -> None:
        require_aware(at, "at")
        async with self._use("store a restriction", write=True) as conn:
            await conn.execute(
                "INSERT INTO subjects (subject, restricted, restriction_reason, "
                "restriction_changed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (subject) DO UPDATE SET restricted = excluded.restricted, "
                "restriction_reason = excluded.restriction_reason, "
                "restriction_changed_at = excluded.restriction_changed_at",
                (subject, int(restricted), reason, _time(at)),
            )

    async def set_date_of_birth(self, subject: str, date_of_birth: date) -> None:
        async with self._use("store a date of birth", write=True) as conn:
            await conn.execute(
                "INSERT INTO subjects (subject, date_of_birth) VALUES (?, ?) "
                "ON CONFLICT (subject) DO UPDATE SET date_of_birth = excluded.date_of_birth",
                (subject, date_of_birth.isoformat()),
            )

    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        # In-process: three statements in one read transaction cost no network round trip.
        async with self._use("read the subject's facts", write=False) as conn:
            profile = list(
                await conn.execute_fetchall(
                    "SELECT restricted, date_of_birth FROM subjects WHERE subject = ?",
                    (subject,),
                )
            )
            consents = await conn.execute_fetchall(
                _SELECT_CONSENTS + " WHERE subject = ? ORDER BY obtained_at, id",
                (subject,),
            )
            requests = (
                []
                if legal_request_id is None
                else list(
                    await conn.execute_fetchall(
                        "SELECT id, status, subjects, partners FROM legal_requests WHERE id = ?",
                        (legal_request_id,),
                    )
                )
            )
        restricted, born = profile[0] if profile else (0, None)
        request = (
            LegalRequest(
                id=requests[0][0],
                status=requests[0][1],
                subjects=_parse_set(requests[0][2]),
                partners=_parse_set(requests[0][3]),
            )
            if requests
            else None
        )
        return facts_of(
            consents=[_consent(c) for c in consents],
            restricted=bool(restricted),
            date_of_birth=None if born is None else date.fromisoformat(born),
            legal_request=request,
        )

    # -- lawful requests ----------------------------------------------------------------

    async def add_legal_request(self, record: LegalRequestRecord) -> None:
        require_aware(record.received_at, "received_at")
        status = legal_request_status(record, record.approvals)
        async with self._use("store a lawful request", write=True) as conn:
            with _unique("lawful request"):
                await conn.execute(
                    "INSERT INTO legal_requests (id, authority, reference, instrument, "
                    "subjects, partners, received_at, registered_by, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.authority,
                        record.reference,
                        record.instrument,
                        _set(record.subjects),
                        _set(record.partners),
                        _time(record.received_at),
                        record.registered_by,
                        status,
                    ),
                )
            await conn.executemany(
                "INSERT OR IGNORE INTO legal_request_approvals "
                "(request_id, reviewer_id, approved_at) VALUES (?, ?, ?)",
                [(record.id, a.reviewer_id, _time(a.at)) for a in record.approvals],
            )

    async def get_legal_request(self, request_id: str) -> LegalRequestRecord | None:
        async with self._use("read a lawful request", write=False) as conn:
            rows = await conn.execute_fetchall(
                _LEGAL_REQUESTS + " WHERE l.id = ?" + _LEGAL_REQUESTS_ORDER, (request_id,)
            )
        records = _legal_requests(rows)
        return records[0] if records else None

    async def approve_legal_request(
        self, request_id: str, reviewer_id: str, at: datetime
    ) -> LegalRequestRecord | None:
        require_aware(at, "at")
        async with self._use("record an approval", write=True) as conn:
            rows = await conn.execute_fetchall(
                _LEGAL_REQUESTS + " WHERE l.id = ?" + _LEGAL_REQUESTS_ORDER, (request_id,)
            )
            if not rows:
                return None
            await conn.execute(
                "INSERT OR IGNORE INTO legal_request_approvals "
                "(request_id, reviewer_id, approved_at) VALUES (?, ?, ?)",
                (request_id, reviewer_id, _time(at)),
            )
            rows = await conn.execute_fetchall(
                _LEGAL_REQUESTS + " WHERE l.id = ?" + _LEGAL_REQUESTS_ORDER, (request_id,)
            )
            record = _legal_requests(rows)[0]
            status = legal_request_status(record, record.approvals)
            if status != record.status:
                await conn.execute(
                    "UPDATE legal_requests SET status = ? WHERE id = ?", (status, request_id)
                )
                record = replace(record, status=status)
        return record

    async def list_legal_requests(self, status: str | None = None) -> list[LegalRequestRecord]:
        async with self._use("list lawful requests", write=False) as conn:
            if status is None:
                rows = await conn.execute_fetchall(_LEGAL_REQUESTS + _LEGAL_REQUESTS_ORDER)
            else:
                rows = await conn.execute_fetchall(
                    _LEGAL_REQUESTS + " WHERE l.status = ?" + _LEGAL_REQUESTS_ORDER, (status,)
                )
        return _legal_requests(rows)

    # -- idempotency --------------------------------------------------------------------

    async def claim_idempotency(
        self, caller_id: str, key: str, request_hash: str
    ) -> IdempotencyClaim:
        async with self._use("claim an idempotency key", write=True) as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT request_hash, completed, status, headers, body "
                    "FROM idempotency_keys WHERE caller_id = ? AND key = ?",
                    (caller_id, key),
                )
            )
            if not rows:
                await conn.execute(
                    "INSERT INTO idempotency_keys (caller_id, key, request_hash, claimed_at) "
                    "VALUES (?, ?, ?, ?)",
                    (caller_id, key, request_hash, _time(datetime.now(UTC))),
                )
                return IdempotencyClaim("new")
        stored_hash, completed, status, headers, body = rows[0]
        if stored_hash != request_hash:
            return IdempotencyClaim("mismatch")
        if not completed:
            return IdempotencyClaim("in_progress")
        return IdempotencyClaim(
            "completed", StoredResponse(int(status), json.loads(headers), bytes(body))
        )

    async def complete_idempotency(
        self, caller_id: str, key: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        async with self._use("store an idempotent response", write=True) as conn:
            await conn.execute(
                "UPDATE idempotency_keys SET completed = 1, status = ?, headers = ?, body = ? "
                "WHERE caller_id = ? AND key = ?",
                (status, json.dumps(dict(headers), sort_keys=True), body, caller_id, key),
            )

    async def release_idempotency(self, caller_id: str, key: str) -> None:
        async with self._use("release an idempotency key", write=True) as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE caller_id = ? AND key = ? AND completed = 0",
                (caller_id, key),
            )

    # -- disclosure log -----------------------------------------------------------------

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        if not entries:
            return []
        for row in entries:
            require_aware(row.time, "time")
        async with self._use("append to the disclosure log", write=True) as conn:
            # BEGIN IMMEDIATE holds the write lock, so no other writer moves max(idx).
            rows = list(
                await conn.execute_fetchall("SELECT coalesce(max(idx) + 1, 0) FROM log_entries")
            )
            first = int(rows[0][0])
            await conn.executemany(
                "INSERT INTO log_entries (idx, entry, kind, disclosure_id, subject_ref, "
                "partner, logged_at, leaf_hash, purpose, legal_basis, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        first + i,
                        e.entry,
                        e.kind,
                        e.disclosure_id,
                        e.subject_ref,
                        e.partner,
                        _time(e.time),
                        e.leaf_hash,
                        e.purpose,
                        e.legal_basis,
                        e.outcome,
                    )
                    for i, e in enumerate(entries)
                ],
            )
        return list(range(first, first + len(entries)))

    async def log_size(self) -> int:
        async with self._use("read the log size", write=False) as conn:
            rows = list(
                await conn.execute_fetchall("SELECT coalesce(max(idx) + 1, 0) FROM log_entries")
            )
        return int(rows[0][0])

    async def read_log(self, start: int, end: int) -> list[LogEntry]:
        async with self._use("read the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(
                "SELECT idx, entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, end),
            )
        return _entries(rows)

    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]:
        async with self._use("read the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(
                "SELECT idx, entry FROM log_entries WHERE disclosure_id = ? ORDER BY idx",
                (disclosure_id,),
            )
        return _entries(rows)

    async def log_search(
        self,
        *,
        subject_ref: str | None = None,
        partner: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_index: int | None = None,
        limit: int = 100,
        subject_refs: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        purpose: str | None = None,
        legal_basis: str | None = None,
        outcome: str | None = None,
    ) -> list[LogEntry]:
        check_search_limit(limit)
        if (subject_refs is not None and not subject_refs) or (kinds is not None and not kinds):
            return []
        # Only the filters given become conditions, so SQLite can pick their indexes. With
        # a subject, a unary + keeps SQLite (which has no statistics) from walking the
        # kind or partner index instead of the far more selective subject index.
        by_subject = subject_ref is not None or subject_refs is not None
        other = "+" if by_subject else ""
        filters: list[tuple[str, Sequence[object]]] = [
            (condition, values)
            for condition, values in (
                ("subject_ref = ?", [] if subject_ref is None else [subject_ref]),
                (f"subject_ref IN ({_placeholders(subject_refs or [])})", subject_refs or []),
                (f"{other}partner = ?", [] if partner is None else [partner]),
                (f"{other}kind = ?", [] if kind is None else [kind]),
                (f"{other}kind IN ({_placeholders(kinds or [])})", kinds or []),
                ("purpose = ?", [] if purpose is None else [purpose]),
                ("legal_basis = ?", [] if legal_basis is None else [legal_basis]),
                (f"{other}outcome = ?", [] if outcome is None else [outcome]),
                (
                    f"{other}logged_at >= ?",
                    [] if since is None else [_time(require_aware(since, "since"))],
                ),
                (
                    f"{other}logged_at < ?",
                    [] if until is None else [_time(require_aware(until, "until"))],
                ),
                ("idx > ?", [] if after_index is None else [after_index]),
            )
            if values
        ]
        where = " AND ".join(condition for condition, _ in filters)
        # Conditions come from the fixed table above; every value is a bound parameter.
        sql = (
            "SELECT idx, entry FROM log_entries"  # noqa: S608
            + (f" WHERE {where}" if where else "")
            + " ORDER BY idx LIMIT ?"
        )
        params = [value for _, values in filters for value in values]
        async with self._use("search the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(sql, (*params, limit))
        return _entries(rows)

    async def intents_without_outcome(self) -> list[LogEntry]:
        async with self._use("read the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(
                "SELECT i.idx, i.entry FROM log_entries i WHERE i.kind = 'intent' "
                "AND NOT EXISTS (SELECT 1 FROM log_entries o "
                "WHERE o.disclosure_id = i.disclosure_id AND o.kind = 'outcome') "
                "ORDER BY i.idx"
            )
        return _entries(rows)

    async def log_time_span(self) -> tuple[datetime, datetime] | None:
        # Two subqueries: SQLite answers a lone min() or max() from the index, but scans
        # the whole table for both in one SELECT.
        async with self._use("read the disclosure log", write=False) as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT (SELECT min(logged_at) FROM log_entries), "
                    "(SELECT max(logged_at) FROM log_entries)"
                )
            )
        first, last = rows[0]
        return None if first is None else (_parse_time(first), _parse_time(last))

    async def read_log_records(self, start: int, limit: int) -> list[LogRecord]:
        async with self._use("read the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(
                "SELECT idx, entry, leaf_hash FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?",
                (start, limit),
            )
        return [(int(r[0]), bytes(r[1]), _opt_bytes(r[2])) for r in rows]

    async def log_rows_without_leaf_hash(self, limit: int) -> list[LogEntry]:
        async with self._use("read the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(
                "SELECT idx, entry FROM log_entries WHERE leaf_hash IS NULL ORDER BY idx LIMIT ?",
                (limit,),
            )
        return _entries(rows)

    async def set_leaf_hashes(self, hashes: Sequence[tuple[int, bytes]]) -> None:
        if not hashes:
            return
        async with self._use("store leaf hashes", write=True) as conn:
            await conn.executemany(
                "UPDATE log_entries SET leaf_hash = ? WHERE idx = ? AND leaf_hash IS NULL",
                [(h, i) for i, h in hashes],
            )

    # -- Merkle tree nodes --------------------------------------------------------------

    async def read_tree_hashes(self, ranges: Sequence[tuple[int, int, int]]) -> list[TreeHash]:
        found: list[TreeHash] = []
        async with self._use("read the log's tree hashes", write=False) as conn:
            for first in range(0, len(ranges), _MAX_UNION):
                parts: list[str] = []
                params: list[int] = []
                for level, start, end in ranges[first : first + _MAX_UNION]:
                    if level == 0:
                        parts.append(
                            "SELECT 0, idx, leaf_hash FROM log_entries WHERE idx >= ? AND idx < ?"
                        )
                        params += [start, end]
                    else:
                        parts.append(
                            "SELECT level, idx, hash FROM log_nodes "
                            "WHERE level = ? AND idx >= ? AND idx < ?"
                        )
                        params += [level, start, end]
                # Fixed parts, values bound: one trip to the database thread per chunk.
                rows = await conn.execute_fetchall(" UNION ALL ".join(parts), params)
                found += [(int(r[0]), int(r[1]), _opt_bytes(r[2])) for r in rows]
        return found

    async def add_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if not nodes:
            return
        async with self._use("store the log's tree hashes", write=True) as conn:
            await conn.executemany(
                "INSERT OR IGNORE INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
            )

    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]:
        if not levels:
            return []
        sql = " UNION ALL ".join(
            ["SELECT coalesce(max(idx) + 1, 0) FROM log_nodes WHERE level = ?"] * len(levels)
        )
        async with self._use("read the log's tree hashes", write=False) as conn:
            rows = await conn.execute_fetchall(sql, list(levels))
        return [int(r[0]) for r in rows]

    # -- checkpoints --------------------------------------------------------------------

    async def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        require_aware(at, "at")
        async with self._use("store a checkpoint", write=True) as conn:
            await conn.execute(
                "INSERT INTO checkpoints (size, note, created_at) VALUES (?, ?, ?)",
                (size, note, _time(at)),
            )

    async def add_checkpoint_after(
        self, previous_seq: int | None, size: int, note: str, at: datetime
    ) -> bool:
        require_aware(at, "at")
        # BEGIN IMMEDIATE holds the write lock from the read to the insert, across processes.
        async with self._use("store a checkpoint", write=True) as conn:
            rows = list(await conn.execute_fetchall("SELECT max(seq) FROM checkpoints"))
            latest = rows[0][0]
            if (None if latest is None else int(latest)) != previous_seq:
                return False
            await conn.execute(
                "INSERT INTO checkpoints (size, note, created_at) VALUES (?, ?, ?)",
                (size, note, _time(at)),
            )
        return True

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        async with self._use("read checkpoints", write=False) as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT size, note, created_at, seq FROM checkpoints ORDER BY seq DESC LIMIT 1"
                )
            )
        return _checkpoint(rows[0]) if rows else None

    async def checkpoints(self) -> list[StoredCheckpoint]:
        async with self._use("read checkpoints", write=False) as conn:
            rows = await conn.execute_fetchall(
                "SELECT size, note, created_at, seq FROM checkpoints ORDER BY seq"
            )
        return [_checkpoint(r) for r in rows]
