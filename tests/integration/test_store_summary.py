"""The overview's counts (`LogSummaryStore`): one GROUP BY each, the same on SQLite and
PostgreSQL, counting only the window (issue #19 item 4)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from gateway.store import Store
from gateway.store.records import LogRow
from gateway.store.summary_sql import DayCount, KeyCount

LEAF = b"\x00" * 32
SINCE = datetime(2026, 11, 1, tzinfo=UTC)


def entry(
    n: int, kind: str, at: datetime, partner: str = "bcel-payments", **members: str
) -> LogRow:
    data = {"disclosure_id": f"d-{n}", "kind": kind, "partner": partner, **members}
    data |= {"subject_ref": "ref", "time": at.isoformat()}
    return LogRow(json.dumps(data).encode(), LEAF)


async def seeded(store: Store) -> None:
    day1 = datetime(2026, 11, 2, 23, 59, tzinfo=UTC)
    day2 = datetime(2026, 11, 3, 0, 1, tzinfo=UTC)
    before = SINCE - timedelta(seconds=1)
    await store.append_log_entries(
        [
            entry(1, "intent", day1),
            entry(1, "outcome", day1, outcome="sent"),
            entry(2, "intent", day1),
            entry(2, "outcome", day2, outcome="failed"),
            entry(3, "intent", day2, partner="veriid"),  # pending: not counted per day
            entry(4, "refused", day2, partner="adreach", problem="consent_required"),
            entry(5, "refused", day2, partner="adreach", problem="consent_required"),
            entry(6, "refused", day1, partner="veriid", problem="partner_suspended"),
            entry(7, "refused", before, partner="veriid", problem="unknown_operation"),
            entry(8, "intent", before),
            entry(8, "outcome", before, outcome="sent"),
            entry(9, "action", day2, partner="veriid"),  # not a decision
        ]
    )


async def test_decisions_per_day_and_outcome(store: Store) -> None:
    await seeded(store)
    assert await store.decisions_by_day(SINCE) == [
        DayCount(date(2026, 11, 2), "refused", 1),
        DayCount(date(2026, 11, 2), "sent", 1),
        DayCount(date(2026, 11, 3), "failed", 1),
        DayCount(date(2026, 11, 3), "refused", 2),
    ]


async def test_refusals_per_problem_code(store: Store) -> None:
    await seeded(store)
    assert await store.refusals_by_problem(SINCE) == [
        KeyCount("consent_required", 2),
        KeyCount("partner_suspended", 1),
    ]


async def test_partners_with_most_decisions(store: Store) -> None:
    await seeded(store)
    assert await store.decisions_by_partner(SINCE, 10) == [
        KeyCount("adreach", 2),
        KeyCount("bcel-payments", 2),
        KeyCount("veriid", 2),
    ]
    assert await store.decisions_by_partner(SINCE, 1) == [KeyCount("adreach", 2)]


async def test_an_empty_window_counts_nothing(store: Store) -> None:
    await seeded(store)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert await store.decisions_by_day(later) == []
    assert await store.refusals_by_problem(later) == []
    assert await store.decisions_by_partner(later, 5) == []
