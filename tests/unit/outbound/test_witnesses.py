"""The cosigning client against real witnesses in their own processes — `gateway witness
serve` and the spec-only witness of tests/support — and against a fake witness in this
process for the answers a correct witness never gives (wrong key, 422, 5xx)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.processes import free_port
from support.spec_witness import verify_cosigned
from support.witnesses import Witness, gateway_witness, spec_witness

from gateway.log import merkle
from gateway.log.checkpoint import Checkpoint, sign_checkpoint, split_note, verifier_key
from gateway.log.cosignature import cosign, witness_vkey
from gateway.log.witness_policy import WitnessPolicy, parse_witness_policy
from gateway.log.witness_protocol import format_add_checkpoint
from gateway.outbound.witnesses import (
    Cosigned,
    Refused,
    RollbackAlarm,
    Unreachable,
    Witnessing,
    cosign_checkpoint,
)

ORIGIN = "gateway.example/log"


class Log:
    """A log in memory: its leaves, signed checkpoints and consistency proofs."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.vkey = verifier_key(ORIGIN, self.key.public_key())
        self.leaves: list[bytes] = []

    def grow_to(self, size: int) -> str:
        """Append leaves up to ``size`` (if fewer) and sign the checkpoint of ``size``."""
        while len(self.leaves) < size:
            self.leaves.append(merkle.leaf_hash(b"entry %d" % len(self.leaves)))
        root = merkle.root_from_leaf_hashes(self.leaves[:size])
        return sign_checkpoint(Checkpoint(ORIGIN, size, root), ORIGIN, self.key)

    async def proof(self, first: int, second: int) -> list[bytes]:
        assert 0 < first < second
        return merkle.consistency_proof(first, self.leaves[:second])


def policy(log: Log, witnesses: dict[str, Witness], quorum: str) -> WitnessPolicy:
    """A policy of ``witnesses`` in one group of threshold ``quorum`` (all, any or K)."""
    lines = [f"log {log.vkey}"]
    lines += [f"witness {name} {w.vkey} {w.url}" for name, w in witnesses.items()]
    lines += [f"group quorum-group {quorum} {' '.join(witnesses)}", "quorum quorum-group"]
    return parse_witness_policy("\n".join(lines).encode(), "policy.txt")


async def submit(
    log: Log, pol: WitnessPolicy, size: int, known: dict[str, int], timeout: float = 5
) -> Witnessing:
    async with aiohttp.ClientSession() as session:
        return await cosign_checkpoint(
            session, pol, log.grow_to(size), size, log.proof, known, timeout=timeout
        )


def assert_cosigned_by(result: Witnessing, log: Log, witnesses: Sequence[Witness]) -> None:
    """The cosigned note verifies, for the log and every witness, with code that shares
    nothing with the gateway."""
    times = verify_cosigned(result.note, log.vkey, [w.vkey for w in witnesses])
    assert len(times) == len(witnesses)


async def test_two_witness_processes_cosign_a_first_and_a_grown_checkpoint(
    tmp_path: Path,
) -> None:
    log = Log()
    with (
        gateway_witness(tmp_path / "gw", log.vkey) as gw,
        spec_witness(tmp_path / "spec", log.vkey) as spec,
    ):
        pol = policy(log, {"gw": gw, "spec": spec}, "all")
        first = await submit(log, pol, 5, {})
        assert first.quorum_met and not first.dropped and not first.alarms
        assert {n: (o.size, len(o.lines)) for n, o in first.cosigned.items()} == {
            "gw": (5, 1),
            "spec": (5, 1),
        }
        assert_cosigned_by(first, log, [gw, spec])
        assert split_note(first.note)[0] == split_note(log.grow_to(5))[0]

        known = first.known_sizes({})
        assert known == {"gw": 5, "spec": 5}
        grown = await submit(log, pol, 12, known)
        assert grown.quorum_met, grown.outcomes
        assert set(grown.cosigned) == {"gw", "spec"}
        assert_cosigned_by(grown, log, [gw, spec])
        assert grown.known_sizes(known) == {"gw": 12, "spec": 12}


@pytest.mark.parametrize("which", ["gw", "spec"])
async def test_a_witness_that_saw_a_larger_tree_is_a_rollback_alarm(
    tmp_path: Path, which: str
) -> None:
    log = Log()
    start = gateway_witness if which == "gw" else spec_witness
    with start(tmp_path / which, log.vkey) as witness:
        # The witness cosigns size 9 first: then the log "has" only 6.
        bigger = log.grow_to(9)
        async with aiohttp.ClientSession() as session:
            url = f"{witness.url}/add-checkpoint"
            async with session.post(url, data=format_add_checkpoint(0, [], bigger)) as r:
                assert r.status == 200, await r.text()
        pol = policy(log, {which: witness}, "all")
        for known in ({}, {which: 6}):
            result = await submit(log, pol, 6, known)
            assert not result.quorum_met
            assert result.cosigned == {}
            [alarm] = result.alarms
            assert (alarm.witness, alarm.witness_size, alarm.log_size) == (which, 9, 6)
            assert "9" in alarm.reason and "6" in alarm.reason
            assert result.known_sizes(known) == known  # an alarm moves nothing we know


async def test_a_remembered_size_ahead_of_the_log_is_an_alarm_without_a_request(
    tmp_path: Path,
) -> None:
    log = Log()
    pol = policy(log, {"w": Witness(f"http://127.0.0.1:{free_port()}", _vkey())}, "all")
    result = await submit(log, pol, 3, {"w": 4})
    assert result.outcomes["w"] == RollbackAlarm("w", 4, 3, result.alarms[0].reason)


async def test_a_stale_remembered_size_is_resent_from_the_witness_size(tmp_path: Path) -> None:
    log = Log()
    with (
        gateway_witness(tmp_path / "gw", log.vkey) as gw,
        spec_witness(tmp_path / "spec", log.vkey) as spec,
    ):
        pol = policy(log, {"gw": gw, "spec": spec}, "all")
        assert (await submit(log, pol, 4, {})).quorum_met
        # The client forgot (0) or remembers an older size (2): 409 (4) → resend from 4.
        for known in ({}, {"gw": 2, "spec": 2}):
            size = len(log.leaves) + 3
            result = await submit(log, pol, size, known)
            assert result.quorum_met, result.outcomes
            assert {n: o.size for n, o in result.cosigned.items()} == {"gw": size, "spec": size}
            assert_cosigned_by(result, log, [gw, spec])


async def test_a_witness_down_is_unreachable_and_counts_against_the_quorum(
    tmp_path: Path,
) -> None:
    log = Log()
    down = Witness(f"http://127.0.0.1:{free_port()}", _vkey())
    with spec_witness(tmp_path / "spec", log.vkey) as spec:
        witnesses = {"spec": spec, "down": down}
        both = await submit(log, policy(log, witnesses, "2"), 3, {})
        assert not both.quorum_met
        assert isinstance(both.outcomes["down"], Unreachable)
        assert isinstance(both.outcomes["spec"], Cosigned)
        assert not both.alarms

        anyone = await submit(log, policy(log, witnesses, "any"), 5, both.known_sizes({}))
        assert anyone.quorum_met
        assert isinstance(anyone.outcomes["down"], Unreachable)
        assert_cosigned_by(anyone, log, [spec])


def _vkey(name: str = "fake.example/w") -> str:
    return witness_vkey(name, Ed25519PrivateKey.generate().public_key())


class FakeWitness:
    """Answers every add-checkpoint with what the test sets: lines signed by chosen keys,
    or a status and a body."""

    def __init__(self) -> None:
        self.name = "fake.example/w"
        self.key = Ed25519PrivateKey.generate()
        self.vkey = witness_vkey(self.name, self.key.public_key())
        self.signers: list[tuple[str, Ed25519PrivateKey]] = []
        self.status = 200
        self.body = ""
        self.requests = 0
        self.delay = 0.0
        self.chunked = False  # the answer in two writes, apart in time
        self.padding = 0  # blank lines after the cosignature (an oversized answer)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        await asyncio.sleep(self.delay)
        text = (await request.text()).split("\n\n", 1)[1]
        checkpoint_text, _ = split_note(text)
        if self.status != 200:
            return web.Response(status=self.status, text=self.body)
        lines = [cosign(checkpoint_text, name, key, 1_700_000_000) for name, key in self.signers]
        body = ("".join(lines) + "\n" * self.padding).encode()
        if not self.chunked:
            return web.Response(body=body)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(body[:10])
        await asyncio.sleep(0.05)
        await response.write(body[10:])
        await response.write_eof()
        return response


async def fake_result(
    fake: FakeWitness, log: Log, size: int = 3, timeout: float = 5, known: int = 2
) -> Witnessing:
    app = web.Application()
    app.router.add_post("/add-checkpoint", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        pol = policy(log, {"fake": Witness(str(server.make_url("")).rstrip("/"), fake.vkey)}, "all")
        return await submit(log, pol, size, {"fake": known}, timeout)
    finally:
        await server.close()


async def test_cosignature_lines_by_another_key_are_dropped_and_reported() -> None:
    log, fake = Log(), FakeWitness()
    impostor = Ed25519PrivateKey.generate()
    fake.signers = [(fake.name, impostor)]
    result = await fake_result(fake, log)
    assert isinstance(result.outcomes["fake"], Refused)
    assert not result.quorum_met
    [dropped] = result.dropped
    assert dropped.witness == "fake"
    assert f"expected {fake.name}+" in dropped.reason  # the key id is not its vkey's
    assert result.note == log.grow_to(3)  # nothing unverified is appended

    fake.signers = [("other.example/w", impostor), (fake.name, fake.key)]
    result = await fake_result(fake, log)
    assert result.quorum_met
    outcome = result.outcomes["fake"]
    assert isinstance(outcome, Cosigned) and len(outcome.lines) == 1
    assert [d.line.split()[1] for d in result.dropped] == ["other.example/w"]
    assert result.note == log.grow_to(3) + outcome.lines[0]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(422, RollbackAlarm), (503, Unreachable), (500, Unreachable), (404, Refused)],
)
async def test_statuses_of_a_witness(status: int, kind: type) -> None:
    log, fake = Log(), FakeWitness()
    fake.status, fake.body = status, "no\n"
    result = await fake_result(fake, log)
    outcome = result.outcomes["fake"]
    assert isinstance(outcome, kind)
    assert not result.quorum_met
    assert fake.requests == 1  # none of them is retried
    if isinstance(outcome, RollbackAlarm):
        assert (outcome.witness_size, outcome.log_size) == (2, 3)


async def test_a_409_again_at_the_same_size_is_a_fork_alarm() -> None:
    log, fake = Log(), FakeWitness()
    fake.status, fake.body = 409, "3\n"
    result = await fake_result(fake, log, size=3)
    [alarm] = result.alarms
    assert (alarm.witness_size, alarm.log_size) == (3, 3)
    assert fake.requests == 2  # the one resend from the witness's size, then the alarm

    # Sent from the size it has (3): a 409 naming that size is the other root at once.
    fake.requests = 0
    [alarm] = (await fake_result(fake, log, size=3, known=3)).alarms
    assert (alarm.witness_size, alarm.log_size, fake.requests) == (3, 3, 1)


async def test_a_witness_slower_than_its_timeout_is_unreachable() -> None:
    log, fake = Log(), FakeWitness()
    fake.signers, fake.delay = [(fake.name, fake.key)], 1.0
    result = await fake_result(fake, log, timeout=0.3)
    outcome = result.outcomes["fake"]
    assert isinstance(outcome, Unreachable) and "0.3" in outcome.reason
    assert not result.quorum_met


async def test_a_witness_without_a_url_is_unreachable() -> None:
    log = Log()
    text = f"log {log.vkey}\nwitness w {_vkey()}\nquorum w\n"
    result = await submit(log, parse_witness_policy(text.encode(), "policy.txt"), 2, {})
    assert result.outcomes == {"w": Unreachable("w", "the witness policy gives no URL for it")}
    assert not result.quorum_met


async def test_an_answer_in_several_chunks_is_read_whole_and_an_oversized_one_refused() -> None:
    log, fake = Log(), FakeWitness()
    fake.signers, fake.chunked = [(fake.name, fake.key)], True
    result = await fake_result(fake, log)
    assert result.quorum_met and not result.dropped  # not cut at the first chunk

    fake.padding = 20_000
    result = await fake_result(fake, log)
    outcome = result.outcomes["fake"]
    assert isinstance(outcome, Refused) and "over" in outcome.reason
