"""A lawful request's review as state (schema 11), on SQLite and PostgreSQL.

A rejection is the request's own row, so a rejected request reads as ``rejected`` from
every read (get, list by status, the facts a disclosure is decided on), and it is final:
no approval after it, no second rejection. Approving and rejecting each lock the
request's row in one transaction, so of two reviewers racing (on two connections, as two
instances or a CLI beside the server would) exactly one wins. A store of schema 9 keeps
its rejections (then a row of the reasons table) through the upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from gateway.crypto.at_rest import AtRestKeys, is_sealed
from gateway.errors import ConflictError, GatewayError
from gateway.store import Store, open_store
from gateway.store.protected import protect
from gateway.store.records import JustificationRecord, LegalRequestRecord, Rejection

if TYPE_CHECKING:
    from conftest import Backend

T0 = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
REQUEST = LegalRequestRecord(
    id="LR-1",
    authority="Ministry of Public Security",
    reference="MPS/2026/114",
    instrument="court order",
    subjects=frozenset({"subject-a"}),
    partners=frozenset({"police-portal"}),
    received_at=T0,
    registered_by="clerk",
)
REASON = "the order names no partner of ours"


def request(request_id: str) -> LegalRequestRecord:
    return replace(REQUEST, id=request_id)


async def test_a_rejection_is_read_as_rejected_everywhere_and_is_final(store: Store) -> None:
    await store.add_legal_request(request("LR-1"))
    await store.add_legal_request(request("LR-2"))
    await store.approve_legal_request("LR-1", "alice", T0)

    rejection = Rejection("bob", REASON, T0 + timedelta(minutes=1))
    rejected = await store.reject_legal_request("LR-1", rejection)

    assert rejected is not None and rejected.status == "rejected"
    assert rejected.rejection == rejection
    assert await store.get_legal_request("LR-1") == rejected
    assert [r.id for r in await store.list_legal_requests("rejected")] == ["LR-1"]
    assert [r.id for r in await store.list_legal_requests("pending")] == ["LR-2"]
    assert {r.id: r.status for r in await store.list_legal_requests()} == {
        "LR-1": "rejected",
        "LR-2": "pending",
    }
    facts = await store.subject_facts("subject-a", "LR-1")
    assert facts.legal_requests["LR-1"].status == "rejected"

    for refused in (
        store.approve_legal_request("LR-1", "carol", T0),
        store.reject_legal_request("LR-1", Rejection("carol", "again", T0)),
    ):
        with pytest.raises(ConflictError) as caught:
            await refused
        assert "LR-1" in caught.value.detail and "rejected by bob" in caught.value.detail
    assert await store.get_legal_request("LR-1") == rejected  # nothing written
    assert await store.reject_legal_request("LR-unknown", rejection) is None


async def test_an_approved_request_takes_no_rejection_and_no_third_approval(store: Store) -> None:
    await store.add_legal_request(request("LR-1"))
    await store.approve_legal_request("LR-1", "alice", T0)
    approved = await store.approve_legal_request("LR-1", "bob", T0)
    assert approved is not None and approved.status == "approved"

    with pytest.raises(ConflictError, match="already approved"):
        await store.reject_legal_request("LR-1", Rejection("carol", REASON, T0))
    with pytest.raises(ConflictError, match="already approved"):
        await store.approve_legal_request("LR-1", "carol", T0)
    assert await store.get_legal_request("LR-1") == approved


async def outcomes(*acts: Awaitable[object]) -> list[str]:
    """Each act's outcome, in order: ``won``, or the problem code it was refused with."""
    results = await asyncio.gather(*acts, return_exceptions=True)
    found = []
    for result in results:
        if isinstance(result, GatewayError):
            found.append(result.code)
        elif isinstance(result, BaseException):
            raise result
        else:
            found.append("won")
    return found


RACES = 8


@asynccontextmanager
async def two_stores(backend: Backend) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: two connections, as two instances have."""
    one = await open_store(backend.url, backend.root)
    two = await open_store(backend.url, backend.root)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def approved_once(store: Store) -> list[str]:
    """RACES new lawful requests, each approved by alice: one approval short of the rule."""
    ids = [f"LR-{n}" for n in range(RACES)]
    for request_id in ids:
        await store.add_legal_request(request(request_id))
        await store.approve_legal_request(request_id, "alice", T0)
    return ids


async def test_an_approval_and_a_rejection_racing_never_both_win(backend: Backend) -> None:
    async with two_stores(backend) as (one, two):
        ids = await approved_once(one)

        # bob's approval would make each request approved; carol rejects it meanwhile.
        found = await asyncio.gather(
            *(
                outcomes(
                    one.approve_legal_request(request_id, "bob", T0),
                    two.reject_legal_request(request_id, Rejection("carol", REASON, T0)),
                )
                for request_id in ids
            )
        )

        for request_id, (approval, rejection) in zip(ids, found, strict=True):
            assert sorted((approval, rejection)) == ["conflict", "won"], request_id
            record = await two.get_legal_request(request_id)
            assert record is not None
            if approval == "won":
                assert record.status == "approved" and record.rejection is None
            else:
                assert record.status == "rejected"
                assert [a.reviewer_id for a in record.approvals] == ["alice"]


async def test_two_approvals_past_the_two_reviewer_rule_never_both_win(backend: Backend) -> None:
    async with two_stores(backend) as (one, two):
        ids = await approved_once(one)

        found = await asyncio.gather(
            *(
                outcomes(
                    one.approve_legal_request(request_id, "bob", T0),
                    two.approve_legal_request(request_id, "carol", T0),
                )
                for request_id in ids
            )
        )

        for request_id, pair in zip(ids, found, strict=True):
            assert sorted(pair) == ["conflict", "won"], request_id
            record = await one.get_legal_request(request_id)
            assert record is not None and record.status == "approved"
            assert len(record.approvals) == 2


async def test_rejections_of_schema_9_are_carried_over_sealed(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Release 0.2.x stored a rejection as a row of the reasons table under the request's
    id (sealed as a justification); the upgrade moves it, and it opens as before."""
    from gateway.store import postgres, sqlite

    keys = AtRestKeys.generate()
    for module in (sqlite, postgres):
        monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:9])
    old = protect(await open_store(backend.url, backend.root), keys)
    try:
        assert max(await old.schema_versions()) == 9
        for request_id in ("LR-1", "LR-2"):
            await old.add_legal_request(request(request_id))
        await old.add_justification(JustificationRecord("LR-1", "bob", REASON, T0))
        await old.add_justification(JustificationRecord("d-emergency", "bob", "fire", T0))
    finally:
        await old.close()
    monkeypatch.undo()

    raw = await open_store(backend.url, backend.root)
    store = protect(raw, keys)
    try:
        assert 11 in await store.schema_versions()
        record = await store.get_legal_request("LR-1")
        assert record is not None and record.status == "rejected"
        assert record.rejection == Rejection("bob", REASON, T0)
        stored = await raw.get_legal_request("LR-1")
        assert stored is not None and stored.rejection is not None
        assert is_sealed(stored.rejection.reason)  # moved as it was, still sealed
        assert [r.id for r in await store.list_legal_requests("pending")] == ["LR-2"]
        # Moved, not copied: the reasons table keeps only the disclosures' justifications.
        assert await store.get_justification("LR-1") is None
        justification = await store.get_justification("d-emergency")
        assert justification is not None and justification.text == "fire"
        with pytest.raises(ConflictError, match="rejected by bob"):
            await store.approve_legal_request("LR-1", "carol", T0)
    finally:
        await store.close()
