"""A log key rotation in the middle of a log with disclosures, on SQLite and PostgreSQL.

`gateway log rotate-key` runs in-process against a store a LogService writes to (as in
test_log_cli.py); checkpoints are checked with gateway.log.checkpoint and the public keys
only, the chain with `gateway log verify`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support.cli import run_cli_in_thread
from support.log import sent_rows

from gateway.config.model import Config, load_config
from gateway.crypto.keyring import KeyPaths
from gateway.errors import LogUnavailableError
from gateway.log.checkpoint import Checkpoint, CheckpointError, open_checkpoint, sign_checkpoint
from gateway.log.key_history import read_log_key, retired_keys
from gateway.log.offline import ProofDocumentError, b64, verify_proof_document
from gateway.log.service import LogIntegrityError, LogService, LogSigner
from gateway.store import Store, open_store
from gateway.web.keys import LOG
from gateway.web.routes.log import add_log_routes

if TYPE_CHECKING:
    from conftest import Backend


@dataclass
class Setup:
    root: Path
    config: Config
    store: Store

    @property
    def keys(self) -> KeyPaths:
        return KeyPaths(self.config.keys_dir)

    def service(self) -> LogService:
        """An instance (re)started now: it reads the key files as they are."""
        return LogService(self.store, LogSigner.load(self.config.keys_dir, self.config.log.origin))

    async def cli(self, *args: str) -> tuple[int, str]:
        return await run_cli_in_thread(self.root, *args)


@pytest.fixture
async def setup(project: Path, backend: Backend) -> AsyncIterator[Setup]:
    root = backend.root
    shutil.copytree(project / "keys", root / "keys")  # the rotation changes them
    (root / "partners").symlink_to(project / "partners")
    text = (project / "config.toml").read_text()
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{backend.url}"')
    (root / "config.toml").write_text(text)
    store = await open_store(backend.url, root)
    try:
        yield Setup(root, load_config(root / "config.toml"), store)
    finally:
        await store.close()


async def grow(service: LogService, start: int, end: int) -> None:
    await service.append_rows(sent_rows(start, end, datetime(2026, 11, 2, tzinfo=UTC)))


@dataclass
class Rotated:
    setup: Setup
    old_vkey: str
    new_vkey: str
    old_instance: LogService  # started before the rotation, never restarted


@pytest.fixture
async def rotated(setup: Setup) -> AsyncIterator[Rotated]:
    """300 entries under the old key (checkpoint #1), the switch at 400 (#2), then 500
    entries under the new key (#3) written by a restarted instance."""
    before = setup.service()
    old_vkey = before.signer.verifier_key
    await grow(before, 0, 300)
    await before.checkpoint()

    code, out = await setup.cli("log", "rotate-key", "--prepare")
    assert code == 0, out
    new_vkey = out.split("next log key ")[1].split()[0]
    assert setup.keys.log_signing_next.stat().st_mode & 0o777 == 0o600
    await grow(before, 300, 400)  # the old key still signs until the switch
    code, out = await setup.cli("log", "rotate-key")
    assert code == 0, out
    assert f"signing log key {new_vkey}" in out
    assert "switch checkpoint #2 (size 400)" in out

    after = setup.service()  # restarted with the copied key files
    assert after.signer.verifier_keys == [new_vkey, old_vkey]
    await grow(after, 400, 500)
    await after.checkpoint()
    try:
        yield Rotated(setup, old_vkey, new_vkey, before)
    finally:
        await after.stop(final_checkpoint=False)
        await before.stop(final_checkpoint=False)


async def test_checkpoints_verify_with_the_old_key_before_and_the_new_key_after(
    rotated: Rotated,
) -> None:
    first, switch, third = await rotated.setup.store.checkpoints()
    old, new = rotated.old_vkey, rotated.new_vkey
    assert open_checkpoint(first.note, old).size == 300
    with pytest.raises(CheckpointError, match="no signature by"):
        open_checkpoint(first.note, new)
    # The switch: the old key's last checkpoint and the new key's first, one note.
    assert open_checkpoint(switch.note, old) == open_checkpoint(switch.note, new)
    assert switch.size == 400
    assert open_checkpoint(third.note, new).size == 500
    with pytest.raises(CheckpointError, match="no signature by"):
        open_checkpoint(third.note, old)


async def test_key_files_after_the_switch(rotated: Rotated) -> None:
    keys = rotated.setup.keys
    assert not keys.log_signing_next.exists()
    (kept,) = retired_keys(keys.root, rotated.setup.config.log.origin)
    assert kept.vkey == rotated.old_vkey
    assert kept.switch is not None
    assert (kept.switch.seq, kept.switch.size, kept.switch.successor) == (
        2,
        400,
        rotated.new_vkey,
    )
    (pem,) = keys.log_signing_previous.glob("1-*.pem")
    assert pem.stat().st_mode & 0o777 == 0o600
    record = json.loads(pem.with_suffix(".json").read_text())
    assert record["switch_note"] == (await rotated.setup.store.checkpoints())[1].note

    code, out = await rotated.setup.cli("log", "key", "--all")
    assert (code, out) == (0, f"{rotated.new_vkey}\n{rotated.old_vkey}\n")
    code, out = await rotated.setup.cli("log", "key")
    assert out == f"{rotated.new_vkey}\n"


async def test_log_verify_passes_across_the_switch(rotated: Rotated) -> None:
    code, out = await rotated.setup.cli("log", "verify")
    assert code == 0, out
    assert "ok: 500 entries and 3 checkpoint(s) verified" in out
    assert "log key switched at checkpoint #2 (size 400), signed by both keys" in out
    code, out = await rotated.setup.cli("log", "verify", "--json")
    assert json.loads(out)["key_switches"] == [{"checkpoint": 2, "size": 400}]
    # Given both keys, newest first, as a verifier outside would (GET /v1/log/key).
    keys = ["--key", rotated.new_vkey, "--key", rotated.old_vkey]
    assert (await rotated.setup.cli("log", "verify", *keys))[0] == 0
    # The new key alone cannot vouch for the checkpoint signed before the switch.
    code, out = await rotated.setup.cli("log", "verify", "--key", rotated.new_vkey)
    assert code == 1
    assert "checkpoint #1 (size 300) does not verify" in out


async def test_a_proof_before_the_switch_verifies_offline_with_the_listed_keys(
    rotated: Rotated,
) -> None:
    # The latest checkpoint is #3 (new key): a proof document always uses the latest.
    code, out = await rotated.setup.cli("log", "prove", "42")
    assert code == 0, out
    doc = json.loads(out)
    assert verify_proof_document(doc, [rotated.new_vkey, rotated.old_vkey]).size == 500
    with pytest.raises(ProofDocumentError, match="does not verify"):
        verify_proof_document(doc, rotated.old_vkey)
    # An older document, under the switch checkpoint, verifies with either key alone.
    doc["checkpoint"] = (await rotated.setup.store.checkpoints())[1].note
    doc["tree_size"] = 400
    service = rotated.setup.service()
    doc["inclusion_proof"] = [b64(h) for h in (await service.inclusion_proof(42, 400)).hashes]
    assert verify_proof_document(doc, rotated.old_vkey).size == 400
    assert verify_proof_document(doc, rotated.new_vkey).size == 400
    key_file = rotated.setup.root / "log-keys.txt"
    key_file.write_text(f"{rotated.new_vkey}\n{rotated.old_vkey}\n")
    proof_file = rotated.setup.root / "proof.json"
    proof_file.write_text(json.dumps(doc))
    code, out = await rotated.setup.cli(
        "log", "verify-proof", str(proof_file), "--key-file", str(key_file)
    )
    assert code == 0, out


async def test_an_instance_still_holding_the_old_key_signs_nothing_after_the_switch(
    rotated: Rotated,
) -> None:
    await grow(rotated.old_instance, 500, 510)
    with pytest.raises(LogUnavailableError, match="the log key was rotated"):
        await rotated.old_instance.checkpoint()
    assert len(await rotated.setup.store.checkpoints()) == 3


async def test_a_checkpoint_after_the_switch_signed_only_by_the_old_key_fails(
    rotated: Rotated,
) -> None:
    setup = rotated.setup
    (pem,) = setup.keys.log_signing_previous.glob("1-*.pem")
    stolen = read_log_key(pem)
    service = setup.service()
    await grow(service, 500, 520)
    origin = setup.config.log.origin
    note = sign_checkpoint(Checkpoint(origin, 520, await service.root(520)), origin, stolen)
    assert await setup.store.add_checkpoint_after(3, 520, note, datetime.now(UTC))

    code, out = await setup.cli("log", "verify")
    assert code == 1
    assert "checkpoint #4 (size 520) is signed only by the retired log key" in out
    # An instance with the new key does not extend it either.
    with pytest.raises(LogIntegrityError, match="signed only by retired log key"):
        await service.checkpoint()


async def test_a_key_change_without_a_cross_signed_switch_fails(setup: Setup) -> None:
    service = setup.service()
    await grow(service, 0, 50)
    await service.checkpoint()
    # Swapping the key file by hand (no rotate-key): the next checkpoint has no old signature.
    code, out = await setup.cli("log", "rotate-key", "--prepare")
    assert code == 0, out
    setup.keys.log_signing.rename(setup.keys.root / "old.pem")
    setup.keys.log_signing_next.rename(setup.keys.log_signing)
    swapped = setup.service()
    await grow(swapped, 50, 60)
    origin = setup.config.log.origin
    old = LogSigner(origin, read_log_key(setup.keys.root / "old.pem")).verifier_key
    note = swapped.signer.sign(Checkpoint(origin, 60, await swapped.root(60)))
    assert await setup.store.add_checkpoint_after(1, 60, note, datetime.now(UTC))

    code, out = await setup.cli("log", "verify", "--key", swapped.signer.verifier_key, "--key", old)
    assert code == 1
    assert "checkpoint #2 (size 60) is the first signed by log key" in out
    assert "must be cross-signed" in out


async def test_a_switch_run_again_after_an_interruption_keeps_one_next_key(setup: Setup) -> None:
    service = setup.service()
    await grow(service, 0, 20)
    await service.checkpoint()
    code, out = await setup.cli("log", "rotate-key", "--prepare")
    first = out.split("next log key ")[1].split()[0]
    code, out = await setup.cli("log", "rotate-key", "--prepare")
    assert (code, f"already prepared: next log key {first}") == (0, out.splitlines()[0])
    code, out = await setup.cli("log", "rotate-key")
    assert code == 0, out
    assert setup.service().signer.verifier_key == first
    code, out = await setup.cli("log", "verify")
    assert code == 0, out


async def test_the_public_key_routes_list_both_keys_with_their_switch(rotated: Rotated) -> None:
    service = rotated.setup.service()
    app = web.Application()
    app[LOG] = service
    add_log_routes(app)
    async with TestClient(TestServer(app)) as client:
        key = await client.get("/v1/log/key")
        # The current key stays the first line (clients that read one line keep working).
        assert await key.text() == f"{rotated.new_vkey}\n{rotated.old_vkey}\n"
        keys = await (await client.get("/v1/log/keys")).json()
    switch = (await rotated.setup.store.checkpoints())[1]
    assert keys["origin"] == rotated.setup.config.log.origin
    current, retired = keys["keys"]
    assert current == {
        "vkey": rotated.new_vkey,
        "status": "current",
        "from": {"checkpoint": 2, "size": 400},
        "until": None,
    }
    assert (retired["vkey"], retired["status"], retired["from"]) == (
        rotated.old_vkey,
        "retired",
        None,
    )
    assert retired["until"]["note"] == switch.note
    assert (retired["until"]["checkpoint"], retired["until"]["size"]) == (2, 400)
