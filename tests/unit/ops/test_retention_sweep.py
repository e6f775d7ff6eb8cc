"""The retention sweep's own rules (gateway.ops.retention): what it asks the store to
delete, how often, and what it counts. The deletes themselves, on both databases, are in
tests/integration/test_retention.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.config.model import RetentionConfig
from gateway.observe.metrics import Metrics
from gateway.ops.retention import PRUNE_EVERY_S, Pruned, Retention

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class FakeStore:
    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime]] = []

    async def prune_instances(self, recovered_before: datetime) -> int:
        self.calls.append(("instances", recovered_before))
        return 2

    async def prune_idempotency_keys(self, claimed_before: datetime) -> int:
        self.calls.append(("idempotency_keys", claimed_before))
        return 5

    async def prune_expired_review_sessions(self, now: datetime) -> int:
        self.calls.append(("review_sessions", now))
        return 1

    async def prune_sent_notices(self, done_before: datetime) -> int:
        self.calls.append(("sent_notices", done_before))
        return 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_each_rule_deletes_what_is_older_than_its_period() -> None:
    store = FakeStore()
    rules = RetentionConfig(instances_days=7, idempotency_hours=24, sent_notices_days=30)
    pruned = await Retention(store, rules, clock=lambda: NOW).prune()
    assert pruned == Pruned(instances=2, idempotency_keys=5, review_sessions=1, sent_notices=3)
    assert store.calls == [
        ("instances", NOW - timedelta(days=7)),
        ("idempotency_keys", NOW - timedelta(hours=24)),
        ("review_sessions", NOW),  # an expired cookie opens nothing: its row goes at once
        ("sent_notices", NOW - timedelta(days=30)),
    ]


async def test_the_sweep_prunes_at_once_then_at_most_every_interval() -> None:
    store, clock = FakeStore(), Clock()
    retention = Retention(store, RetentionConfig(), clock=lambda: NOW, monotonic=clock)
    assert await retention.prune_if_due() is not None  # the first sweep
    clock.now += PRUNE_EVERY_S - 1
    assert await retention.prune_if_due() is None
    clock.now += 1
    assert await retention.prune_if_due() is not None
    assert len(store.calls) == 8


async def test_a_failed_prune_is_tried_again_at_the_next_sweep() -> None:
    class Down(FakeStore):
        down = True

        async def prune_instances(self, recovered_before: datetime) -> int:
            if self.down:
                raise RuntimeError("database away (test)")
            return await super().prune_instances(recovered_before)

    store, clock = Down(), Clock()
    retention = Retention(store, RetentionConfig(), clock=lambda: NOW, monotonic=clock)
    try:
        await retention.prune_if_due()
    except RuntimeError:
        pass
    store.down = False
    clock.now += 1
    assert await retention.prune_if_due() == Pruned(2, 5, 1, 3)


async def test_rows_pruned_are_counted_by_table() -> None:
    metrics = Metrics()
    retention = Retention(FakeStore(), RetentionConfig(), counter=metrics, clock=lambda: NOW)
    await retention.prune()
    await retention.prune()
    text = metrics.render().decode()
    assert 'gateway_retention_pruned_rows_total{table="instances"} 4.0' in text
    assert 'gateway_retention_pruned_rows_total{table="idempotency_keys"} 10.0' in text
    assert 'gateway_retention_pruned_rows_total{table="review_sessions"} 2.0' in text
    assert 'gateway_retention_pruned_rows_total{table="sent_notices"} 6.0' in text
