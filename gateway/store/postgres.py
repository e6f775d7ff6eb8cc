"""PostgreSQL adapter of the storage port, for several gateway instances on one database.

Built on an asyncpg connection pool. What must hold across instances is enforced by
the database, not by the process:

- the disclosure log's indexes come from a one-row counter updated in the same
  statement that inserts the rows, so concurrent appenders queue on that row lock and
  produce one gapless sequence; a failed append rolls the counter back with it;
- an idempotency key is reserved by a primary-key insert, so exactly one request wins;
- migrations run under a transaction-level advisory lock, so instances starting at
  once apply each version exactly once.

The hot read, :meth:`PostgresStore.subject_facts`, is one statement (consents come back
as an array of anonymous records), so a disclosure costs one round trip to decide.

asyncpg's and the socket's exceptions are translated here, once, into
:class:`~gateway.store.records.StoreUnavailable`; a duplicate id becomes ``conflict``.

Only what PostgreSQL does its own way is here; what it does as SQLite does lives in
:mod:`gateway.store.sql_store` (whose ``_rows`` and ``_run`` this store serves).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import astuple
from datetime import datetime
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from gateway.errors import ConflictError, GatewayError
from gateway.policy.facts import Consent, SubjectFacts
from gateway.store import mapping, summary_sql
from gateway.store.exposure_sql import POSTGRES_JSON, ExposureSql, exposure_sql
from gateway.store.mapping import AS_READ
from gateway.store.migrations import POSTGRES, apply_migrations, migrations_for
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
from gateway.store.search_sql import (
    Dialect,
    count_rows,
    count_sql,
    found_rows,
    search_sql,
    where,
)
from gateway.store.sql_store import Encoding, SqlStore, Transaction
from gateway.store.statements import LEGAL_REQUEST_STATUS, REJECTION_JOIN, SQL, numbered

__all__ = ["MIGRATIONS", "PostgresStore", "vacuum_tables"]

MIGRATIONS: Final[tuple[Migration, ...]] = migrations_for(POSTGRES)

_SCHEMA_VERSION_TABLE: Final = POSTGRES.schema_version_table

# Keyed by schema so that separate schemas of one database migrate independently.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gateway.store'), hashtext($1))"
# A migration's statements, and the wait for another instance's migration, run without the
# pool's command_timeout (30 s): schema 14 copies every entry's search columns, minutes at
# ten million entries, and a timeout there rolled the whole upgrade back and stopped the
# start (measured on a store of 10,000,000 entries). A day bounds a server that never answers.
MIGRATION_TIMEOUT_S: Final = 86_400.0

# The shared statements, numbered once.
_SQL: Final = SQL.numbered()


_SUBJECT_FACTS = f"""
    SELECT s.restricted, s.profile, l.id, {LEGAL_REQUEST_STATUS}, l.subjects, l.partners,
           ARRAY(SELECT ROW(c.id, c.subject, c.purposes, c.partners, c.partner_categories,
                            c.special_categories, c.policy_version, c.obtained_at,
                            c.expires_at, c.withdrawn_at, c.method, c.evidence)
                 FROM consents c
                 WHERE c.subject = $1 ORDER BY c.obtained_at, c.id) AS consents
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN subjects s ON s.subject = $1
    LEFT JOIN legal_requests l ON l.id = $2{REJECTION_JOIN}
"""  # noqa: S608 - constant fragments only

_LEGAL_REQUEST = f"""
    SELECT l.id, l.authority, l.reference, l.instrument, l.subjects, l.partners,
           l.received_at, l.registered_by, {LEGAL_REQUEST_STATUS}, l.sealed_subjects,
           r.reviewer_id, r.reason, r.rejected_at,
           ARRAY(SELECT ROW(a.reviewer_id, a.approved_at) FROM legal_request_approvals a
                 WHERE a.request_id = l.id ORDER BY a.approved_at, a.reviewer_id) AS approvals
    FROM legal_requests l{REJECTION_JOIN}
"""  # noqa: S608 - constant fragments only

# One statement: the counter row lock orders concurrent appenders, and the counter and
# the rows commit or roll back together, so indexes stay consecutive without gaps.
# The entry and its leaf hash only: its search columns are projected after the commit.
_APPEND = """
    WITH counter AS (
        UPDATE log_counter SET next_index = next_index + $1
        RETURNING next_index - $1 AS first
    )
    INSERT INTO log_entries (idx, entry, leaf_hash)
    SELECT counter.first + rows.ord - 1, rows.entry, rows.leaf_hash
    FROM counter, unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS rows (entry, leaf_hash, ord)
    RETURNING idx
"""

# Each disclosure's entries looked up by its id, one at a time (OFFSET 0 keeps the planner
# from flattening the lateral subquery into a join): `= ANY(array)`, or the join, is
# estimated at tens of thousands of rows before the log has statistics, and planned as a
# scan of the whole projection (0.9 s at 1,000,000 entries).
_OF_DISCLOSURES = """
    SELECT p.idx, (SELECT e.entry FROM log_entries e WHERE e.idx = p.idx)
    FROM unnest($1::text[]) AS d (id)
    CROSS JOIN LATERAL (SELECT i.idx FROM log_index i WHERE i.disclosure_id = d.id OFFSET 0) AS p
    ORDER BY p.idx
"""

# Claims of dead instances are taken one sweeper at a time (keyed by schema, as above).
_INSTANCES_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('gateway.instances'), hashtext(current_schema()))"
)

# Alive: heard from within the timeout, and neither claimed nor recovered by another.
_CLAIM_STALE = """
    UPDATE instances SET claimed_by = $1
    WHERE id <> $1 AND recovered_at IS NULL
      AND heartbeat_at < now() - make_interval(secs => $2)
      AND (claimed_by IS NULL OR claimed_by = $1 OR claimed_by NOT IN (
          SELECT a.id FROM instances a
          WHERE a.heartbeat_at >= now() - make_interval(secs => $2)
            AND a.recovered_at IS NULL AND a.claimed_by IS NULL))
    RETURNING id
"""

# The checkpoint compare-and-insert: the table lock (which plain reads do not wait for)
# orders concurrent checkpoint writers of every instance from the read to the insert.
_LOCK_CHECKPOINTS = "LOCK TABLE checkpoints IN SHARE ROW EXCLUSIVE MODE"


def _describe(exc: BaseException) -> str:
    # The class and SQLSTATE only: server messages may quote values from the row.
    state = getattr(exc, "sqlstate", None)
    return type(exc).__name__ + (f", SQLSTATE {state}" if state else "")


@contextmanager
def _failures(action: str) -> Iterator[None]:
    """Translate a database or network failure while doing `action` into StoreUnavailable."""
    try:
        yield
    except GatewayError:
        raise
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
        TimeoutError,
    ) as exc:
        raise StoreUnavailable(
            f"could not {action} in PostgreSQL ({_describe(exc)}); check that the server "
            "named by storage.url is running and reachable and accepts writes"
        ) from exc


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _conflict(what: str) -> ConflictError:
    return ConflictError(f"a {what} with this id already exists; use a new id")


@contextmanager
def _unique(what: str) -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise _conflict(what) from None


class _InTransaction:
    """Statements of one transaction open on a pooled connection (a Transaction)."""

    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[Any]) -> None:
        self._conn = conn

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.fetch(sql, *params))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _count(await self._conn.execute(sql, *params))

    async def run_many(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, params)


def _legal_request(row: mapping.Row) -> LegalRequestRecord:
    """A row of _LEGAL_REQUEST, its approvals an array of (reviewer, time) records."""
    return mapping.legal_request(row, (Approval(a[0], a[1]) for a in row[13]), AS_READ)


class _PostgresDialect(Dialect):
    """A log search in PostgreSQL: ``$n`` placeholders, a list bound as one text[]."""

    def placeholder(self, position: int) -> str:
        return f"${position}"

    def any_of(self, column: str, values: Sequence[str], position: int) -> tuple[str, list[object]]:
        return f"{column} = ANY(${position}::text[])", [list(values)]


_DIALECT: Final = _PostgresDialect()

_ROPA: Final = ropa_sql(
    JsonReads(
        member="(convert_from(ie.entry, 'UTF8')::jsonb ->> '{name}')",
        field_keys=(
            "CROSS JOIN LATERAL jsonb_object_keys("
            "convert_from(ie.entry, 'UTF8')::jsonb -> 'fields') AS f(key)"
        ),
        day="to_char(i.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    )
)


def _as_bound(value: datetime) -> object:
    return value  # asyncpg binds an aware datetime to timestamptz as it is


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset without asyncpg's default reset query (a round trip on every release).

    The store never leaves session state behind: no SET, LISTEN, cursors or
    session-level advisory locks (migrations take transaction-level ones), and asyncpg
    still rolls back a transaction left open before it calls this.
    """
    del conn


# The tables the gateway's migrations create (a few are renamed or dropped later: only
# those that exist are vacuumed), so a schema shared with other programs keeps theirs.
_CREATE_TABLE: Final = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)")
_GATEWAY_TABLES: Final = sorted(
    {
        name
        for statement in (_SCHEMA_VERSION_TABLE, *(s for m in MIGRATIONS for s in m.statements))
        for name in _CREATE_TABLE.findall(statement)
    }
)
_TABLES_SIZE: Final = (
    "SELECT COALESCE(sum(pg_total_relation_size(t::regclass)), 0) FROM unnest($1::text[]) t"
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def vacuum_tables(url: str) -> tuple[list[str], int, int]:
    """VACUUM (ANALYZE) of the gateway's tables in the schema `url` names: their names, and
    the bytes they took before and after (tables, indexes and TOAST).

    Safe while gateways serve: VACUUM's lock conflicts with no read nor write, and it
    shrinks a file only by its empty last pages, when it gets that lock at once. It makes
    dead rows' space reusable and gives the planner fresh statistics.
    """
    with _failures("vacuum the tables"):
        conn = await asyncpg.connect(
            url, timeout=10.0, server_settings={"application_name": "disclosure-gateway"}
        )
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            if schema is None:
                raise StoreUnavailable(
                    "the search_path of storage.url names no existing schema; "
                    "create the schema or fix the URL"
                )
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 "
                "AND tablename = ANY($2::text[]) ORDER BY tablename",
                schema,
                _GATEWAY_TABLES,
            )
            tables = [str(r[0]) for r in rows]
            names = [f"{_quoted(schema)}.{_quoted(t)}" for t in tables]
            before = int(await conn.fetchval(_TABLES_SIZE, names))
            if names:
                # One statement: VACUUM runs each table in a transaction of its own.
                await conn.execute(
                    f"VACUUM (ANALYZE) {', '.join(names)}", timeout=MIGRATION_TIMEOUT_S
                )
            after = int(await conn.fetchval(_TABLES_SIZE, names))
        finally:
            await conn.close()
    return tables, before, after


class PostgresStore(SqlStore):
    """The storage port on PostgreSQL (see the module docstring for the guarantees)."""

    _sql = _SQL
    _encode = Encoding(time=_as_bound, set=sorted)
    _decode = AS_READ
    _in_dialect = staticmethod(numbered)
    _exposure = ExposureSql(*(numbered(s) for s in astuple(exposure_sql(POSTGRES_JSON))))
    _lock_checkpoints = _LOCK_CHECKPOINTS
    _ropa = _ROPA
    _legal_requests_select = _LEGAL_REQUEST
    _legal_requests_order = " ORDER BY l.received_at, l.id"
    _summary = summary_sql.POSTGRES
    _for_update = " FOR UPDATE"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._closed = False
        self._projecting = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
    ) -> PostgresStore:
        """A store on a new pool; StoreUnavailable when the server cannot be reached."""
        with _failures("connect"):
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                # No JIT: it compiles any plan estimated dear, as the record of
                # processing's reads are before the log has statistics (0.4 s of compiling
                # for a 15 ms read at 1,000,000 entries); the gateway runs no long query.
                server_settings={"application_name": "disclosure-gateway", "jit": "off"},
                reset=_keep_session,
            )
        return cls(pool)

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[Transaction]:
        with _failures(action):
            async with self._pool.acquire() as conn, conn.transaction():
                yield _InTransaction(conn)

    def _conflict(self, what: str) -> AbstractContextManager[None]:
        return _unique(what)

    def _of_disclosures(self, disclosure_ids: Sequence[str]) -> tuple[str, Sequence[Any]]:
        return _OF_DISCLOSURES, (list(disclosure_ids),)

    def _legal_request_records(self, rows: list[Any]) -> list[LegalRequestRecord]:
        return [_legal_request(r) for r in rows]

    async def _rows(
        self, action: str, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[Any]:
        # `write` needs nothing here: a statement of its own commits on its own.
        with _failures(action):
            return list(await self._pool.fetch(sql, *params))

    async def _run(self, action: str, sql: str, params: Sequence[Any] = ()) -> int:
        with _failures(action):
            return _count(await self._pool.execute(sql, *params))

    async def migrate(self) -> None:
        with _failures("migrate the schema"):
            async with self._pool.acquire() as conn, conn.transaction():
                schema = await conn.fetchval("SELECT current_schema()")
                if schema is None:
                    raise StoreUnavailable(
                        "the search_path of storage.url names no existing schema; "
                        "create the schema or fix the URL"
                    )

                async def execute(sql: str, *params: Any) -> Any:
                    return await conn.execute(sql, *params, timeout=MIGRATION_TIMEOUT_S)

                async def fetch(sql: str) -> list[Any]:
                    return list(await conn.fetch(sql, timeout=MIGRATION_TIMEOUT_S))

                await execute(_MIGRATION_LOCK, schema)
                await apply_migrations(POSTGRES, MIGRATIONS, execute, fetch)

    async def ping(self) -> None:
        with _failures("reach the database"):
            await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    # -- consents, restriction, profile -------------------------------------------------

    async def add_consent(self, consent: Consent) -> None:
        require_aware(consent.obtained_at, "obtained_at")
        with _failures("store a consent"), _unique("consent"):
            await self._pool.execute(_SQL.insert_consent, *self._consent_params(consent))

    async def justified(self, disclosure_ids: Sequence[str]) -> set[str]:
        with _failures("read justifications"):
            rows = await self._pool.fetch(
                "SELECT disclosure_id FROM justifications WHERE disclosure_id = ANY($1::text[])",
                list(disclosure_ids),
            )
        return {str(r[0]) for r in rows}

    async def replace_protected_values(
        self,
        column: str,
        changes: Sequence[tuple[tuple[object, ...], str | bytes, str | bytes]],
    ) -> int:
        table, keys, name = protected_column(column)
        match = " AND ".join(f"{k} = ${i + 3}" for i, k in enumerate(keys))
        changed = 0
        with _failures("rewrite stored values"):
            async with self._pool.acquire() as conn, conn.transaction():
                for key, old, new in changes:
                    try:
                        async with conn.transaction():  # a savepoint: one row may collide
                            status = await conn.execute(
                                f"UPDATE {table} SET {name} = $1 "  # noqa: S608 - names from PROTECTED_COLUMNS
                                f"WHERE {name} = $2 AND {match}",
                                new,
                                old,
                                *key,
                            )
                    except asyncpg.UniqueViolationError:
                        continue  # the converted key exists already: keep both as they are
                    changed += _count(status)
        return changed

    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        with _failures("read the subject's facts"):
            row = await self._pool.fetchrow(_SUBJECT_FACTS, subject, legal_request_id)
        assert row is not None  # the VALUES row always yields exactly one row
        request = None if row[2] is None else mapping.legal_request_facts(row[2:6], AS_READ)
        return facts_of(
            consents=[mapping.consent(c, AS_READ) for c in row[6]],
            restricted=bool(row[0]),
            profile=row[1],
            legal_request=request,
        )

    # -- idempotency --------------------------------------------------------------------

    async def claim_idempotency(
        self, caller_id: str, key: str, request_hash: str
    ) -> IdempotencyClaim:
        with _failures("claim an idempotency key"):
            async with self._pool.acquire() as conn:
                # A holder may release the key between our failed insert and our read;
                # then the insert is simply tried again.
                for _ in range(3):
                    inserted = await conn.fetchval(
                        "INSERT INTO idempotency_keys (caller_id, key, request_hash) "
                        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
                        caller_id,
                        key,
                        request_hash,
                    )
                    if inserted:
                        return IdempotencyClaim("new")
                    row = await conn.fetchrow(_SQL.idempotency_key, caller_id, key)
                    if row is not None:
                        return mapping.claim(request_hash, row)
        # Three releases in a row between our statements: treat as busy.
        return IdempotencyClaim("in_progress")

    # -- disclosure log -----------------------------------------------------------------

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        if not entries:
            return []
        with _failures("append to the disclosure log"):
            rows = await self._pool.fetch(
                _APPEND,
                len(entries),
                [e.entry for e in entries],
                [e.leaf_hash for e in entries],
            )
        return sorted(int(r[0]) for r in rows)

    async def log_size(self) -> int:
        with _failures("read the log size"):
            size = await self._pool.fetchval("SELECT next_index FROM log_counter")
        return int(size)

    async def log_search(self, query: LogQuery) -> list[LogEntry]:
        sql = search_sql(query, _DIALECT)
        if sql is None:
            return []
        # Every condition comes from search_sql's fixed columns; every value is bound.
        if sql.subject:
            # A subject has few entries: take them by the subject index alone, then filter
            # and sort those. Left to itself (worst without statistics, after a bulk load)
            # the planner walks the primary key for the LIMIT, or ANDs in the kind index,
            # reading half the log to find a handful (seen: 50-600 ms at 10**6 entries).
            select = (
                "WITH found AS MATERIALIZED (SELECT idx, partner, kind, purpose, "  # noqa: S608
                "legal_basis, outcome, logged_at FROM log_index p"
                + where(sql.subject)
                + ") "
                + found_rows(sql, "found p", sql.others)
            )
        else:
            select = found_rows(sql, "log_index p", sql.others)
        await self.project_log()
        with _failures("search the disclosure log"):
            rows = await self._pool.fetch(select, *sql.params)
        return mapping.entries(rows)

    async def log_count(self, query: LogQuery) -> int:
        sql = count_sql(query, _DIALECT)
        if sql is None:
            return 0
        await self.project_log()
        with _failures("count entries of the disclosure log"):
            found = await self._pool.fetchval(count_rows(sql), *sql.params[:-1])
        return int(found or 0)

    # -- instances ----------------------------------------------------------------------

    async def register_instance(self, instance_id: str, host: str, pid: int) -> None:
        with _failures("register this instance"):
            await self._pool.execute(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
                "VALUES ($1, $2, $3, now(), now()) ON CONFLICT (id) DO UPDATE SET "
                "host = excluded.host, pid = excluded.pid, heartbeat_at = now(), "
                "claimed_by = NULL, recovered_at = NULL",
                instance_id,
                host,
                pid,
            )

    async def heartbeat_instance(self, instance_id: str) -> bool:
        with _failures("record this instance's heartbeat"):
            status = await self._pool.execute(
                "UPDATE instances SET heartbeat_at = now() "
                "WHERE id = $1 AND claimed_by IS NULL AND recovered_at IS NULL",
                instance_id,
            )
        return str(status).endswith(" 1")

    async def claim_stale_instances(self, claimer: str, timeout_s: float) -> list[str]:
        with _failures("claim silent instances"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_INSTANCES_LOCK)
                rows = await conn.fetch(_CLAIM_STALE, claimer, float(timeout_s))
        return sorted(str(r[0]) for r in rows)

    async def adopt_instances(self, instance_ids: Sequence[str]) -> None:
        if not instance_ids:
            return
        with _failures("adopt instances"):
            await self._pool.execute(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
                "SELECT id, '', 0, 'epoch', 'epoch' FROM unnest($1::text[]) AS ids (id) "
                "ON CONFLICT (id) DO UPDATE SET claimed_by = NULL, recovered_at = NULL "
                "WHERE instances.recovered_at IS NOT NULL",
                sorted(set(instance_ids)),
            )

    async def finish_recovery(self, instance_ids: Sequence[str], claimer: str) -> None:
        if not instance_ids:
            return
        with _failures("record a recovery"):
            await self._pool.execute(
                "UPDATE instances SET recovered_at = now() "
                "WHERE id = ANY($1::text[]) AND claimed_by = $2 AND recovered_at IS NULL",
                list(instance_ids),
                claimer,
            )

    async def retire_instance(self, instance_id: str) -> None:
        with _failures("retire this instance"):
            await self._pool.execute(
                "UPDATE instances SET recovered_at = now() WHERE id = $1", instance_id
            )

    # -- disclosure log: leaf hashes -----------------------------------------------------

    async def set_leaf_hashes(self, hashes: Sequence[tuple[int, bytes]]) -> None:
        if not hashes:
            return
        with _failures("store leaf hashes"):
            await self._pool.execute(
                "UPDATE log_entries e SET leaf_hash = h.hash "
                "FROM unnest($1::bigint[], $2::bytea[]) AS h (idx, hash) "
                "WHERE e.idx = h.idx AND e.leaf_hash IS NULL",
                [i for i, _ in hashes],
                [h for _, h in hashes],
            )

    # -- Merkle tree nodes --------------------------------------------------------------

    async def read_tree_hashes(self, ranges: Sequence[tuple[int, int, int]]) -> list[TreeHash]:
        if not ranges:
            return []
        # One SELECT per range, each a plain primary-key range scan: joined against an
        # array of ranges instead, the planner scans the whole log (seen: 600 ms at 10**6).
        parts: list[str] = []
        params: list[int] = []
        for level, start, end in ranges:
            n = len(params)
            if level == 0:
                parts.append(
                    f"SELECT 0, idx, leaf_hash FROM log_entries "  # noqa: S608 - numbered params only
                    f"WHERE idx >= ${n + 1} AND idx < ${n + 2}"
                )
                params += [start, end]
            else:
                parts.append(
                    f"SELECT level, idx, hash FROM log_nodes "  # noqa: S608 - numbered params only
                    f"WHERE level = ${n + 1}::smallint AND idx >= ${n + 2} AND idx < ${n + 3}"
                )
                params += [level, start, end]
        with _failures("read the log's tree hashes"):
            rows = await self._pool.fetch(" UNION ALL ".join(parts), *params)
        return mapping.tree_hashes(rows)

    async def add_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if not nodes:
            return
        with _failures("store the log's tree hashes"):
            await self._pool.execute(
                "INSERT INTO log_nodes (level, idx, hash) "
                "SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[]) "
                "ON CONFLICT (level, idx) DO NOTHING",
                [level for level, _, _ in nodes],
                [i for _, i, _ in nodes],
                [h for _, _, h in nodes],
            )

    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]:
        if not levels:
            return []
        with _failures("read the log's tree hashes"):
            rows = await self._pool.fetch(
                "SELECT (SELECT coalesce(max(n.idx) + 1, 0) FROM log_nodes n "
                "WHERE n.level = l.level) FROM unnest($1::smallint[]) WITH ORDINALITY "
                "AS l (level, ord) ORDER BY l.ord",
                list(levels),
            )
        return [int(r[0]) for r in rows]
