"""The search columns as a projection behind a high-water mark (schema 14, issue #20), on
SQLite and PostgreSQL: the durable commit writes none, the projector writes them after,
reads see every committed entry, two projectors write each row once, a crash before the
projection is caught up at start, `log verify` reports the lag and names a lying row,
and a store of schema 13 keeps every search answer."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.old_schema import log_of_schema_13, store_at_schema

from gateway.canonical import canonical_json
from gateway.log import merkle
from gateway.log.audit import audit_store
from gateway.log.service import LogService, LogSigner
from gateway.store import Store, open_store
from gateway.store.projection import columns_of_bytes
from gateway.store.records import LogQuery, LogRow

if TYPE_CHECKING:
    from conftest import Backend

ORIGIN = "gateway.test/disclosures"
SIGNER = LogSigner(ORIGIN, Ed25519PrivateKey.generate())
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
PARTNERS = ("lao-credit-bureau", "bcel-payments", "adreach")


def entry(i: int) -> dict[str, Any]:
    """Entry `i`: intents, their outcomes and refusals, over three partners and hours."""
    kind = ("intent", "outcome", "refused")[i % 3]
    data: dict[str, Any] = {
        "v": 1,
        "kind": kind,
        "time": (T0 + timedelta(minutes=7 * i)).isoformat().replace("+00:00", "Z"),
        "disclosure_id": f"d-{i - 1 if kind == 'outcome' else i}",
        "partner": PARTNERS[(i // 3) % 3],
        "subject_ref": f"ref-{(i // 3) % 5}",
        "purpose": "service_provision",
        "legal_basis": "consent",
    }
    if kind == "outcome":
        data["outcome"] = "sent" if i % 2 else "failed"
    return data


def row(i: int) -> LogRow:
    data = canonical_json(entry(i))
    return LogRow(data, merkle.leaf_hash(data))


async def scalar(backend: Backend, store: Store, sql: str, *params: object) -> Any:
    """One value read (or a statement run) behind the store's back; `?` placeholders."""
    if backend.admin is None:
        conn = store._conn  # type: ignore[attr-defined]  # the SQLite adapter's connection
        rows = list(await conn.execute_fetchall(sql, params))
        await conn.commit()
        return rows[0][0] if rows else None
    for n in range(1, len(params) + 1):
        sql = sql.replace("?", f"${n}", 1)
    await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
    return await backend.admin.fetchval(sql, *params)


async def test_the_commit_writes_no_projected_row_and_a_read_right_after_finds_it(
    backend: Backend, store: Store
) -> None:
    indexes = await store.append_log_entries([row(0), row(1)])

    assert indexes == [0, 1]
    assert await scalar(backend, store, "SELECT count(*) FROM log_index") == 0
    assert await store.projected_size() == 0
    found = await store.log_search(LogQuery(partner=PARTNERS[0], kind="intent"))
    assert [i for i, _ in found] == [0]
    assert await scalar(backend, store, "SELECT count(*) FROM log_index") == 2
    assert await store.projected_size() == 2


async def test_the_writer_projects_after_its_commit_without_a_read(store: Store) -> None:
    service = LogService(store, SIGNER)
    await asyncio.gather(*(service.append(entry(i)) for i in range(30)))
    await service.settle()

    assert await store.projected_size() == 30
    await service.stop(final_checkpoint=False)


async def test_two_stores_projecting_at_once_write_one_row_per_entry(
    backend: Backend, store: Store
) -> None:
    other = await open_store(backend.url, backend.root)
    try:
        rows = [row(i) for i in range(12_000)]  # more than one projection batch
        await store.append_log_entries(rows[:6_000])
        await asyncio.gather(
            store.project_log(),
            other.project_log(),
            store.append_log_entries(rows[6_000:]),
            other.project_log(),
        )
        await asyncio.gather(store.project_log(), other.project_log())
    finally:
        await other.close()

    assert await store.projected_size() == 12_000
    assert await scalar(backend, store, "SELECT count(*) FROM log_index") == 12_000
    assert await scalar(backend, store, "SELECT count(DISTINCT idx) FROM log_index") == 12_000


async def test_entries_a_crash_left_unprojected_are_projected_at_start(
    backend: Backend, store: Store
) -> None:
    await store.append_log_entries([row(i) for i in range(7)])  # the process died here
    await store.close()

    reopened = await open_store(backend.url, backend.root)
    try:
        assert await reopened.projected_size() == 0
        await LogService(reopened, SIGNER).prepare()  # what start-up runs before recovery
        assert await reopened.projected_size() == 7
        assert [i for i, _ in await reopened.intents_without_outcome()] == [6]
    finally:
        await reopened.close()


async def test_verify_reports_the_lag_and_names_the_projected_rows_that_lie(
    backend: Backend, store: Store
) -> None:
    await store.append_log_entries([row(i) for i in range(10)])
    await store.project_log()
    await store.append_log_entries([row(i) for i in range(10, 13)])

    report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
    assert report.ok, report.problems
    assert (report.entries, report.projected, report.lag) == (13, 10, 3)

    await scalar(backend, store, "UPDATE log_index SET partner = ? WHERE idx = ?", "elsewhere", 4)
    await scalar(backend, store, "DELETE FROM log_index WHERE idx = ?", 2)
    await scalar(
        backend,
        store,
        "INSERT INTO log_index (idx, kind, disclosure_id, logged_at) "
        "SELECT 11, kind, disclosure_id, logged_at FROM log_index WHERE idx = 0",
    )
    report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
    messages = [p.message for p in report.problems]
    assert len(messages) == 4, messages  # row 11 also holds entry 0's columns, not its own
    assert messages[0].startswith("entry 2: it is below the projection's high-water mark")
    assert messages[1].startswith("entry 4: its search column partner does not match")
    assert messages[2].startswith("entry 11: it has a projected row at or above")

    assert await store.rebuild_projection() == 13
    report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
    assert report.ok, report.problems
    assert (report.projected, report.lag) == (13, 0)


# -- a store of schema 13 ------------------------------------------------------------------


async def test_a_store_of_schema_13_keeps_every_search_answer(backend: Backend) -> None:
    rows = [row(i) for i in range(60)]
    await store_at_schema(backend, 13, log_of_schema_13(rows))
    queries = [
        LogQuery(),
        LogQuery(partner=PARTNERS[1]),
        LogQuery(subject_ref="ref-3"),
        LogQuery(kind="outcome", outcome="sent"),
        LogQuery(partner=PARTNERS[0], since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=4)),
        LogQuery(subject_refs=["ref-1", "ref-2"], kinds=["intent", "refused"], newest_first=True),
    ]
    expected = [
        [i for i, r in enumerate(rows) if query.first_mismatch(columns_of_bytes(r.entry)) is None]
        for query in queries
    ]

    store = await open_store(backend.url, backend.root)  # migrates through schema 14
    try:
        assert 14 in await store.schema_versions()
        assert await store.projected_size() == 60
        for query, wanted in zip(queries, expected, strict=True):
            found = [i for i, _ in await store.log_search(query)]
            assert found == (wanted[::-1] if query.newest_first else wanted), query
            assert await store.log_count(query) == len(wanted)
        assert [i for i, _ in await store.log_entries_for_disclosure("d-3")] == [3, 4]
        report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
        assert report.ok, report.problems
        assert (report.projected, report.lag) == (60, 0)
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_projects_in_the_writers_thread_without_an_fsync(store: Store) -> None:
    # A pass held SQLite's one writer ahead of the next intent for four trips to
    # aiosqlite's thread and a durable commit of its own (the one-connection p99).
    writer = store._writer  # type: ignore[attr-defined]
    trips: list[bool] = []
    run = writer.run

    def recorded(work: Any, *, durable: bool = True) -> Any:
        trips.append(durable)
        return run(work, durable=durable)

    writer.run = recorded
    await store.append_log_entries([row(i) for i in range(3)])
    assert await store.project_log() == 3
    assert trips == [True, False]  # the append durable, the pass not
    assert [i for i, _ in await store.log_search(LogQuery(partner=PARTNERS[0]))] == [0, 1, 2]

    def failing(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        await run(failing, durable=False)
    # Every later commit durable again (2: FULL), also after a pass that failed.
    assert writer.conn.execute("PRAGMA synchronous").fetchone() == (2,)
