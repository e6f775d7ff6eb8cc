"""SQLite adapter of the storage port: the embedded default, one file, no server.

One aiosqlite connection (its own thread) in WAL mode with ``synchronous=FULL``, so a
commit is on disk when it returns. Coroutines of one process share the connection, so
every operation holds an asyncio lock: without it, one coroutine's statements could
land inside another's open transaction. Writes use ``BEGIN IMMEDIATE``, which takes
SQLite's write lock at once; that also orders writers of other processes on the same
file (they wait up to the busy timeout), so the log's indexes stay gapless.

What every disclosure does — read the subject's facts, append a batch of log entries
(and, every 256 entries, read a tile of leaf hashes and store its tree node) — goes
around aiosqlite, whose every statement is a trip to its thread: ~0.1 ms each, and
under load the thread waits for the GIL until the busy loop lets go of it (up to the
5 ms switch interval), which capped a loaded gateway at a few hundred disclosures per
second.

The facts, the log's size and small reads of tree hashes are therefore read on a plain
sqlite3 connection on the event loop's own thread, and log appends run on a third
connection in a thread of its own, one trip per group-commit batch
(:mod:`gateway.store.sqlite_connection`, which also translates sqlite3's exceptions).

Reads that take long (a range of the log counted for the rollups) go to a fourth
connection, opened when first needed, so that no disclosure's statement queues behind
one on aiosqlite's (`SqliteStore._long_rows`).

Reads take only their own connection's lock (WAL lets a read run beside a write on
another connection); writes, on whichever connection, also take the store's write lock,
so the process never waits on SQLite's own write lock.

Sets are stored as sorted JSON arrays and times as fixed-width UTC ISO 8601 text,
which sorts like the times themselves.

Only what SQLite does its own way is here; what it does as PostgreSQL does lives in
:mod:`gateway.store.sql_store` (whose ``_rows`` and ``_run`` this store serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from gateway.policy.facts import Consent, SubjectFacts
from gateway.store import mapping, projection, summary_sql
from gateway.store.exposure_sql import SQLITE_JSON, exposure_sql
from gateway.store.mapping import FROM_TEXT
from gateway.store.migrations import SQLITE, SQLITE_EPOCH, apply_migrations, migrations_for
from gateway.store.records import (
    Approval,
    IdempotencyClaim,
    LegalRequestRecord,
    LogEntry,
    LogQuery,
    LogRow,
    Migration,
    StoreUnavailable,
    TreeHash,
    facts_of,
    protected_column,
    require_aware,
)
from gateway.store.ropa_sql import JsonReads, ropa_sql
from gateway.store.search_sql import Dialect, count_rows, count_sql, found_rows, search_sql
from gateway.store.sql_store import Encoding, SqlStore, Transaction
from gateway.store.sqlite_connection import (
    Inline,
    InTransaction,
    Writer,
    failures,
    open_background_reader,
    open_connections,
    unique,
)
from gateway.store.statements import LEGAL_REQUEST_STATUS, REJECTION_JOIN, SQL

__all__ = ["MIGRATIONS", "SqliteStore"]

_T = TypeVar("_T")

# The stored form of the epoch (see _time): "never heard from".
_EPOCH: Final = SQLITE_EPOCH

MIGRATIONS: Final[tuple[Migration, ...]] = migrations_for(SQLITE)

_SCHEMA_VERSION_TABLE: Final = SQLITE.schema_version_table

# A LEFT JOIN, one row per approval (or one with NULLs), grouped in Python; the rejection
# (at most one) repeats on each.
_LEGAL_REQUESTS = f"""
    SELECT l.id, l.authority, l.reference, l.instrument, l.subjects, l.partners,
           l.received_at, l.registered_by, {LEGAL_REQUEST_STATUS}, l.sealed_subjects,
           r.reviewer_id, r.reason, r.rejected_at, a.reviewer_id, a.approved_at
    FROM legal_requests l{REJECTION_JOIN}
    LEFT JOIN legal_request_approvals a ON a.request_id = l.id
"""  # noqa: S608 - constant fragments only
_LEGAL_REQUEST_FACTS = (
    f"SELECT l.id, {LEGAL_REQUEST_STATUS}, l.subjects, l.partners "  # noqa: S608 - constants
    f"FROM legal_requests l{REJECTION_JOIN} WHERE l.id = ?"
)
_LEGAL_REQUESTS_ORDER = " ORDER BY l.received_at, l.id, a.approved_at, a.reviewer_id"


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _set(values: Iterable[str]) -> str:
    return json.dumps(sorted(values), separators=(",", ":"))


def _legal_requests(rows: Iterable[Sequence[Any]]) -> list[LegalRequestRecord]:
    """Rows of _LEGAL_REQUESTS (ordered by request) → records with their approvals."""
    firsts: dict[str, Sequence[Any]] = {}
    approvals: dict[str, list[Approval]] = {}
    for row in rows:
        if row[0] not in firsts:
            firsts[row[0]] = row
            approvals[row[0]] = []
        if row[13] is not None:
            approvals[row[0]].append(Approval(row[13], FROM_TEXT.time(row[14])))
    return [mapping.legal_request(row, approvals[i], FROM_TEXT) for i, row in firsts.items()]


@asynccontextmanager
async def _begun(conn: Inline | aiosqlite.Connection, begin: str) -> AsyncIterator[None]:
    """A transaction opened with `begin` on `conn`: committed, or rolled back on failure."""
    try:
        await conn.execute(begin)
    except BaseException:
        # Cancelled while aiosqlite's thread has yet to run the BEGIN, which it still will:
        # a rollback queued behind it ends that transaction, else every later statement on
        # the shared connection fails ("cannot start a transaction within a transaction").
        # After a BEGIN that failed, the rollback does nothing; the first error is the one told.
        with contextlib.suppress(sqlite3.Error):
            await conn.rollback()
        raise
    try:
        yield
        await conn.execute("COMMIT")
    except BaseException:
        # Also after a failed COMMIT, which can leave the transaction open.
        if conn.in_transaction:
            await conn.rollback()
        raise


# SQLite refuses compound statements of more than 500 SELECTs.
_MAX_UNION = 200
# Tree hashes read on the event loop's thread at most (~1 ms); more go to aiosqlite's.
_INLINE_READ_MAX = 4096


_NEXT_INDEX: Final = "SELECT coalesce(max(idx) + 1, 0) FROM log_entries"
# The entry and its leaf hash only: its search columns are projected after the commit.
_INSERT_ENTRY: Final = "INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)"
_INSERT_NODE: Final = "INSERT OR IGNORE INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)"


def _numbered(first: int, values: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(first + i, *row) for i, row in enumerate(values)]


def _append(conn: sqlite3.Connection, values: Sequence[tuple[Any, ...]]) -> int:
    """Insert log rows after the last one, in the caller's transaction; the first index."""
    first = int(conn.execute(_NEXT_INDEX).fetchone()[0])
    conn.executemany(_INSERT_ENTRY, _numbered(first, values))
    return first


def _project_rows(
    conn: sqlite3.Connection, start: int, end: int, rows: Sequence[Sequence[Any]]
) -> None:
    """Move the projection's mark from `start` to `end` and insert `rows`, in the
    caller's transaction (nothing if another pass moved the mark first)."""
    if conn.execute(projection.SET_MARK, (end, start)).rowcount:
        conn.executemany(projection.INSERT_ROW, rows)


def _as_written(sql: str) -> str:
    return sql


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


class _SqliteDialect(Dialect):
    """A log search in SQLite: ``?`` placeholders, ``IN (…)``, times as stored text."""

    # Columns with an index of their own besides the subject's (log_index_by_*).
    _INDEXED: Final = frozenset({"p.partner", "p.outcome", "p.logged_at"})

    def placeholder(self, position: int) -> str:
        return "?"

    def any_of(self, column: str, values: Sequence[str], position: int) -> tuple[str, list[object]]:
        return f"{column} IN ({_placeholders(values)})", list(values)

    def time(self, value: datetime) -> object:
        return _time(value)

    def column(self, name: str, *, by_subject: bool, in_window: bool = False) -> str:
        # With a subject, a unary + keeps SQLite (which has no statistics) from walking
        # the partner or outcome index instead of the far more selective subject index.
        # A partner without a time window walks the log by index, newest or oldest first,
        # to the page's last hit: its index is ordered by time, and read whole and sorted
        # it costs every entry of the partner (1.3 s at 1,000,000 entries).
        if name in self._INDEXED and (by_subject or (name == "p.partner" and not in_window)):
            return f"+{name}"
        return name


_DIALECT: Final = _SqliteDialect()

_ROPA: Final = ropa_sql(
    JsonReads(
        member="json_extract(CAST(ie.entry AS TEXT), '$.{name}')",
        field_keys="CROSS JOIN json_each(CAST(ie.entry AS TEXT), '$.fields') AS f",
        day="substr(i.logged_at, 1, 10)",
    )
)


class SqliteStore(SqlStore):
    """The storage port on one SQLite file (see the module docstring for the guarantees)."""

    _sql = SQL
    _encode = Encoding(time=_time, set=_set)
    _decode = FROM_TEXT
    _in_dialect = staticmethod(_as_written)
    _exposure = exposure_sql(SQLITE_JSON)
    _legal_requests_select = _LEGAL_REQUESTS
    _ropa = _ROPA
    _legal_requests_order = _LEGAL_REQUESTS_ORDER
    _summary = summary_sql.SQLITE

    def __init__(
        self,
        conn: aiosqlite.Connection,
        inline: Inline | None = None,
        writer: Writer | None = None,
        *,
        path: Path | str | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        self._conn = conn
        # Where the background reader opens (none for ":memory:": another connection
        # would see another database).
        self._reader_path = path if inline is not None else None
        self._reader: aiosqlite.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._busy_timeout = busy_timeout
        self._lock = asyncio.Lock()  # one transaction at a time on each connection
        self._inline = inline
        self._inline_lock = asyncio.Lock()
        self._writer = writer
        # One writer at a time, whichever connection it uses: SQLite's own write lock
        # would otherwise make one connection wait for the other inside the process.
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._projecting = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout: float = 5.0) -> SqliteStore:
        """A store on the file at `path` (created with its parent directories if missing).

        `path` may be ``":memory:"`` for a private in-memory database (tests, dry runs).
        `busy_timeout` is how long a write waits for another process's write lock.
        """
        return cls(
            *await open_connections(path, busy_timeout), path=path, busy_timeout=busy_timeout
        )

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise StoreUnavailable(f"could not {action}: the store is closed")

    @asynccontextmanager
    async def _use(self, action: str, *, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, inside a transaction, for this coroutine alone."""
        async with self._write_lock if write else contextlib.nullcontext(), self._lock:
            self._check_open(action)
            with failures(action):
                async with _begun(self._conn, "BEGIN IMMEDIATE" if write else "BEGIN"):
                    yield self._conn

    @asynccontextmanager
    async def _read_inline(self, action: str) -> AsyncIterator[Inline | aiosqlite.Connection]:
        """Like `_use(write=False)`, on the inline connection where there is one."""
        inline = self._inline
        if inline is None:
            async with self._use(action, write=False) as conn:
                yield conn
            return
        async with self._inline_lock:
            self._check_open(action)
            with failures(action):
                async with _begun(inline, "BEGIN"):
                    yield inline

    async def _write_in_thread(
        self, action: str, work: Callable[[sqlite3.Connection], _T], *, durable: bool = True
    ) -> _T:
        """`work` in one write transaction of the writer connection, in its thread
        (committed without an fsync unless `durable`)."""
        writer = self._writer
        assert writer is not None
        async with self._write_lock:
            self._check_open(action)
            with failures(action):
                done = writer.run(work, durable=durable)
                try:
                    return await asyncio.shield(done)
                except asyncio.CancelledError:
                    # Hold the write lock until the transaction in the thread has ended.
                    await asyncio.wait({done})
                    raise

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[Transaction]:
        async with self._use(action, write=True) as conn:
            yield InTransaction(conn)

    def _conflict(self, what: str) -> AbstractContextManager[None]:
        return unique(what)

    def _of_disclosures(self, disclosure_ids: Sequence[str]) -> tuple[str, Sequence[Any]]:
        return (
            "SELECT p.idx, e.entry FROM log_index p JOIN log_entries e ON e.idx = p.idx "  # noqa: S608 - placeholders only
            f"WHERE p.disclosure_id IN ({_placeholders(disclosure_ids)}) ORDER BY p.idx",
            tuple(disclosure_ids),
        )

    def _legal_request_records(self, rows: list[Any]) -> list[LegalRequestRecord]:
        return _legal_requests(rows)

    async def _rows(
        self, action: str, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[Any]:
        async with self._use(action, write=write) as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def _long_rows(self, action: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._reader_path is None:
            return await self._rows(action, sql, params)
        async with self._reader_lock:
            self._check_open(action)
            with failures(action):
                if self._reader is None:
                    self._reader = await open_background_reader(
                        self._reader_path, self._busy_timeout
                    )
                async with _begun(self._reader, "BEGIN"):
                    return list(await self._reader.execute_fetchall(sql, params))

    async def _run(self, action: str, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._use(action, write=True) as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def migrate(self) -> None:
        async with self._use("migrate the schema", write=True) as conn:
            await apply_migrations(
                SQLITE,
                MIGRATIONS,
                lambda sql, *params: conn.execute(sql, params),
                conn.execute_fetchall,
            )

    async def ping(self) -> None:
        async with self._use("reach the database", write=False) as conn:
            await conn.execute_fetchall("SELECT count(*) FROM schema_version")

    async def close(self) -> None:
        async with self._write_lock, self._lock, self._inline_lock, self._reader_lock:
            if not self._closed:
                self._closed = True
                await self._conn.close()
                if self._reader is not None:
                    await self._reader.close()
                if self._inline is not None:
                    self._inline.close()
                if self._writer is not None:
                    self._writer.close()

    # -- consents, restriction, profile -------------------------------------------------

    async def add_consent(self, consent: Consent) -> None:
        require_aware(consent.obtained_at, "obtained_at")
        async with self._use("store a consent", write=True) as conn:
            with unique("consent"):
                await conn.execute(SQL.insert_consent, self._consent_params(consent))

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

    async def replace_protected_values(
        self,
        column: str,
        changes: Sequence[tuple[tuple[object, ...], str | bytes, str | bytes]],
    ) -> int:
        table, keys, name = protected_column(column)
        match = " AND ".join(f"{k} = ?" for k in keys)
        changed = 0
        async with self._use("rewrite stored values", write=True) as conn:
            for key, old, new in changes:
                cursor = await conn.execute(
                    f"UPDATE OR IGNORE {table} SET {name} = ? "  # noqa: S608 - names from PROTECTED_COLUMNS
                    f"WHERE {match} AND {name} = ?",
                    (new, *key, old),
                )
                changed += cursor.rowcount
        return changed

    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        # In-process: three statements in one read transaction cost no network round trip.
        async with self._read_inline("read the subject's facts") as conn:
            profile = list(
                await conn.execute_fetchall(
                    "SELECT restricted, profile FROM subjects WHERE subject = ?",
                    (subject,),
                )
            )
            consents = await conn.execute_fetchall(
                SQL.consents_of_subject,
                (subject,),
            )
            requests = (
                []
                if legal_request_id is None
                else list(
                    await conn.execute_fetchall(
                        _LEGAL_REQUEST_FACTS,
                        (legal_request_id,),
                    )
                )
            )
        restricted, born = profile[0] if profile else (0, None)
        request = mapping.legal_request_facts(requests[0], FROM_TEXT) if requests else None
        return facts_of(
            consents=[mapping.consent(c, FROM_TEXT) for c in consents],
            restricted=bool(restricted),
            profile=born,
            legal_request=request,
        )

    # -- idempotency --------------------------------------------------------------------

    async def claim_idempotency(
        self, caller_id: str, key: str, request_hash: str
    ) -> IdempotencyClaim:
        async with self._use("claim an idempotency key", write=True) as conn:
            rows = list(await conn.execute_fetchall(SQL.idempotency_key, (caller_id, key)))
            if not rows:
                await conn.execute(
                    "INSERT INTO idempotency_keys (caller_id, key, request_hash, claimed_at) "
                    "VALUES (?, ?, ?, ?)",
                    (caller_id, key, request_hash, _time(datetime.now(UTC))),
                )
                return IdempotencyClaim("new")
        return mapping.claim(request_hash, rows[0])

    # -- disclosure log -----------------------------------------------------------------

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        if not entries:
            return []
        values = [(e.entry, e.leaf_hash) for e in entries]
        action = "append to the disclosure log"
        # BEGIN IMMEDIATE holds the write lock, so no other writer moves max(idx).
        if self._writer is not None:
            first = await self._write_in_thread(action, lambda conn: _append(conn, values))
        else:
            async with self._use(action, write=True) as conn:
                rows = list(await conn.execute_fetchall(_NEXT_INDEX))
                first = int(rows[0][0])
                await conn.executemany(_INSERT_ENTRY, _numbered(first, values))
        return list(range(first, first + len(entries)))

    async def _write_projection(
        self, action: str, start: int, end: int, rows: Sequence[Sequence[Any]]
    ) -> None:
        if self._writer is None:
            await super()._write_projection(action, start, end, rows)
            return
        # One trip to the writer's thread, and no fsync: a pass held SQLite's one writer
        # ahead of the next intent for four statements on aiosqlite's thread and a
        # durable commit of its own (the one-connection p99). The rows are derived from
        # entries already durable: lost in a crash with the mark that covers them, they
        # are projected again; and the next intent's commit makes them durable anyway,
        # its fsync carrying the write-ahead log's frames before its own.
        await self._write_in_thread(
            action, lambda conn: _project_rows(conn, start, end, rows), durable=False
        )

    async def log_size(self) -> int:
        async with self._read_inline("read the log size") as conn:
            rows = list(
                await conn.execute_fetchall("SELECT coalesce(max(idx) + 1, 0) FROM log_entries")
            )
        return int(rows[0][0])

    async def _mark_and_end(self, action: str) -> tuple[int, int]:
        # On the event loop's thread, like the log's size: every read of the search
        # columns asks it first, and a trip to aiosqlite's thread would double a search.
        async with self._read_inline(action) as conn:
            [(mark, end)] = list(await conn.execute_fetchall(projection.MARK_AND_END))
        return int(mark), int(end)

    async def log_search(self, query: LogQuery) -> list[LogEntry]:
        sql = search_sql(query, _DIALECT)
        if sql is None:
            return []
        # Every condition comes from search_sql's fixed columns; every value is bound.
        text = found_rows(sql, "log_index p", sql.conditions)
        await self.project_log()
        async with self._use("search the disclosure log", write=False) as conn:
            rows = await conn.execute_fetchall(text, sql.params)
        return mapping.entries(rows)

    async def log_count(self, query: LogQuery) -> int:
        sql = count_sql(query, _DIALECT)
        if sql is None:
            return 0
        await self.project_log()
        async with self._use("count entries of the disclosure log", write=False) as conn:
            rows = list(await conn.execute_fetchall(count_rows(sql), sql.params[:-1]))
        return int(rows[0][0])

    # -- instances ----------------------------------------------------------------------
    # One file on one machine: the process's clock is the store's clock.

    async def register_instance(self, instance_id: str, host: str, pid: int) -> None:
        now = _time(datetime.now(UTC))
        async with self._use("register this instance", write=True) as conn:
            await conn.execute(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "host = excluded.host, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at, "
                "claimed_by = NULL, recovered_at = NULL",
                (instance_id, host, pid, now, now),
            )

    async def heartbeat_instance(self, instance_id: str) -> bool:
        async with self._use("record this instance's heartbeat", write=True) as conn:
            cursor = await conn.execute(
                "UPDATE instances SET heartbeat_at = ? "
                "WHERE id = ? AND claimed_by IS NULL AND recovered_at IS NULL",
                (_time(datetime.now(UTC)), instance_id),
            )
            return cursor.rowcount == 1

    async def claim_stale_instances(self, claimer: str, timeout_s: float) -> list[str]:
        cutoff = _time(datetime.now(UTC) - timedelta(seconds=timeout_s))
        # BEGIN IMMEDIATE (a write) orders the sweepers of every process on this file.
        async with self._use("claim silent instances", write=True) as conn:
            rows = await conn.execute_fetchall(
                "UPDATE instances SET claimed_by = ? "
                "WHERE id <> ? AND recovered_at IS NULL AND heartbeat_at < ? "
                "AND (claimed_by IS NULL OR claimed_by = ? OR claimed_by NOT IN ("
                "    SELECT a.id FROM instances a WHERE a.heartbeat_at >= ? "
                "    AND a.recovered_at IS NULL AND a.claimed_by IS NULL)) "
                "RETURNING id",
                (claimer, claimer, cutoff, claimer, cutoff),
            )
        return sorted(str(r[0]) for r in rows)

    async def adopt_instances(self, instance_ids: Sequence[str]) -> None:
        if not instance_ids:
            return
        async with self._use("adopt instances", write=True) as conn:
            await conn.executemany(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
                "VALUES (?, '', 0, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "claimed_by = NULL, recovered_at = NULL WHERE recovered_at IS NOT NULL",
                [(i, _EPOCH, _EPOCH) for i in sorted(set(instance_ids))],
            )

    async def finish_recovery(self, instance_ids: Sequence[str], claimer: str) -> None:
        if not instance_ids:
            return
        ids = list(instance_ids)
        async with self._use("record a recovery", write=True) as conn:
            await conn.execute(
                "UPDATE instances SET recovered_at = ? "  # noqa: S608 - placeholders only
                f"WHERE id IN ({_placeholders(ids)}) AND claimed_by = ? "
                "AND recovered_at IS NULL",
                (_time(datetime.now(UTC)), *ids, claimer),
            )

    async def retire_instance(self, instance_id: str) -> None:
        async with self._use("retire this instance", write=True) as conn:
            await conn.execute(
                "UPDATE instances SET recovered_at = ? WHERE id = ?",
                (_time(datetime.now(UTC)), instance_id),
            )

    # -- disclosure log: leaf hashes -----------------------------------------------------

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
        # The reads of every proof and of each new tile are small: on the loop. A large
        # one (catching up a long log) goes to aiosqlite's thread rather than stall it.
        small = sum(end - start for _, start, end in ranges) <= _INLINE_READ_MAX
        reading = "read the log's tree hashes"
        async with self._read_inline(reading) if small else self._use(reading, write=False) as conn:
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
                found += mapping.tree_hashes(rows)
        return found

    async def add_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if not nodes:
            return
        action = "store the log's tree hashes"
        if self._writer is not None:  # every 256 entries, while appends wait for it
            await self._write_in_thread(action, lambda conn: conn.executemany(_INSERT_NODE, nodes))
            return
        async with self._use(action, write=True) as conn:
            await conn.executemany(_INSERT_NODE, nodes)

    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]:
        if not levels:
            return []
        sql = " UNION ALL ".join(
            ["SELECT coalesce(max(idx) + 1, 0) FROM log_nodes WHERE level = ?"] * len(levels)
        )
        async with self._read_inline("read the log's tree hashes") as conn:
            rows = await conn.execute_fetchall(sql, list(levels))
        return [int(r[0]) for r in rows]
