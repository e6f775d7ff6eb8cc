"""The witness's add-checkpoint handler through aiohttp's test client: the answers of
tlog-witness (200 with a cosignature, 400, 403, 404, 409 with the size, 422) and a state
that survives a restart."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import ConfigError, ConfigErrors
from gateway.log.checkpoint import Checkpoint, sign_note, verifier_key
from gateway.log.cosignature import WitnessKey, verify_cosignature
from gateway.log.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from gateway.log.witness_protocol import format_add_checkpoint
from gateway.witness.app import MAX_REQUEST_BYTES, Witness, witness_app
from gateway.witness.keyfile import default_name, load_or_create_key
from gateway.witness.state import WitnessState

ORIGIN = "gateway.example/disclosures"
WITNESS = "w1.example/witness"
NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(16)]


@dataclass
class Log:
    """A log of LEAVES and its key: checkpoints and proofs as the gateway's log makes them."""

    key: Ed25519PrivateKey
    origin: str = ORIGIN

    @property
    def vkey(self) -> str:
        return verifier_key(self.origin, self.key.public_key())

    def text(self, size: int, leaves: list[bytes] = LEAVES) -> str:
        return Checkpoint(self.origin, size, root_from_leaf_hashes(leaves[:size])).body()

    def body(
        self, old: int, size: int, *, proof: list[bytes] | None = None, text: str = ""
    ) -> bytes:
        if proof is None:
            proof = consistency_proof(old, LEAVES[:size]) if 0 < old < size else []
        note = sign_note(text or self.text(size), self.origin, self.key)
        return format_add_checkpoint(old, proof, note)


Start = Callable[[], Awaitable[TestClient]]


@pytest.fixture
def log() -> Log:
    return Log(Ed25519PrivateKey.generate())


@pytest.fixture
def witness_key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_key(tmp_path / "witness.pem")


@pytest.fixture
async def start(tmp_path: Path, log: Log, witness_key: Ed25519PrivateKey) -> AsyncIterator[Start]:
    """Start the witness; called again, it stops the first and restarts on the same files."""
    running: list[tuple[TestClient, WitnessState]] = []

    async def stop() -> None:
        for client, state in running:
            await client.close()
            state.close()
        running.clear()

    async def restart() -> TestClient:
        await stop()  # one process at a time owns the state file
        state = WitnessState.open(tmp_path / "witness.state.json")
        witness = Witness(WITNESS, witness_key, [log.vkey], state, clock=lambda: NOW)
        client = TestClient(TestServer(witness_app(witness)))
        await client.start_server()
        running.append((client, state))
        return client

    yield restart
    await stop()


async def post(client: TestClient, body: bytes) -> tuple[int, str, str]:
    async with client.post("/add-checkpoint", data=body) as response:
        return response.status, response.headers["Content-Type"], await response.text()


def cosigned(answer: tuple[int, str, str], text: str, key: Ed25519PrivateKey) -> None:
    """The answer is 200 with one cosignature line of the witness over `text`, at NOW."""
    status, content_type, body = answer
    assert status == 200, body
    assert content_type.startswith("text/plain")
    (line,) = body.splitlines(keepends=True)
    timestamp = verify_cosignature(line, text, WitnessKey(WITNESS, key.public_key()))
    assert timestamp == int(NOW.timestamp())


async def test_first_checkpoint_then_a_consistent_extension(
    start: Start, log: Log, witness_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    client = await start()
    cosigned(await post(client, log.body(0, 3)), log.text(3), witness_key)
    cosigned(await post(client, log.body(3, 7)), log.text(7), witness_key)
    cosigned(await post(client, log.body(7, 7)), log.text(7), witness_key)  # again: same answer
    cosigned(await post(client, log.body(7, 16)), log.text(16), witness_key)
    state = json.loads((tmp_path / "witness.state.json").read_text())
    assert state["logs"][ORIGIN]["size"] == 16
    assert os.stat(tmp_path / "witness.state.json").st_mode & 0o777 == 0o600


async def test_stale_old_gets_409_with_the_size_it_cosigned(start: Start, log: Log) -> None:
    client = await start()
    assert (await post(client, log.body(0, 7)))[0] == 200
    for old in (0, 3, 9):
        assert await post(client, log.body(old, 9)) == (409, "text/x.tlog.size", "7\n")


async def test_bad_proofs_get_422(start: Start, log: Log) -> None:
    client = await start()
    assert (await post(client, log.body(0, 5)))[0] == 200
    proof = consistency_proof(5, LEAVES[:9])
    tampered = [proof[0], bytes(32), *proof[2:]]
    status, _, reason = await post(client, log.body(5, 9, proof=tampered))
    assert status == 422 and "consistency proof does not verify" in reason
    assert (await post(client, log.body(5, 9, proof=proof[:-1])))[0] == 422
    # A log whose first 5 entries changed (a fork) cannot prove consistency with what
    # the witness cosigned, whatever proof it sends.
    forked = [leaf_hash(b"rewritten"), *LEAVES[1:]]
    text = log.text(9, forked)
    body = log.body(5, 9, proof=consistency_proof(5, forked[:9]), text=text)
    assert (await post(client, body))[0] == 422
    assert (await post(client, log.body(5, 9)))[0] == 200  # the honest proof still works


async def test_nonempty_proof_from_zero_gets_422(start: Start, log: Log) -> None:
    client = await start()
    status, _, reason = await post(client, log.body(0, 4, proof=[bytes(32)]))
    assert status == 422 and "from old size 0 must be empty" in reason


async def test_unknown_log_and_wrong_key(start: Start, log: Log) -> None:
    client = await start()
    stranger = Log(Ed25519PrivateKey.generate(), origin="other.example/log")
    status, _, reason = await post(client, stranger.body(0, 3))
    assert status == 404 and "unknown log 'other.example/log'" in reason
    impostor = Log(Ed25519PrivateKey.generate())  # the right origin, another key
    status, _, reason = await post(client, impostor.body(0, 3))
    assert status == 403 and "no signature by a key of log" in reason
    assert (await post(client, log.body(0, 3)))[0] == 200  # nothing was recorded for them


async def test_a_shrunk_or_forked_log_is_refused(start: Start, log: Log) -> None:
    client = await start()
    assert (await post(client, log.body(0, 9)))[0] == 200
    # The rollback attack of issue #18: the newest entries deleted, a shorter log signed.
    status, _, reason = await post(client, log.body(9, 5))
    assert status == 400 and "old size 9 is larger than the checkpoint's 5" in reason
    assert await post(client, log.body(5, 5)) == (409, "text/x.tlog.size", "9\n")
    assert await post(client, log.body(0, 5)) == (409, "text/x.tlog.size", "9\n")
    # The same size with another root: a fork.
    forked = [*LEAVES[:8], leaf_hash(b"other")]
    assert await post(client, log.body(9, 9, text=log.text(9, forked))) == (
        409,
        "text/x.tlog.size",
        "9\n",
    )


async def test_malformed_requests_get_400(start: Start, log: Log) -> None:
    client = await start()
    for body in (b"", b"old 1\n", b"hello\n\nworld\n", b"old 0\n\nno signature\n"):
        status, _, reason = await post(client, body)
        assert status == 400 and reason.startswith("malformed"), (body, reason)
    note = sign_note(f"{ORIGIN}\n03\n{'A' * 43}=\n", ORIGIN, log.key)  # signed, not a checkpoint
    status, _, reason = await post(client, format_add_checkpoint(0, [], note))
    assert status == 400 and "malformed checkpoint" in reason
    async with client.post("/add-checkpoint", data=b"#" * (MAX_REQUEST_BYTES + 1)) as response:
        assert response.status == 413


async def test_extension_lines_are_cosigned(
    start: Start, log: Log, witness_key: Ed25519PrivateKey
) -> None:
    client = await start()
    text = log.text(4) + "extension line\n"
    cosigned(await post(client, log.body(0, 4, text=text)), text, witness_key)


async def test_state_survives_a_restart(
    start: Start, log: Log, witness_key: Ed25519PrivateKey
) -> None:
    client = await start()
    assert (await post(client, log.body(0, 7)))[0] == 200
    client = await start()  # a new process on the same files
    assert await post(client, log.body(0, 7)) == (409, "text/x.tlog.size", "7\n")
    cosigned(await post(client, log.body(7, 12)), log.text(12), witness_key)


async def test_concurrent_requests_cannot_roll_back(start: Start, log: Log) -> None:
    client = await start()
    assert (await post(client, log.body(0, 3)))[0] == 200
    answers = await asyncio.gather(
        post(client, log.body(3, 9)), post(client, log.body(3, 12)), post(client, log.body(3, 5))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200, 409, 409]  # one wins; the others learn its size
    sizes = {body for status, _, body in answers if status == 409}
    assert len(sizes) == 1
    winner = int(sizes.pop())
    assert await post(client, log.body(0, 3)) == (409, "text/x.tlog.size", f"{winner}\n")


def test_one_process_per_state_file(tmp_path: Path) -> None:
    first = WitnessState.open(tmp_path / "state.json")
    with pytest.raises(ConfigError, match="in use by another witness process"):
        WitnessState.open(tmp_path / "state.json")
    first.close()
    WitnessState.open(tmp_path / "state.json").close()
    (tmp_path / "bad.json").write_text('{"logs": {"x": {"size": -1, "root": ""}}}')
    with pytest.raises(ConfigError, match="expected a size and a base64 32-byte root"):
        WitnessState.open(tmp_path / "bad.json")
    (tmp_path / "worse.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a witness state file"):
        WitnessState.open(tmp_path / "worse.json")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "witness.pem"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_key(path)
    assert default_name(again) == default_name(key)
    assert default_name(key).startswith("witness-") and len(default_name(key)) == 16
    path.chmod(0o644)
    with pytest.raises(ConfigErrors, match="accessible to group/others"):
        load_or_create_key(path)
    path.chmod(0o600)
    path.write_text("not a key")
    with pytest.raises(ConfigError, match="not a readable PKCS#8 PEM private key"):
        load_or_create_key(path)


async def test_each_log_has_its_own_state_and_may_have_two_keys(
    tmp_path: Path, log: Log, witness_key: Ed25519PrivateKey
) -> None:
    other = Log(Ed25519PrivateKey.generate(), origin="other.example/log")
    rotated = Log(Ed25519PrivateKey.generate())  # the same origin under its next key
    state = WitnessState.open(tmp_path / "state.json")
    try:
        witness = Witness(WITNESS, witness_key, [log.vkey, other.vkey, rotated.vkey], state)
        assert witness.origins == ["gateway.example/disclosures", "other.example/log"]
        assert (await witness.add_checkpoint(log.body(0, 9))).status == 200
        assert (await witness.add_checkpoint(other.body(0, 2))).status == 200
        assert (await witness.add_checkpoint(rotated.body(9, 12))).status == 200
        stale = await witness.add_checkpoint(other.body(0, 3))
        assert (stale.status, stale.text) == (409, "2\n")
    finally:
        state.close()
    logs = json.loads((tmp_path / "state.json").read_text())["logs"]
    assert {origin: entry["size"] for origin, entry in logs.items()} == {
        "gateway.example/disclosures": 12,
        "other.example/log": 2,
    }
