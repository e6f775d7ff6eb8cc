"""The witnessing runner over real SQLite and PostgreSQL stores, with two witness
processes (`gateway witness serve` and the spec-only witness): what it stores, which
checkpoint is witnessed, another instance's newer checkpoint (never a rollback alarm), an
unreachable witness (quorum not met, nothing lost), a policy reloaded, and a rollback
alarm kept in the store until the witness cosigns again or a person clears it.

Every test runs on both backends (tests/integration/conftest.py); two LogService objects
on one store are two instances on one database.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.log import sent_rows
from support.processes import free_port
from support.spec_witness import verify_cosigned
from support.witnesses import Witness, gateway_witness, spec_witness, write_policy

from gateway.log.service import LogService, LogSigner
from gateway.log.witness_policy import WitnessPolicy, load_witness_policy
from gateway.outbound.witness_runner import WitnessRunner, merge_cosignatures
from gateway.store import Store, open_store
from gateway.store.records import LogRow, WitnessAlarm

ORIGIN = "gateway.test/disclosures"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SIGNER = LogSigner(ORIGIN, Ed25519PrivateKey.generate())


def rows(start: int, count: int) -> list[LogRow]:
    return sent_rows(start, start + count, T0, apart=timedelta(0))


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[dict[str, Witness]]:
    with ExitStack() as stack:
        yield {
            "w1": stack.enter_context(gateway_witness(tmp_path / "w1", SIGNER.verifier_key)),
            "w2": stack.enter_context(spec_witness(tmp_path / "w2", SIGNER.verifier_key)),
        }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def policy_of(tmp_path: Path, witnesses: dict[str, Witness]) -> WitnessPolicy:
    return load_witness_policy(
        write_policy(tmp_path / "witnesses.txt", SIGNER.verifier_key, witnesses, "all")
    )


def instance(
    store: Store, session: aiohttp.ClientSession, policy: WitnessPolicy | None
) -> tuple[LogService, WitnessRunner]:
    service = LogService(store, SIGNER, clock=lambda: T0)
    runner = WitnessRunner(store, session, policy, service.consistency_proof, timeout=5)
    service.witnessing = runner
    return service, runner


async def test_a_checkpoint_is_witnessed_and_stored_with_both_cosignatures(
    store: Store, session: aiohttp.ClientSession, witnesses: dict[str, Witness], tmp_path: Path
) -> None:
    service, runner = instance(store, session, policy_of(tmp_path, witnesses))
    await service.append_rows(rows(0, 3))
    checkpoint = await service.checkpoint()
    submitted = await runner.submit(checkpoint)
    assert submitted is not None and submitted.quorum_met and not submitted.alarms
    witnessed = await service.witnessed_checkpoint()
    assert witnessed is not None and witnessed.seq == checkpoint.seq
    verify_cosigned(witnessed.note, SIGNER.verifier_key, [w.vkey for w in witnesses.values()])
    sizes = await store.witness_sizes()
    assert {name: s.size for name, s in sizes.items()} == {"w1": 3, "w2": 3}
    latest = await service.latest_checkpoint()
    assert latest is not None and latest.cosigned == witnessed.note


async def test_another_instances_newer_checkpoint_is_submitted_not_an_alarm(
    store: Store, session: aiohttp.ClientSession, witnesses: dict[str, Witness], tmp_path: Path
) -> None:
    policy = policy_of(tmp_path, witnesses)
    a, runner_a = instance(store, session, policy)
    b, runner_b = instance(store, session, policy)
    await a.append_rows(rows(0, 2))
    older = await a.checkpoint()
    await b.append_rows(rows(2, 3))
    newer = await b.checkpoint()
    first = await runner_b.submit(newer)
    assert first is not None and first.quorum_met
    # A submits its older checkpoint late: the witnesses (and the stored sizes) are at 5.
    late = await runner_a.submit(older)
    assert late is not None
    assert late.alarms == [] and runner_a.alarms == {}
    assert late.checkpoint.seq == newer.seq and late.quorum_met


async def test_the_409_of_a_witness_ahead_by_a_peer_is_resent_from_the_newer_checkpoint(
    store: Store, session: aiohttp.ClientSession, witnesses: dict[str, Witness], tmp_path: Path
) -> None:
    policy = policy_of(tmp_path, witnesses)
    a, _ = instance(store, session, policy)
    b, runner_b = instance(store, session, policy)
    await a.append_rows(rows(0, 2))
    older = await a.checkpoint()
    await b.append_rows(rows(2, 2))
    newer = await b.checkpoint()
    assert await runner_b.submit(newer) is not None
    # As if B's sizes had not been stored yet: each witness answers 409 with size 4.
    await store.record_witnessing(newer.seq, None, {}, T0)
    forgotten = WitnessRunner(_ForgetfulSizes(store), session, policy, a.consistency_proof)
    late = await forgotten.submit(older)
    assert late is not None and late.alarms == [] and late.checkpoint.seq == newer.seq


class _ForgetfulSizes:
    """The store, but no witness size ever stored: every submission starts from 0."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def witness_sizes(self) -> dict[str, object]:
        return {}

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_an_unreachable_witness_leaves_the_quorum_unmet_and_loses_nothing(
    store: Store, session: aiohttp.ClientSession, witnesses: dict[str, Witness], tmp_path: Path
) -> None:
    down = Witness(f"http://127.0.0.1:{free_port()}", witnesses["w2"].vkey)
    service, runner = instance(store, session, policy_of(tmp_path, {**witnesses, "w2": down}))
    await service.append_rows(rows(0, 2))
    submitted = await runner.submit(await service.checkpoint())
    assert submitted is not None and not submitted.quorum_met and not submitted.alarms
    assert runner.quorum_met is False and "w2" in runner.not_cosigned
    assert await service.witnessed_checkpoint() is None
    # w1's cosignature is kept; once w2 answers, the same checkpoint meets the quorum.
    runner.policy = policy_of(tmp_path, witnesses)
    again = await runner.submit_latest()
    assert again is not None and again.quorum_met
    assert await service.witnessed_checkpoint() is not None


async def test_without_a_policy_the_witnessed_checkpoint_is_the_latest(
    store: Store, session: aiohttp.ClientSession
) -> None:
    service, runner = instance(store, session, None)
    await service.append_rows(rows(0, 2))
    checkpoint = await service.checkpoint()
    assert await runner.submit(checkpoint) is None
    witnessed = await service.witnessed_checkpoint()
    assert witnessed is not None and witnessed.note == checkpoint.note
    bare = LogService(store, SIGNER)
    assert await bare.witnessed_checkpoint() == await bare.latest_checkpoint()


async def test_a_bad_policy_on_reload_keeps_the_one_in_force(
    store: Store,
    session: aiohttp.ClientSession,
    witnesses: dict[str, Witness],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = policy_of(tmp_path, witnesses)
    path = tmp_path / "witnesses.txt"
    runner = WitnessRunner(store, session, policy, LogService(store, SIGNER).consistency_proof)
    runner.policy_path = path
    path.write_text(path.read_text() + "quorum nobody\n")
    assert runner.reload_policy() is False
    assert runner.policy is policy
    assert f"{path}:" in caplog.text
    write_policy(path, SIGNER.verifier_key, {"w1": witnesses["w1"]}, "any")
    assert runner.reload_policy() is True
    assert runner.policy is not None and list(runner.policy.witnesses) == ["w1"]


async def test_a_rollback_alarm_is_kept_until_the_witness_cosigns_again(
    store: Store,
    session: aiohttp.ClientSession,
    witnesses: dict[str, Witness],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The witnesses cosigned 6 entries (a copy of the log elsewhere); this store holds the
    first 2, as after restoring an older backup: an alarm at each witness. It survives a
    new runner (a restart) and a witness being unreachable, and goes only when the witness
    cosigns again — once the store holds the 6 entries it saw (the right backup)."""
    policy = policy_of(tmp_path, witnesses)
    longer = await open_store(f"sqlite:///{tmp_path}/longer.db", tmp_path)
    try:
        elsewhere, runner_elsewhere = instance(longer, session, policy)
        await elsewhere.append_rows(rows(0, 6))
        cosigned = await runner_elsewhere.submit(await elsewhere.checkpoint())
        assert cosigned is not None and cosigned.quorum_met
    finally:
        await longer.close()

    service, runner = instance(store, session, policy)
    await service.append_rows(rows(0, 2))
    rolled_back = await runner.submit(await service.checkpoint())
    assert rolled_back is not None
    assert sorted(a.witness for a in rolled_back.alarms) == ["w1", "w2"]
    kept = {a.witness: a for a in await store.witness_alarms()}
    assert {(a.witness_size, a.log_size) for a in kept.values()} == {(6, 2)}

    # A restart with w2 unreachable: the alarms are read back, w2's is not forgotten.
    down = Witness(f"http://127.0.0.1:{free_port()}", witnesses["w2"].vkey)
    _, restarted = instance(store, session, policy_of(tmp_path, {**witnesses, "w2": down}))
    assert restarted.alarms == {}
    await restarted.load_alarms()
    assert sorted(restarted.alarms) == ["w1", "w2"]
    again = await restarted.submit_latest()
    assert again is not None and [a.witness for a in again.alarms] == ["w1"]
    assert sorted(restarted.alarms) == ["w1", "w2"]
    assert {a.witness for a in await store.witness_alarms()} == {"w1", "w2"}

    # The entries the witnesses saw are back: each witness cosigns, its alarm is over.
    await service.append_rows(rows(2, 4))
    await service.checkpoint()
    restored = await restarted.submit_latest()
    assert restored is not None and restored.alarms == []
    assert sorted(restarted.alarms) == ["w2"]  # unreachable still: not cleared
    assert "rollback alarm of witness w1 cleared" in caplog.text
    _, full = instance(store, session, policy)
    recovered = await full.submit_latest()
    assert recovered is not None and recovered.quorum_met and full.alarms == {}
    assert await store.witness_alarms() == []


def _line(name: str, key_id: bytes, fill: bytes) -> str:
    return f"— {name} {base64.b64encode(key_id + fill * 72).decode()}\n"


def test_cosignatures_of_two_submissions_are_merged_one_per_key() -> None:
    note = "origin\n1\nroot\n\n" + _line("origin", b"\x00\x00\x00\x00", b"o")
    first = note + _line("w1", b"\x01\x01\x01\x01", b"a") + _line("w2", b"\x02\x02\x02\x02", b"b")
    second = note + _line("w1", b"\x01\x01\x01\x01", b"c")
    merged = merge_cosignatures(note, first, second)
    assert merged == note + _line("w1", b"\x01\x01\x01\x01", b"c") + _line(
        "w2", b"\x02\x02\x02\x02", b"b"
    )


async def test_a_runner_that_does_not_submit_reads_the_witnessing_from_the_store(
    store: Store, session: aiohttp.ClientSession, witnesses: dict[str, Witness], tmp_path: Path
) -> None:
    """`serve --workers N`: the spawned workers never submit (each submission would be
    repeated N times); they still see the quorum and every alarm through the store."""
    policy = policy_of(tmp_path, witnesses)
    service = LogService(store, SIGNER, clock=lambda: T0)
    observer = WitnessRunner(
        store,
        session,
        policy,
        service.consistency_proof,
        submits=False,
        observe_s=0.02,
        clock=lambda: T0,
    )
    late = WitnessRunner(
        store,
        session,
        policy,
        service.consistency_proof,
        submits=False,
        observe_s=0.02,
        clock=lambda: T0 + timedelta(minutes=5),
    )
    service.witnessing = observer
    observer.start()
    late.start()
    try:
        await service.append_rows(rows(0, 3))
        checkpoint = await service.checkpoint()
        await eventually(lambda: late.quorum_met is False)  # unwitnessed past a retry
        assert await store.witness_sizes() == {}  # signed, and not submitted by either
        assert observer.quorum_met is None  # still within its first retry period
        _, submitter = instance(store, session, policy)
        assert await submitter.submit(checkpoint) is not None
        await eventually(lambda: observer.quorum_met is True and late.quorum_met is True)
        await store.raise_witness_alarm(WitnessAlarm("w1", 9, 3, "rolled back", T0))
        await eventually(lambda: set(observer.alarms) == {"w1"})
    finally:
        await observer.stop()
        await late.stop()


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
