"""LogService over real SQLite and PostgreSQL stores: appends, proofs, checkpoints, two instances.

Every test runs on both backends (tests/integration/conftest.py). Proofs are checked
with gateway.log.merkle against the leaf hashes the test computed itself, checkpoints
with gateway.log.checkpoint and the public key only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.old_schema import store_at_schema

from gateway.crypto.subject_keys import LogKeys
from gateway.errors import GatewayError
from gateway.log import merkle
from gateway.log.checkpoint import open_checkpoint
from gateway.log.columns import columns_of_bytes
from gateway.log.entries import outcome_entry, row_of
from gateway.log.search import Query, search, subject_refs
from gateway.log.service import LogIntegrityError, LogService, LogSigner
from gateway.log.tree import TreeBuilder
from gateway.store import Store, open_store
from gateway.store.records import LogQuery, LogRow

if TYPE_CHECKING:
    from conftest import Backend

ORIGIN = "gateway.test/disclosures"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SIGNER = LogSigner(ORIGIN, Ed25519PrivateKey.generate())


def row(i: int, outcome: str = "sent", partner: str = "lao-credit-bureau") -> LogRow:
    return row_of(
        outcome_entry(
            disclosure_id=f"d-{i}",
            outcome=outcome,
            at=T0 + timedelta(seconds=i),
            partner=partner,
            partner_status=201,
            attempts=1,
        )
    )


def intent(i: int, subject_ref: str, purpose: str = "service_provision") -> dict[str, object]:
    return {
        "v": 1,
        "kind": "intent",
        "time": (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        "disclosure_id": f"d-{i}",
        "partner": "lao-credit-bureau",
        "purpose": purpose,
        "legal_basis": "consent",
        "subject_ref": subject_ref,
    }


@pytest.fixture
async def service(store: Store) -> AsyncIterator[LogService]:
    service = LogService(store, SIGNER, clock=lambda: T0)
    yield service
    await service.stop(final_checkpoint=False)


def quick_row(i: int) -> LogRow:
    """A minimal valid entry, cheap to make by the ten thousand."""
    entry = b'{"disclosure_id":"d-%d","kind":"outcome","outcome":"sent","time":"x"}' % i
    return LogRow(entry, merkle.leaf_hash(entry))


async def filled(service: LogService, n: int) -> list[bytes]:
    rows = [quick_row(i) for i in range(n)]
    for start in range(0, n, 5000):
        await service.append_rows(rows[start : start + 5000])
    return [r.leaf_hash for r in rows]


async def raw(backend: Backend, store: Store, sql: str, *params: object) -> None:
    """Run SQL behind the service's back (the tests' tamperer); `?` placeholders."""
    if backend.admin is None:
        conn = store._conn  # type: ignore[attr-defined]  # the SQLite adapter's connection
        await conn.execute(sql, params)
        return
    for n in range(1, len(params) + 1):
        sql = sql.replace("?", f"${n}", 1)
    await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
    await backend.admin.execute(sql, *params)


async def test_concurrent_appends_share_commits_and_form_the_tree(service: LogService) -> None:
    indexes = await asyncio.gather(*(service.append(json.loads(row(i).entry)) for i in range(300)))

    assert sorted(indexes) == list(range(300))
    assert service.writer.batches < 300  # group commit: many appends per transaction
    await service.stop(final_checkpoint=False)
    leaves = [leaf for _, _, leaf in await service._store.read_log_records(0, 300)]  # type: ignore[attr-defined]
    assert await service.root(300) == merkle.root_from_leaf_hashes(leaves)


async def test_roots_and_proofs_at_many_sizes(service: LogService) -> None:
    leaves = await filled(service, 66_000)
    sizes = (1, 2, 255, 256, 257, 65_536, 65_537, 66_000)
    firsts = {size: sorted({1, size // 3 or 1, size}) for size in sizes}
    wanted = set(sizes) | {f for fs in firsts.values() for f in fs}
    builder, roots = TreeBuilder(), {}
    for size, leaf in enumerate(leaves, start=1):
        builder.append(leaf)
        if size in wanted:
            roots[size] = builder.root()
    for size in sizes:
        assert await service.root(size) == roots[size]
        for index in {0, size // 2, size - 1}:
            proof = await service.inclusion_proof(index, size)
            assert proof.leaf_hash == leaves[index]
            merkle.verify_inclusion(index, size, leaves[index], proof.hashes, roots[size])
        for first in firsts[size]:
            hashes = await service.consistency_proof(first, size)
            merkle.verify_consistency(first, size, hashes, roots[first], roots[size])


async def test_proof_arguments_are_checked(service: LogService) -> None:
    await filled(service, 10)
    with pytest.raises(GatewayError) as caught:
        await service.inclusion_proof(10, 10)
    assert caught.value.code == "invalid_request"
    with pytest.raises(GatewayError, match="larger than the log"):
        await service.inclusion_proof(3, 11)
    with pytest.raises(GatewayError, match="0 < first"):
        await service.consistency_proof(0, 5)
    with pytest.raises(GatewayError) as missing:
        await service.record(10)
    assert missing.value.code == "not_found"
    assert (await service.record(3))[0] == 3


async def test_checkpoints_form_a_consistent_signed_chain(service: LogService) -> None:
    await filled(service, 300)
    first = await service.checkpoint()
    assert await service.checkpoint() == first  # nothing new: nothing signed
    await filled_more(service, 300, 700)
    second = await service.checkpoint()

    one = open_checkpoint(first.note, SIGNER.verifier_key, expected_origin=ORIGIN)
    two = open_checkpoint(second.note, SIGNER.verifier_key, expected_origin=ORIGIN)
    assert (one.size, two.size) == (300, 700)
    proof = await service.consistency_proof(300, 700)
    merkle.verify_consistency(300, 700, proof, one.root, two.root)
    assert [c.size for c in await service._store.checkpoints()] == [300, 700]  # type: ignore[attr-defined]


async def filled_more(service: LogService, start: int, end: int) -> None:
    await service.append_rows([quick_row(i) for i in range(start, end)])


async def test_an_empty_log_gets_a_checkpoint_of_the_empty_tree(service: LogService) -> None:
    checkpoint = await service.checkpoint()
    opened = open_checkpoint(checkpoint.note, SIGNER.verifier_key)
    assert (opened.size, opened.root) == (0, merkle.EMPTY_ROOT)
    await filled(service, 3)
    assert (await service.checkpoint()).size == 3


async def test_no_checkpoint_for_a_tree_that_does_not_extend_the_last(
    backend: Backend, store: Store, service: LogService
) -> None:
    await filled(service, 600)
    await service.checkpoint()
    await filled_more(service, 600, 650)
    # A leaf hash inside the checkpointed tree is replaced (with the entry to match).
    forged = row(42, outcome="failed")
    await raw(
        backend,
        store,
        "UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = ?",
        forged.entry,
        forged.leaf_hash,
        42,
    )
    await raw(backend, store, "DELETE FROM log_nodes")
    fresh = LogService(store, SIGNER)

    with pytest.raises(LogIntegrityError, match="not consistent with the latest checkpoint"):
        await fresh.checkpoint()
    assert [c.size for c in await store.checkpoints()] == [600]


async def test_no_checkpoint_after_an_altered_or_missing_row(
    backend: Backend, store: Store, service: LogService
) -> None:
    await filled(service, 40)
    await service.checkpoint()
    await raw(backend, store, "UPDATE checkpoints SET note = replace(note, '\n40\n', '\n41\n')")
    with pytest.raises(LogIntegrityError, match="does not verify"):
        await service.checkpoint()

    await raw(backend, store, "DELETE FROM checkpoints")
    await raw(backend, store, "DELETE FROM log_entries WHERE idx = 7")
    if backend.admin is None:  # SQLite counts max(idx) + 1; make the gap the only damage
        await filled_more(service, 40, 41)
    with pytest.raises(LogIntegrityError, match="leaf hash 7 is missing"):
        await service.checkpoint()


async def test_two_instances_keep_one_consistent_checkpoint_chain(
    backend: Backend, store: Store
) -> None:
    other = await open_store(backend.url, backend.root)
    try:
        a, b = LogService(store, SIGNER), LogService(other, SIGNER)

        async def work(service: LogService, offset: int) -> None:
            for step in range(8):
                base = offset + step * 40
                await asyncio.gather(
                    *(service.append(json.loads(row(base + i).entry)) for i in range(40))
                )
                await service.checkpoint()

        await asyncio.gather(work(a, 0), work(b, 10_000))
        await a.stop()
        await b.stop()
        stored = await store.checkpoints()
    finally:
        await other.close()

    opened = [open_checkpoint(c.note, SIGNER.verifier_key) for c in stored]
    sizes = [c.size for c in opened]
    assert sizes == sorted(sizes) and sizes[-1] == 640
    records = await store.read_log_records(0, 1000)
    leaves = [leaf for _, _, leaf in records]
    assert [i for i, _, _ in records] == list(range(640))
    for checkpoint in opened:
        assert checkpoint.root == merkle.root_from_leaf_hashes(leaves[: checkpoint.size])  # type: ignore[arg-type]


async def test_prepare_fills_leaf_hashes_of_old_rows(
    backend: Backend, store: Store, service: LogService
) -> None:
    leaves = await filled(service, 20)
    await raw(backend, store, "UPDATE log_entries SET leaf_hash = NULL WHERE idx < 5")

    assert await service.prepare() == 5
    assert await service.prepare() == 0
    assert [leaf for _, _, leaf in await store.read_log_records(0, 20)] == leaves


async def test_search_by_subject_purpose_and_outcome(service: LogService, store: Store) -> None:
    for i, (ref, purpose) in enumerate(
        [("ref-a", "service_provision"), ("ref-b", "marketing"), ("ref-a", "marketing")]
    ):
        await service.append(intent(i, ref, purpose))
    await service.append(json.loads(row(0).entry))
    await service.append(json.loads(row(1, outcome="unknown").entry))

    async def ids(query: Query) -> list[str]:
        return [f.entry.disclosure_id async for f in search(store, query)]

    assert await ids(Query(subject_refs=["ref-a", "ref-z"])) == ["d-0", "d-2"]
    assert await ids(Query(subject_refs=[])) == []
    assert await ids(Query(purpose="marketing")) == ["d-1", "d-2"]
    assert await ids(Query(outcome="unknown")) == ["d-1"]
    assert await ids(Query(outcome="sent", subject_refs=["ref-a"])) == ["d-0"]
    assert await ids(Query(outcome="unknown", purpose="service_provision")) == []
    found = [f async for f in search(store, Query(subject_refs=["ref-a"]))]
    assert [f.outcome for f in found] == ["sent", "pending"]
    second = timedelta(seconds=1)
    assert await ids(Query(since=T0 + second, until=T0 + 3 * second)) == ["d-1", "d-2"]
    assert await ids(Query(subject_refs=["ref-a"], until=T0 + 2 * second)) == ["d-0"]
    # An empty or reversed time range finds nothing, by outcome too (no error either).
    for outcome in (None, "unknown"):
        assert await ids(Query(outcome=outcome, since=T0 + second, until=T0 + second)) == []
        assert await ids(Query(outcome=outcome, since=T0 + 2 * second, until=T0)) == []


async def test_rows_of_schema_1_get_search_columns_and_leaf_hashes(backend: Backend) -> None:
    old = [row(0), row_of(intent(1, "ref-a")), row(2, outcome="unknown")]
    # Schema 1's row: the entry, its kind, disclosure id, subject and partner, a time.
    values = [(i, r.entry, *columns_of_bytes(r.entry)[:4], T0) for i, r in enumerate(old)]
    await store_at_schema(
        backend, 1, ("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?, ?, ?)", values)
    )

    store = await open_store(backend.url, backend.root)
    try:
        service = LogService(store, SIGNER)
        assert await service.prepare() == 3
        assert [leaf for _, _, leaf in await store.read_log_records(0, 9)] == [
            r.leaf_hash for r in old
        ]
        assert [i for i, _ in await store.log_search(LogQuery(outcome="unknown"))] == [2]
        assert [i for i, _ in await store.log_search(LogQuery(purpose="service_provision"))] == [1]
        assert (await service.checkpoint()).size == 3
    finally:
        await store.close()


async def test_check_entry_from_its_bytes_to_the_signature(
    backend: Backend, store: Store, service: LogService
) -> None:
    await filled(service, 300)
    assert (await service.check_entry(5)).status == "pending"
    await service.checkpoint()
    await filled_more(service, 300, 310)

    verified = await service.check_entry(5)
    assert (verified.status, verified.tree_size) == ("verified", 300)
    assert (await service.check_entry(305)).status == "pending"

    edited = (await store.read_log_records(5, 1))[0][1].replace(b'"sent"', b'"failed"')
    await raw(backend, store, "UPDATE log_entries SET entry = ? WHERE idx = ?", edited, 5)
    failed = await service.check_entry(5)
    assert failed.status == "failed" and "computed root" in failed.detail


async def test_a_nul_in_a_refused_request_does_not_fail_the_shared_commit(
    service: LogService, store: Store
) -> None:
    refused = {**intent(1, "ref-a"), "kind": "refused", "partner": "a\u0000b", "purpose": "\u0000"}
    indexes = await asyncio.gather(
        service.append(json.loads(row(0).entry)),
        service.append(refused),
        service.append(json.loads(row(2).entry)),
    )
    assert sorted(indexes) == [0, 1, 2]
    stored = json.loads((await store.read_log_records(1, 1))[0][1])
    assert stored["partner"] == "a\u0000b"  # the entry keeps exactly what was asked


async def test_subject_refs_cover_only_the_months_the_log_spans(
    service: LogService, store: Store, tmp_path: Path
) -> None:
    keys = LogKeys.load(tmp_path)
    assert await subject_refs(store, keys, "s-1") == []
    october, november = datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    for i, at in enumerate((october, november)):
        entry = intent(i, keys.subject_ref("s-1", at))
        entry["time"] = at.isoformat().replace("+00:00", "Z")
        await service.append(entry)

    refs = await subject_refs(store, keys, "s-1")
    assert refs == [keys.subject_ref("s-1", october), keys.subject_ref("s-1", november)]
    assert await subject_refs(store, keys, "s-1", since=november) == refs[1:]
    found = [f.entry.disclosure_id async for f in search(store, Query(subject_refs=refs))]
    assert found == ["d-0", "d-1"]
