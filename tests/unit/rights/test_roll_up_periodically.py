"""The server's periodic count of new log entries into the per-day rollups: it runs at
once, again each interval, and a store that is down one round is tried the next."""

from __future__ import annotations

import asyncio

import pytest

from gateway.rights.ropa import roll_up_periodically
from gateway.store.records import StoreUnavailable


class FlakyRollups:
    def __init__(self) -> None:
        self.calls = 0

    async def roll_up_log(self) -> int:
        self.calls += 1
        if self.calls == 1:
            raise StoreUnavailable("count the disclosure log")
        return 10 * self.calls

    async def rebuild_rollup(self) -> int:
        raise AssertionError("never rebuilt by the server")

    async def check_rollup(self) -> tuple[int, list[str]]:
        raise AssertionError("never checked by the server")


async def test_counts_each_interval_and_outlives_an_unavailable_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyRollups()
    task = asyncio.create_task(roll_up_periodically(store, every_s=0.01))
    while store.calls < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "the per-day counts of the log were not brought up to date" in caplog.text
