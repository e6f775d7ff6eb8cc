"""Partner suspensions in the store (migration 5), on SQLite and on PostgreSQL: one row
per suspended partner, a history row per act in the same transaction, idempotent
suspend and resume, and what a second store on the same database sees."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.partners.model import Suspension
from gateway.store import Store, open_store

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BREACH = Suspension("veriid", "INC-2026-114: partner breach", "reviewer-alice", T0)


async def test_suspend_resume_and_history(store: Store) -> None:
    assert await store.partner_suspensions() == {}
    assert await store.suspend_partner(BREACH) == BREACH
    assert await store.partner_suspensions() == {"veriid": BREACH}

    later = Suspension("veriid", "second click", "reviewer-bob", T0 + timedelta(minutes=1))
    assert await store.suspend_partner(later) == BREACH  # already suspended: nothing written

    lifted = await store.resume_partner("veriid", "reviewer-bob", "keys rotated", T0 + timedelta(1))
    assert lifted == BREACH
    assert await store.partner_suspensions() == {}
    assert await store.resume_partner("veriid", "reviewer-bob", "", T0 + timedelta(2)) is None

    history = await store.suspension_history()
    assert [(e.action, e.actor, e.reason, e.at) for e in history] == [
        ("resume", "reviewer-bob", "keys rotated", T0 + timedelta(1)),
        ("suspend", "reviewer-alice", "INC-2026-114: partner breach", T0),
    ]
    assert history[0].seq > history[1].seq


async def test_history_by_partner_and_limit(store: Store) -> None:
    for n, partner in enumerate(("veriid", "adreach", "veriid")):
        at = T0 + timedelta(minutes=n)
        await store.suspend_partner(Suspension(partner, f"r{n}", "ops", at))
        await store.resume_partner(partner, "reviewer-bob", "", at + timedelta(seconds=1))
    assert len(await store.suspension_history()) == 6
    veriid = await store.suspension_history("veriid")
    assert {e.partner_id for e in veriid} == {"veriid"} and len(veriid) == 4
    assert [e.action for e in await store.suspension_history(limit=1)] == ["resume"]
    with pytest.raises(ValueError):
        await store.suspension_history(limit=0)


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.suspend_partner(Suspension("veriid", "r", "ops", datetime(2026, 1, 1)))


async def test_another_store_on_the_same_database_sees_it(backend, store: Store) -> None:
    other = await open_store(backend.url, backend.root)
    try:
        await store.suspend_partner(BREACH)
        assert await other.partner_suspensions() == {"veriid": BREACH}
        # Both instances clicking at once: one suspension, one history row.
        results = await asyncio.gather(
            other.resume_partner("veriid", "a", "", T0 + timedelta(1)),
            store.resume_partner("veriid", "b", "", T0 + timedelta(1)),
        )
        assert sorted(r is None for r in results) == [False, True]
        assert [e.action for e in await store.suspension_history()] == ["resume", "suspend"]
    finally:
        await other.close()
