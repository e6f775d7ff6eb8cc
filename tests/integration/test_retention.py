"""Retention on SQLite and PostgreSQL: the rows of instances and idempotency keys that
the sweep deletes, and the ones it never deletes (gateway.ops.retention; README:
retention). The recovery sweep runs it after the recovery of dead instances.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from gateway.config.model import RetentionConfig
from gateway.log.entries import timestamp
from gateway.log.recovery import Recovery
from gateway.log.writer import LogWriter
from gateway.observe.metrics import Metrics
from gateway.ops.retention import Retention
from gateway.store import Store, open_store, sql_store
from gateway.store.records import LEGACY_INSTANCE, OutboxNotice

if TYPE_CHECKING:
    from conftest import Backend

TIMEOUT_S = 0.5
PAST_TIMEOUT_S = 0.65
LATER = timedelta(days=1)  # a cutoff after every row of the test


def now() -> datetime:
    return datetime.now(UTC)


async def ids(store: Store) -> set[str]:
    return {r.id for r in await store.list_instances()}


async def test_only_instances_recovered_before_the_cutoff_are_deleted(store: Store) -> None:
    await store.register_instance("i-alive", "host", 1)
    await store.register_instance("i-retired", "host", 2)
    await store.retire_instance("i-retired")
    # Never heard from (an intent's owner the table did not track): dead, not recovered.
    await store.adopt_instances(["i-unrecovered"])
    assert await ids(store) == {LEGACY_INSTANCE, "i-alive", "i-retired", "i-unrecovered"}

    # Recovered just now: kept for the retention period.
    assert await store.prune_instances(now() - timedelta(days=7)) == 0
    # Past it, only the retired row goes; the schema-4 row and the adopted one are old
    # (their heartbeat is the epoch) but not recovered, the live one is alive.
    assert await store.prune_instances(now() + LATER) == 1
    assert await ids(store) == {LEGACY_INSTANCE, "i-alive", "i-unrecovered"}

    # Once recovered, they go in their turn; the live instance never does.
    claimed = await store.claim_stale_instances("i-alive", TIMEOUT_S)
    assert claimed == sorted([LEGACY_INSTANCE, "i-unrecovered"])
    assert await store.prune_instances(now() + LATER) == 0  # claimed is not recovered
    await store.finish_recovery(claimed, "i-alive")
    assert await store.prune_instances(now() + LATER) == 2
    assert await ids(store) == {"i-alive"}

    # A stalled instance whose row was deleted learns it at its heartbeat and registers
    # again (gateway.log.recovery); an intent of a deleted one is adopted again.
    await store.register_instance("i-stalled", "host", 3)
    await store.retire_instance("i-stalled")
    await store.prune_instances(now() + LATER)
    assert await store.heartbeat_instance("i-stalled") is False
    await store.register_instance("i-stalled", "host", 3)
    await store.adopt_instances(["i-retired"])
    assert await ids(store) == {"i-alive", "i-stalled", "i-retired"}


async def completed(store: Store, caller: str, key: str) -> None:
    assert (await store.claim_idempotency(caller, key, "h")).state == "new"
    await store.complete_idempotency(caller, key, 200, {"Disclosure-Id": key}, b"{}")


async def test_completed_keys_past_their_window_are_deleted_never_one_in_progress(
    store: Store,
) -> None:
    await completed(store, "svc", "k-done")
    assert (await store.claim_idempotency("svc", "k-running", "h")).state == "new"

    assert await store.prune_idempotency_keys(now() - timedelta(hours=24)) == 0
    assert (await store.claim_idempotency("svc", "k-done", "h")).state == "completed"

    assert await store.prune_idempotency_keys(now() + LATER) == 1
    # The deleted key is new again; the one in progress still holds.
    assert (await store.claim_idempotency("svc", "k-running", "h")).state == "in_progress"
    assert (await store.claim_idempotency("svc", "k-done", "h")).state == "new"


async def test_keys_are_deleted_in_batches_until_none_is_left(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_store, "PRUNE_BATCH", 2)
    for n in range(5):
        await completed(store, f"svc-{n % 2}", f"k-{n}")
    assert await store.prune_idempotency_keys(now() + LATER) == 5
    assert await store.prune_idempotency_keys(now() + LATER) == 0


async def test_only_expired_review_sessions_are_deleted(store: Store) -> None:
    start = now()
    await store.add_review_session("s-live", "alice", start, start + timedelta(hours=8))
    await store.add_review_session("s-ended", "bob", start, start + timedelta(hours=8))
    await store.end_review_session("s-ended", "bob", start)
    assert await store.prune_expired_review_sessions(start) == 0
    # Eight hours on, both cookies have expired, the ended one and the live one.
    assert await store.prune_expired_review_sessions(start + timedelta(hours=8)) == 2
    assert not await store.review_session_live("s-live", "alice", start)


def notice(notice_id: str, status: str, done_at: datetime | None) -> OutboxNotice:
    return OutboxNotice(
        id=notice_id,
        kind="erasure",
        partner="bcel-payments",
        operation="erasure",
        reference="RR-1",
        payload="{}",
        status=status,
        attempts=1,
        created_at=now(),
        next_at=now(),
        done_at=done_at,
    )


async def test_only_notices_a_partner_accepted_are_deleted_after_their_period(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_store, "PRUNE_BATCH", 2)  # batches exercised
    for n in range(3):
        await store.add_outbox_notice(notice(f"n-sent-{n}", "sent", now()))
    await store.add_outbox_notice(notice("n-pending", "pending", None))
    await store.add_outbox_notice(notice("n-failed", "failed", None))
    assert await store.prune_sent_notices(now() - timedelta(days=30)) == 0
    assert await store.prune_sent_notices(now() + LATER) == 3
    # What waits for a partner or a person is never deleted.
    assert {n.id for n in await store.outbox_notices()} == {"n-pending", "n-failed"}


async def test_the_index_of_the_sweep_is_in_the_schema(store: Store) -> None:
    assert 9 in await store.schema_versions()


# -- the sweep -------------------------------------------------------------------------


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def intent(disclosure_id: str) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "intent",
        "time": timestamp(now()),
        "disclosure_id": disclosure_id,
        "partner": "lao-credit-bureau",
    }


@pytest.fixture
async def stores(backend: Backend) -> AsyncIterator[list[Store]]:
    """Two connections to one store: two processes."""
    opened = [await open_store(backend.url, backend.root) for _ in range(2)]
    yield opened
    for store in opened:
        await store.close()


async def live_and_dead(
    live_store: Store, dead_store: Store, housekeeping: Callable[[], Awaitable[None]]
) -> tuple[Recovery, Recovery, Monotonic]:
    """Two started instances: the live one, on a clock the test moves, runs `housekeeping`
    after its sweeps; the other is about to die (the test writes its unfinished intent)."""
    clock = Monotonic()
    live = Recovery(
        live_store,
        LogWriter(live_store),
        timeout_s=TIMEOUT_S,
        monotonic=clock,
        housekeeping=housekeeping,
    )
    await live.start(background=False)
    dead = Recovery(dead_store, LogWriter(dead_store), timeout_s=TIMEOUT_S)
    await dead.start(background=False)
    return live, dead, clock


async def test_the_recovery_sweep_prunes_a_dead_instance_only_after_recovering_it(
    stores: list[Store],
) -> None:
    live_store, dead_store = stores
    metrics = Metrics()
    # A zero period: whatever is recovered is prunable at once (the config allows a day).
    rules = RetentionConfig(instances_days=0, idempotency_hours=0)
    retention = Retention(live_store, rules, counter=metrics)
    live, dead, clock = await live_and_dead(live_store, dead_store, retention.prune_if_due)
    await dead.log.append(intent("d-dead-1"))  # then the process dies: no outcome
    await completed(live_store, "svc", "k-1")
    try:
        await asyncio.sleep(PAST_TIMEOUT_S)
        clock.now += 10  # the live instance has been alive long enough to judge
        assert await live.sweep() == ["d-dead-1"]
        rows = await live_store.log_entries_for_disclosure("d-dead-1")
        assert [json.loads(raw).get("outcome") for _, raw in rows] == [None, "unknown"]
        # Recovered first, then pruned in the same sweep, with the schema-4 row.
        assert await ids(live_store) == {live.instance_id}
        assert (await live_store.claim_idempotency("svc", "k-1", "h")).state == "new"
        text = metrics.render().decode()
        assert 'gateway_retention_pruned_rows_total{table="instances"} 2.0' in text
        assert 'gateway_retention_pruned_rows_total{table="idempotency_keys"} 1.0' in text
    finally:
        await live.stop()


async def test_a_failing_prune_does_not_undo_the_recovery(stores: list[Store]) -> None:
    live_store, dead_store = stores

    async def failing() -> None:
        from gateway.store.records import StoreUnavailable

        raise StoreUnavailable("database away while pruning (test)")

    live, dead, clock = await live_and_dead(live_store, dead_store, failing)
    await dead.log.append(intent("d-dead-2"))
    try:
        await asyncio.sleep(PAST_TIMEOUT_S)
        clock.now += 10
        assert await live.sweep() == ["d-dead-2"]
        rows = {r.id: r for r in await live_store.list_instances()}
        assert rows[dead.instance_id].recovered_at is not None
    finally:
        await live.stop()
