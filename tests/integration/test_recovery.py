"""Crash recovery with several instances (gateway.log.recovery) on SQLite and PostgreSQL.

Instances are `Recovery` objects on one real store, appending through a real group-commit
LogWriter. Staleness is judged on the store's clock, so the instance timeout is short
(TIMEOUT_S) and the tests sleep past it; how long an instance has itself been alive is
its own monotonic clock, driven by hand. Also `gateway db upgrade` and the store's
instance rows.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.cli.main import main
from gateway.errors import GatewayError
from gateway.log.entries import timestamp
from gateway.log.recovery import INSTANCE_FIELD, Recovery
from gateway.log.writer import LogWriter
from gateway.store import Store, open_store
from gateway.store.records import LEGACY_INSTANCE, StoreUnavailable
from gateway.store.sqlite import MIGRATIONS

if TYPE_CHECKING:
    from conftest import Backend

TIMEOUT_S = 0.5
PAST_TIMEOUT_S = 0.65


class Monotonic:
    """A hand-driven monotonic clock: how long an instance has been alive."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """An Appender that fails while `down`, optionally after the store committed."""

    def __init__(self, writer: LogWriter) -> None:
        self.writer = writer
        self.down = False
        self.commit_then_fail = False

    async def append(self, entry: Mapping[str, Any]) -> int:
        if self.commit_then_fail:
            await self.writer.append(entry)
            raise StoreUnavailable("connection lost after COMMIT (test)")
        if self.down:
            raise StoreUnavailable("database down (test)")
        return await self.writer.append(entry)

    def append_later(self, entry: Mapping[str, Any]) -> asyncio.Future[int]:
        if not self.down:
            return self.writer.append_later(entry)
        failed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        failed.set_exception(StoreUnavailable("database down (test)"))
        return failed

    async def settle(self) -> None:
        await self.writer.settle()


def intent(disclosure_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "intent",
        "time": timestamp(datetime.now(UTC)),
        "disclosure_id": disclosure_id,
        "partner": "lao-credit-bureau",
        **extra,
    }


def outcome(disclosure_id: str, result: str = "sent") -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "outcome",
        "time": timestamp(datetime.now(UTC)),
        "disclosure_id": disclosure_id,
        "partner": "lao-credit-bureau",
        "outcome": result,
    }


async def entries_of(store: Store, disclosure_id: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for _, raw in await store.log_entries_for_disclosure(disclosure_id)]


async def outcomes_of(store: Store, disclosure_id: str) -> list[str]:
    return [e["outcome"] for e in await entries_of(store, disclosure_id) if e["kind"] == "outcome"]


@pytest.fixture
async def opener(backend: Backend) -> AsyncIterator[Callable[[], Any]]:
    """Opens further connections to the same store (one per instance, as processes do)."""
    opened: list[Store] = []

    async def open_one() -> Store:
        store = await open_store(backend.url, backend.root)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


async def instance(store: Store, clock: Monotonic | None = None) -> tuple[Recovery, Flaky]:
    flaky = Flaky(LogWriter(store))
    recovery = Recovery(store, flaky, timeout_s=TIMEOUT_S, monotonic=clock or Monotonic())
    await recovery.start(background=False)  # each test says when an instance sweeps
    return recovery, flaky


async def test_only_a_silent_instance_is_recovered_and_only_once(
    opener: Callable[[], Any],
) -> None:
    clocks = [Monotonic() for _ in range(3)]
    stores = [await opener() for _ in range(3)]
    (a, _), (b, _), (c, _) = [await instance(s, k) for s, k in zip(stores, clocks, strict=True)]
    try:
        await b.log.append(intent("d-b-1"))
        await b.log.append(intent("d-b-2"))
        await b.log.append(outcome("d-b-2"))
        await a.log.append(intent("d-a-1"))
        assert set(b.log.in_flight) == {"d-b-1"}

        # B is busy delivering and alive: A (alive long enough to judge) leaves it be.
        await asyncio.sleep(PAST_TIMEOUT_S)
        await b.sweep()
        await c.sweep()
        clocks[0].now += 10
        assert await a.sweep() == []

        # B goes silent. A and C sweep at the same moment: one of them marks it.
        await asyncio.sleep(PAST_TIMEOUT_S)
        clocks[2].now += 10
        await stores[0].heartbeat_instance(a.instance_id)  # A and C are both alive
        await stores[2].heartbeat_instance(c.instance_id)
        marked = await asyncio.gather(a.sweep(), c.sweep())
        assert sorted(marked, key=len) == [[], ["d-b-1"]]
        assert await outcomes_of(stores[0], "d-b-1") == ["unknown"]
        assert await outcomes_of(stores[0], "d-b-2") == ["sent"]
        assert await outcomes_of(stores[0], "d-a-1") == []  # A's own, still in flight
        assert (await entries_of(stores[0], "d-b-1"))[0][INSTANCE_FIELD] == b.instance_id

        await asyncio.sleep(PAST_TIMEOUT_S)
        assert await a.sweep() == [] and await c.sweep() == []
        rows = {r.id: r for r in await stores[0].list_instances()}
        assert rows[b.instance_id].recovered_at is not None
        assert rows[b.instance_id].claimed_by in (a.instance_id, c.instance_id)
        assert rows[a.instance_id].recovered_at is None
    finally:
        await a.stop()
        await c.stop()


async def test_an_outcome_queued_without_waiting_is_kept_if_its_commit_fails(
    opener: Callable[[], Any],
) -> None:
    store = await opener()
    recovery, flaky = await instance(store)
    try:
        await recovery.log.append(intent("d-soon-1"))
        await recovery.log.append(intent("d-soon-2"))
        recovery.log.append_later(outcome("d-soon-1"))
        assert not recovery.log.settled  # queued, not yet committed
        await recovery.log.settle()
        assert await outcomes_of(store, "d-soon-1") == ["sent"]

        flaky.down = True
        recovery.log.append_later(outcome("d-soon-2", "failed"))
        await recovery.log.settle()
        assert [e["disclosure_id"] for e in recovery.log.backlog] == ["d-soon-2"]
        assert await outcomes_of(store, "d-soon-2") == []
        flaky.down = False
        await recovery.sweep()  # the store is back: the kept outcome is written
        assert await outcomes_of(store, "d-soon-2") == ["failed"]
        assert recovery.log.settled
        with pytest.raises(ValueError, match="intent must be durable"):
            recovery.log.append_later(intent("d-soon-3"))
    finally:
        await recovery.stop()


class Outage:
    """A store whose heartbeats fail while `down` (the database is away for this instance)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def heartbeat_instance(self, instance_id: str) -> bool:
        if self.down:
            raise StoreUnavailable("database down (test)")
        return await self.store.heartbeat_instance(instance_id)


async def test_after_a_database_outage_no_instance_takes_a_live_peer_for_dead(
    opener: Callable[[], Any],
) -> None:
    clock = Monotonic()
    store_a, store_b = Outage(await opener()), await opener()
    a = Recovery(store_a, LogWriter(store_a.store), timeout_s=TIMEOUT_S, monotonic=clock)
    await a.start(background=False)
    b, _ = await instance(store_b)
    try:
        await b.log.append(intent("d-b-1"))
        clock.now += 10
        store_a.down = True
        with pytest.raises(StoreUnavailable):
            await a.sweep()
        await asyncio.sleep(PAST_TIMEOUT_S)  # every heartbeat is old when it ends
        store_a.down = False
        assert await a.sweep() == []  # back, but not yet alive for a full timeout
        await b.sweep()  # B reconnects within its heartbeat interval
        clock.now += 10
        assert await a.sweep() == []
        assert await outcomes_of(store_b, "d-b-1") == []
    finally:
        await a.stop()
        await b.stop()


async def test_a_presumed_dead_instance_registers_again(opener: Callable[[], Any]) -> None:
    clock = Monotonic()
    store_a, store_b = await opener(), await opener()
    (a, _), (b, _) = await instance(store_a, clock), await instance(store_b)
    try:
        await b.log.append(intent("d-b-1"))
        await asyncio.sleep(PAST_TIMEOUT_S)  # B stalls past the timeout
        clock.now += 10
        assert await a.sweep() == ["d-b-1"]

        assert await b.sweep() == []  # learns it, registers again
        await b.log.append(intent("d-b-2"))
        assert await a.sweep() == []  # alive again: its new disclosures are its own
        assert await outcomes_of(store_a, "d-b-2") == []
    finally:
        await a.stop()
        await b.stop()


async def test_entries_unwritten_during_an_outage_are_written_when_it_ends(
    opener: Callable[[], Any],
) -> None:
    store = await opener()
    recovery, flaky = await instance(store)
    try:
        await recovery.log.append(intent("d-1"))
        flaky.down = True
        with pytest.raises(GatewayError):
            await recovery.log.append(outcome("d-1", "sent"))
        with pytest.raises(GatewayError):
            await recovery.log.append(intent("d-2"))
        flaky.down, flaky.commit_then_fail = False, True
        with pytest.raises(GatewayError):  # committed, but the pipeline sent nothing
            await recovery.log.append(intent("d-3"))
        flaky.commit_then_fail = False
        await recovery.log.append(intent("d-4"))
        flaky.commit_then_fail = True
        with pytest.raises(GatewayError):  # committed, though the append failed
            await recovery.log.append(outcome("d-4", "sent"))
        flaky.commit_then_fail = False
        assert not recovery.log.settled

        await recovery.sweep()

        assert recovery.log.settled
        assert await outcomes_of(store, "d-1") == ["sent"]
        assert await outcomes_of(store, "d-4") == ["sent"]  # not written twice
        # Never logged, so the caller was refused (log_unavailable): that refusal is logged.
        (refused,) = await entries_of(store, "d-2")
        assert (refused["kind"], refused["problem"]) == ("refused", "log_unavailable")
        (closing,) = [e for e in await entries_of(store, "d-3") if e["kind"] == "outcome"]
        assert (closing["outcome"], closing["maybe_received"], closing["attempts"]) == (
            "failed",
            False,
            0,
        )
    finally:
        await recovery.stop()


async def test_a_clean_stop_closes_what_it_interrupted_and_retires(
    opener: Callable[[], Any],
) -> None:
    store = await opener()
    recovery, flaky = await instance(store)
    await recovery.log.append(intent("d-1"))
    await recovery.stop()
    assert await outcomes_of(store, "d-1") == ["unknown"]
    rows = {r.id: r for r in await store.list_instances()}
    assert rows[recovery.instance_id].recovered_at is not None

    # A stop that cannot write leaves the instance for the others to recover.
    other, flaky = await instance(store)
    await other.log.append(intent("d-2"))
    flaky.down = True
    await other.stop()
    rows = {r.id: r for r in await store.list_instances()}
    assert rows[other.instance_id].recovered_at is None


async def test_intents_of_unknown_and_pre_schema_4_instances_are_adopted(
    opener: Callable[[], Any],
) -> None:
    store = await opener()
    writer = LogWriter(store)
    await writer.append(intent("d-legacy"))  # written before instances were recorded
    await writer.append(intent("d-lost", **{INSTANCE_FIELD: "i-unheard-of"}))
    clock = Monotonic()
    recovery, _ = await instance(store, clock)
    try:
        rows = {r.id for r in await store.list_instances()}
        assert {LEGACY_INSTANCE, "i-unheard-of", recovery.instance_id} <= rows
        clock.now += 10
        assert await recovery.sweep() == ["d-legacy", "d-lost"]
        assert await recovery.sweep() == []
    finally:
        await recovery.stop()


async def test_db_upgrade_applies_the_migrations_and_prints_the_versions(
    backend: Backend, project: Path, tmp_path: Path
) -> None:
    text = (project / "config.toml").read_text()
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{backend.url}"')
    text = text.replace('dir = "keys"', f'dir = "{project / "keys"}"')
    text = text.replace('dir = "partners"', f'dir = "{project / "partners"}"')
    (tmp_path / "config.toml").write_text(text)
    for _ in range(2):  # and again: nothing left to apply
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            code = await asyncio.to_thread(
                main, ["--config", str(tmp_path / "config.toml"), "db", "upgrade"]
            )
        assert code == 0, out.getvalue()
        versions = [m.version for m in MIGRATIONS]
        assert versions[:4] == [1, 2, 3, 4]
        applied = ", ".join(map(str, versions))
        assert f"{backend.name} at schema version {versions[-1]} (applied: {applied})" in (
            out.getvalue()
        )
