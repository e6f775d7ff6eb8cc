"""The checkpoint loop follows appends (issue #18): it signs soon after this instance
commits, at most once per interval, and not at all while nothing is appended."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.log import sent_entry

from gateway.log.service import LogService, LogSigner
from gateway.store import Store

SIGNER = LogSigner("gateway.test/disclosures", Ed25519PrivateKey.generate())
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def entry(i: int) -> dict[str, Any]:
    return sent_entry(i, T0)


async def until(
    condition: Callable[[list[int]], bool], store: Store, timeout_s: float = 10.0
) -> list[int]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        sizes = [c.size for c in await store.checkpoints()]
        if condition(sizes):
            return sizes
        assert asyncio.get_running_loop().time() < deadline, sizes
        await asyncio.sleep(0.02)


async def test_a_checkpoint_follows_an_append_and_none_is_signed_while_idle(store: Store) -> None:
    service = LogService(store, SIGNER)
    service.start(0.05)
    try:
        assert await until(lambda sizes: sizes == [0], store) == [0]  # the one at start
        await service.append(entry(0))
        await until(lambda sizes: sizes[-1] == 1, store)
        await service.append(entry(1))
        await service.append(entry(2))
        sizes = await until(lambda sizes: sizes[-1] == 3, store)
        await asyncio.sleep(0.3)  # idle: nothing new, nothing signed
        assert [c.size for c in await store.checkpoints()] == sizes
    finally:
        await service.stop(final_checkpoint=False)


async def test_at_most_one_checkpoint_per_interval(store: Store) -> None:
    service = LogService(store, SIGNER)
    service.start(1.0)
    try:
        await until(lambda sizes: sizes == [0], store)
        await service.append(entry(0))
        await until(lambda sizes: sizes[-1] == 1, store)
        await service.append(entry(1))
        await asyncio.sleep(0.2)  # within the interval after the last one: not yet
        assert [c.size for c in await store.checkpoints()][-1] == 1
        await until(lambda sizes: sizes[-1] == 2, store)
    finally:
        await service.stop(final_checkpoint=False)


async def test_a_stop_that_meets_an_appends_wake_up_ends_the_loop(store: Store) -> None:
    # Python 3.11's wait_for returned the wake-up's result instead of the cancel when both
    # came at once, and the loop ran on: the gateway's stop waited on it for ever.
    service = LogService(store, SIGNER)
    service.start(0.0)
    await asyncio.sleep(0.1)  # the first checkpoint signed, the loop waits for an append
    service._appended.set()  # an append's wake-up, in the same turn as the stop's cancel
    await asyncio.wait_for(service.stop(final_checkpoint=False), timeout=2)
