"""LogWriter's group commit: who waits, and which entries share a transaction.

A store that records its transactions stands in for SQLite and PostgreSQL (both run
the real writer in tests/integration/test_log_service.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from gateway.log.entries import outcome_entry
from gateway.log.writer import LogWriter
from gateway.store.records import LogRow

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class RecordingStore:
    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.projections = 0

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        await asyncio.sleep(0)  # a commit takes a trip through the loop, as a real one does
        first = sum(len(t) for t in self.transactions)
        self.transactions.append([json.loads(row.entry)["disclosure_id"] for row in entries])
        return list(range(first, first + len(entries)))

    async def project_log(self) -> int:
        self.projections += 1
        return sum(len(t) for t in self.transactions)


def entry(disclosure_id: str) -> dict[str, object]:
    return outcome_entry(
        disclosure_id=disclosure_id, outcome="sent", at=T0, partner="p", attempts=1
    )


async def test_a_queued_entry_rides_with_the_next_awaited_append() -> None:
    store = RecordingStore()
    writer = LogWriter(store, linger_s=60)
    queued = writer.append_later(entry("d-outcome-1"))
    assert await writer.append(entry("d-intent-2")) == 1
    assert await queued == 0
    assert store.transactions == [["d-outcome-1", "d-intent-2"]]


async def test_a_queued_entry_alone_commits_after_the_linger() -> None:
    store = RecordingStore()
    writer = LogWriter(store, linger_s=0.01)
    queued = writer.append_later(entry("d-1"))
    writer.append_later(entry("d-2"))
    await asyncio.sleep(0)
    assert store.transactions == []  # nobody waits on it: no commit of its own yet
    assert await asyncio.wait_for(queued, timeout=5) == 0
    assert store.transactions == [["d-1", "d-2"]]


async def test_drain_commits_queued_entries_without_waiting_for_the_linger() -> None:
    store = RecordingStore()
    writer = LogWriter(store, linger_s=60)
    queued = writer.append_later(entry("d-1"))
    await asyncio.wait_for(writer.settle(), timeout=5)
    assert queued.done() and queued.result() == 0
    assert store.transactions == [["d-1"]]


async def test_awaited_appends_do_not_linger_and_share_a_commit_under_load() -> None:
    store = RecordingStore()
    writer = LogWriter(store, linger_s=60)
    first = await asyncio.wait_for(writer.append(entry("d-0")), timeout=5)
    rest = await asyncio.wait_for(
        asyncio.gather(*(writer.append(entry(f"d-{i}")) for i in range(1, 5))), timeout=5
    )
    assert [first, *rest] == [0, 1, 2, 3, 4]
    assert store.transactions == [["d-0"], ["d-1", "d-2", "d-3", "d-4"]]


async def test_a_store_error_reaches_the_queued_entry() -> None:
    class Broken(RecordingStore):
        async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
            raise ConnectionError("store away")

    writer = LogWriter(Broken(), linger_s=0.01)
    queued = writer.append_later(entry("d-1"))
    await writer.settle()
    assert isinstance(queued.exception(), ConnectionError)


async def test_waiting_counts_what_is_queued_and_what_is_committing_until_it_is_done() -> None:
    class Held(RecordingStore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
            await self.release.wait()
            return await super().append_log_entries(entries)

    store = Held()
    writer = LogWriter(store, linger_s=60)
    first = asyncio.ensure_future(writer.append(entry("d-0")))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # d-0's commit is under way, held by the store
    writer.append_later(entry("d-1"))
    writer.append_later(entry("d-2"))
    assert writer.waiting == 3  # one committing, two queued behind it
    store.release.set()
    await asyncio.wait_for(first, timeout=5)
    await asyncio.wait_for(writer.settle(), timeout=5)
    assert writer.waiting == 0


async def test_one_projection_pass_covers_the_commits_of_its_delay() -> None:
    # A pass costs reads and a commit of its own: one per batch doubled the CPU of a
    # disclosure when requests came one at a time (make bench, 2026-12-08).
    store = RecordingStore()
    writer = LogWriter(store, project_delay_s=0.05)
    for number in range(10):
        await writer.append(entry(f"d-{number}"))
    assert len(store.transactions) == 10 and store.projections == 0
    await asyncio.sleep(0.2)
    assert store.projections == 1


async def test_settle_projects_at_once_instead_of_waiting_for_the_delay() -> None:
    store = RecordingStore()
    writer = LogWriter(store, project_delay_s=60)
    await writer.append(entry("d-1"))
    await asyncio.wait_for(writer.settle(), timeout=5)
    assert store.projections == 1


class SlowProjectionStore(RecordingStore):
    async def project_log(self) -> int:
        self.projections += 1  # counted when the pass starts
        await asyncio.sleep(0.1)
        return sum(len(t) for t in self.transactions)


async def test_commits_during_a_pass_start_the_next_one_a_delay_later() -> None:
    # Started at the end of the pass, passes of a few entries each ran back to back
    # under a steady load, as many as before the delay.
    store = SlowProjectionStore()
    writer = LogWriter(store, project_delay_s=0.3)
    await writer.append(entry("d-0"))
    await asyncio.sleep(0.35)  # the pass runs from 0.3 s to 0.4 s
    assert store.projections == 1
    await writer.append(entry("d-1"))  # during it
    await asyncio.sleep(0.15)  # back to back, the next would have started at 0.4 s
    assert store.projections == 1
    await asyncio.wait_for(writer.settle(), timeout=5)  # settles without the delay
    assert store.projections == 2
