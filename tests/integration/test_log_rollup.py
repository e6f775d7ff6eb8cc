"""The per-day rollups of the log (schema 12, gateway.store.rollup_sql) on SQLite and
PostgreSQL: counted by readers up to a mark, a disclosure counted when its first `sent`
outcome arrives, windows that start and end inside a day, the check against the entries
and the rebuild."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from test_log_service import raw
from test_ropa_store import T0, consent, disclosure
from test_store_summary import SINCE, entry

import gateway.store.sql_store
from gateway.crypto.subject_keys import LogKeys
from gateway.log.entries import row_of
from gateway.partners.model import Partner
from gateway.store.base import Store
from gateway.store.records import RopaCounts
from gateway.store.summary_sql import DayCount, KeyCount

if TYPE_CHECKING:
    from conftest import Backend

ROW = ("credit_check", "service_provision", "consent")


async def appended(store: Store, entries: list[dict[str, Any]]) -> None:
    await store.append_log_entries([row_of(e) for e in entries])


def summed(counts: RopaCounts) -> dict[str, Any]:
    [row] = [r for r in counts.rows if (r.operation, r.purpose, r.legal_basis) == ROW]
    fields = {f.field: f.disclosures for f in counts.fields if f.legal_basis == "consent"}
    return {
        "disclosures": row.disclosures,
        "first": row.first,
        "last": row.last,
        "consents": (row.consents, row.consents_withdrawn),
        "fields": fields,
    }


async def test_a_disclosure_counts_when_its_outcome_arrives_after_a_read(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    bureau = partners["lao-credit-bureau"]
    [intent, outcome] = disclosure(1, bureau, *ROW, ("name",), log_keys)
    await appended(store, [intent])
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert (await store.ropa_counts(*window)).rows == ()
    assert await store.check_rollup() == (1, [])  # the intent is below the mark, uncounted
    await appended(store, [outcome])
    assert summed(await store.ropa_counts(*window))["disclosures"] == 1
    # A second `sent` of the same disclosure (a retry after `unknown`) counts it no more.
    await appended(store, disclosure(1, bureau, *ROW, ("name",), log_keys)[1:])
    assert summed(await store.ropa_counts(*window))["disclosures"] == 1
    assert await store.check_rollup() == (3, [])


async def test_a_window_inside_days_counts_its_partial_days_from_the_entries(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    bureau = partners["lao-credit-bureau"]
    await store.add_consent(consent("c-1", True))
    await store.add_consent(consent("c-2", False))
    day = timedelta(days=1)
    entries: list[dict[str, Any]] = []
    # n minutes after T0 + 10 h of days 0 to 3; the window is day 0 12:00 → day 3 11:00.
    for n, (offset, fields, cid) in enumerate(
        [
            (0 * day, ("name",), "c-1"),  # before the window (day 0, 10:01)
            (0 * day + timedelta(hours=3), ("uuid",), "c-1"),  # day 0 13:02: counted
            (1 * day, ("name", "phone"), "c-1"),  # a whole day
            (2 * day, ("name",), "c-2"),
            (3 * day, ("name",), None),  # day 3 10:05: counted
            (3 * day + timedelta(hours=2), ("name",), None),  # after the window
        ],
        start=1,
    ):
        at = T0 + timedelta(hours=10) + offset
        entries += disclosure(n, bureau, *ROW, fields, log_keys, consent_id=cid, at=at)
    await appended(store, entries)
    since, until = T0 + timedelta(hours=12), T0 + 3 * day + timedelta(hours=11)

    counted = summed(await store.ropa_counts(since, until))

    assert counted == {
        "disclosures": 4,
        "first": T0 + timedelta(hours=13, minutes=2),
        "last": T0 + 3 * day + timedelta(hours=10, minutes=5),
        "consents": (2, 1),  # c-1 in the partial day 0 and on day 1: one consent
        "fields": {"uuid": 1, "name": 3, "phone": 1},
    }
    # Within one day: only the entries.
    one_day = await store.ropa_counts(T0 + day, T0 + day + timedelta(hours=12))
    assert summed(one_day)["disclosures"] == 1


async def test_a_long_window_reads_whole_months_and_the_days_around_them(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    bureau = partners["lao-credit-bureau"]
    await store.add_consent(consent("c-1", True))
    entries: list[dict[str, Any]] = []
    # T0 is 1 May: one disclosure a day at 09:00 from 20 April to 10 July (disclosure()
    # adds n + 1 minutes: taken off).
    start = T0 - timedelta(days=11) + timedelta(hours=9)
    for n in range(82):
        at = start + timedelta(days=n) - timedelta(minutes=n + 1)
        cid = "c-1" if n % 2 else None
        entries += disclosure(n + 1, bureau, *ROW, ("name",), log_keys, consent_id=cid, at=at)
    await appended(store, entries)
    # 25 April 12:00 → 5 July 08:00: partial 25 April, whole days 26–30 April, whole May
    # and June, whole days 1–4 July, partial 5 July.
    since = T0 - timedelta(days=6) + timedelta(hours=12)
    until = T0 + timedelta(days=65, hours=8)

    counted = summed(await store.ropa_counts(since, until))

    # 26 April … 4 July: 70 days (25 April's is before 12:00, 5 July's after 08:00).
    assert counted["disclosures"] == 70
    assert counted["first"] == start + timedelta(days=6)
    assert counted["last"] == start + timedelta(days=75)
    assert counted["fields"] == {"name": 70}
    assert counted["consents"] == (1, 1)
    assert await store.check_rollup() == (164, [])


async def test_counted_in_batches_as_in_one(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    bureau = partners["lao-credit-bureau"]
    entries: list[dict[str, Any]] = []
    for n in range(1, 8):
        entries += disclosure(n, bureau, *ROW, ("name",) if n % 2 else ("uuid",), log_keys)
    await appended(store, entries)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    monkeypatch.setattr(gateway.store.sql_store, "ROLLUP_BATCH", 3)
    in_batches = await store.ropa_counts(*window)
    assert await store.check_rollup() == (14, [])
    assert await store.rebuild_rollup() == 14
    monkeypatch.setattr(gateway.store.sql_store, "ROLLUP_BATCH", 1000)
    assert await store.rebuild_rollup() == 14
    assert await store.ropa_counts(*window) == in_batches
    assert summed(in_batches)["fields"] == {"name": 4, "uuid": 3}


async def test_the_check_finds_a_changed_count_and_the_rebuild_mends_it(
    store: Store, backend: Backend, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    bureau = partners["lao-credit-bureau"]
    await appended(store, disclosure(1, bureau, *ROW, ("name",), log_keys))
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert summed(await store.ropa_counts(*window))["disclosures"] == 1

    await raw(backend, store, "UPDATE ropa_days SET disclosures = disclosures + 9")
    await raw(backend, store, "DELETE FROM summary_outcome_days")
    assert summed(await store.ropa_counts(*window))["disclosures"] == 10
    mark, differ = await store.check_rollup()
    assert mark == 2
    assert differ == [  # the day's row and the month's
        "ropa_days: 2 row(s) the entries give are not stored, "
        "2 stored row(s) the entries do not give",
        "summary_outcome_days: 1 row(s) the entries give are not stored, "
        "0 stored row(s) the entries do not give",
    ]

    assert await store.rebuild_rollup() == 2
    assert await store.check_rollup() == (2, [])
    assert summed(await store.ropa_counts(*window))["disclosures"] == 1
    assert await store.decisions_by_day(T0) == [DayCount(T0.date(), "sent", 1)]


async def test_the_overview_counts_what_was_appended_since_its_last_read(store: Store) -> None:
    await store.migrate()
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    await store.append_log_entries(
        [entry(1, "intent", at), entry(1, "outcome", at, outcome="sent")]
    )
    assert await store.decisions_by_day(SINCE) == [DayCount(at.date(), "sent", 1)]
    await store.append_log_entries(
        [entry(2, "refused", at, partner="adreach", problem="consent_required")]
    )
    assert await store.decisions_by_day(SINCE) == [
        DayCount(at.date(), "refused", 1),
        DayCount(at.date(), "sent", 1),
    ]
    assert await store.refusals_by_problem(SINCE) == [KeyCount("consent_required", 1)]
    assert await store.decisions_by_partner(SINCE, 5) == [
        KeyCount("adreach", 1),
        KeyCount("bcel-payments", 1),
    ]
    # Whole days: a `since` inside a day counts that day.
    assert await store.decisions_by_partner(at + timedelta(hours=1), 1) == [KeyCount("adreach", 1)]


async def test_verify_and_rebuild_count_in_ranges_and_find_a_row_changed_in_the_middle(
    store: Store,
    backend: Backend,
    partners: dict[str, Partner],
    log_keys: LogKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2,400 entries over 50 days, checked 170 entries per statement and rebuilt 130 per
    # transaction: a day's counts and a month's come from several ranges each.
    monkeypatch.setattr(gateway.store.sql_store, "RECOUNT_RANGE", 170)
    monkeypatch.setattr(gateway.store.sql_store, "ROLLUP_BATCH", 130)
    bureau = partners["lao-credit-bureau"]
    await store.add_consent(consent("c-1", True))
    entries: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    for n in range(1, 1201):
        at = T0 - timedelta(days=25) + timedelta(hours=n)
        intent, outcome = disclosure(
            n,
            bureau,
            *ROW,
            ("name",) if n % 3 else ("name", "uuid"),
            log_keys,
            consent_id="c-1" if n % 4 == 0 else None,
            at=at,
        )
        entries.append(intent)
        # One in ten sent ranges later, after the intents of other days.
        (late if n % 10 == 0 else entries).append(outcome)
    await appended(store, entries + late)
    window = (T0 - timedelta(days=30), T0 + timedelta(days=30))
    before = await store.ropa_counts(*window)
    assert summed(before)["disclosures"] == 1200

    told: list[tuple[int, int]] = []
    assert await store.check_rollup(lambda done, total: told.append((done, total))) == (2400, [])
    assert told == [(min(end, 2400), 2400) for end in range(170, 2400 + 170, 170)]

    # A day in the middle of the log (its entries are near index 1,200).
    middle = (T0 - timedelta(days=25) + timedelta(hours=600)).date().isoformat()
    await raw(
        backend,
        store,
        "UPDATE ropa_days SET disclosures = disclosures + 1 WHERE grain = 'day' AND period = ?",
        middle,
    )
    mark, differ = await store.check_rollup()
    assert (mark, differ) == (
        2400,
        [
            "ropa_days: 1 row(s) the entries give are not stored, "
            "1 stored row(s) the entries do not give"
        ],
    )

    rebuilt: list[int] = []
    assert await store.rebuild_rollup(lambda done, _total: rebuilt.append(done)) == 2400
    assert rebuilt == [min(end, 2400) for end in range(130, 2400 + 130, 130)]
    assert await store.check_rollup() == (2400, [])
    assert await store.ropa_counts(*window) == before


def count_hook(store: Store, during_count: Any) -> None:
    """Run `during_count()` once, when the store first reads a rollup's count."""
    counting = {store._in_dialect(r.counted) for r in store._rollups}  # type: ignore[attr-defined]
    rows = store._long_rows  # type: ignore[attr-defined]
    fired: list[bool] = []

    async def hooked(action: str, sql: str, params: Any = ()) -> Any:
        if sql in counting and not fired:
            fired.append(True)
            await during_count()
        return await rows(action, sql, params)

    store._long_rows = hooked  # type: ignore[attr-defined]


async def test_the_log_commits_while_a_batch_is_counted(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    # Counted under the write transaction, a batch held every intent's commit behind it
    # on SQLite (the soak's p99 once a minute): now only the upserts are.
    bureau = partners["lao-credit-bureau"]
    await appended(store, disclosure(1, bureau, *ROW, ("name",), log_keys))
    committed: list[list[int]] = []

    async def append_meanwhile() -> None:
        row = row_of(disclosure(2, bureau, *ROW, ("name",), log_keys)[0])
        committed.append(await asyncio.wait_for(store.append_log_entries([row]), 5))

    count_hook(store, append_meanwhile)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert summed(await store.ropa_counts(*window))["disclosures"] == 1
    assert committed == [[2]]
    assert await store.roll_up_log() == 3
    assert await store.check_rollup() == (3, [])


async def test_a_range_another_reader_counted_first_is_not_counted_again(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    bureau = partners["lao-credit-bureau"]
    for n in (1, 2, 3):
        await appended(store, disclosure(n, bureau, *ROW, ("name",), log_keys))

    async def another_reader_first() -> None:
        assert await store.roll_up_log() == 6

    count_hook(store, another_reader_first)
    assert await store.roll_up_log() == 6
    assert await store.check_rollup() == (6, [])
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert summed(await store.ropa_counts(*window))["disclosures"] == 3


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_counts_on_a_connection_no_disclosure_waits_for(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    # On aiosqlite's shared connection, an idempotency key's claim queued behind a count
    # of 5,000 entries (300 ms, once a minute in the soak).
    bureau = partners["lao-credit-bureau"]
    await appended(store, disclosure(1, bureau, *ROW, ("name",), log_keys))
    shared = store._conn  # type: ignore[attr-defined]
    on_shared: list[str] = []
    fetch = shared.execute_fetchall

    async def recorded(sql: str, params: Any = ()) -> Any:
        on_shared.append(sql)
        return await fetch(sql, params)

    shared.execute_fetchall = recorded
    assert await store.roll_up_log() == 2
    counting = {store._in_dialect(r.counted) for r in store._rollups}  # type: ignore[attr-defined]
    assert on_shared and not counting & set(on_shared)
    assert await store.check_rollup() == (2, [])
    assert not counting & set(on_shared)
