"""The witnessed log end to end (issue #18): a running gateway whose witness policy names
two witnesses run as separate processes — ours (`gateway witness serve`) and the spec-only
one of tests/support (code that does not import gateway) — and the rollback drill.

- After a disclosure, the checkpoint the gateway publishes carries both cosignatures,
  checked with the spec witness's own `verify_cosigned`; /readyz reports the quorum met.
- The rollback drill (SQLite and PostgreSQL): witnessed disclosures, then the newest
  entries, the newest checkpoints and the witness-state rows deleted from the database
  behind the gateway's back; after a restart the witnesses refuse the shorter log: /readyz
  fails naming the witness and the sizes, and `gateway log verify` exits 1 saying so.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.processes import GatewayProcess, free_port, write_project
from support.sandboxes import sandboxes_of
from support.spec_witness import verify_cosigned
from support.witnesses import Witness, gateway_witness, spec_witness, write_policy

from gateway.config.model import Config, load_config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.log.service import LogSigner
from gateway.ops.reload import RELOADER
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster
from gateway.web.app import create_app
from gateway.web.keys import LOG, WITNESSES

if TYPE_CHECKING:
    from conftest import Backend

COLLECTIONS = "mekong-collections"
CASE = {
    "partner": COLLECTIONS,
    "operation": "open_case",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "subject": "s-witnessed-1",
    "data": {"name": "N", "phone": "+856 20 1", "amount": 10, "currency": "LAK", "uuid": "u-1"},
}


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    cluster = await sandboxes_of(config, [partners[COLLECTIONS]])
    yield cluster
    await cluster.close()


@dataclass
class Deployment:
    """A project whose policy names two witness processes, and the gateway serving it."""

    config_path: Path
    log_vkey: str
    witnesses: dict[str, Witness]
    gateway: GatewayProcess
    session: aiohttp.ClientSession

    def token(self, caller: str) -> str:
        config = load_config(self.config_path)
        return issue_dev_token(config.keys_dir, config.auth, caller)

    async def disclose(self) -> None:
        body = {**CASE, "subject": f"s-{uuid.uuid4()}"}
        async with self.session.post(
            self.gateway.url + "/v1/disclosures",
            json=body,
            headers={"Authorization": f"Bearer {self.token('payments-service')}"},
        ) as response:
            assert response.status == 201, await response.text()

    async def checkpoint(self) -> str:
        async with self.session.get(
            self.gateway.url + "/v1/log/checkpoint",
            headers={"Authorization": f"Bearer {self.token('reviewer-alice')}"},
        ) as response:
            assert response.status == 200, await response.text()
            return await response.text()

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.gateway.url + "/readyz") as response:
            return response.status, await response.json(content_type=None)

    async def witnessed(self, size: int, timeout_s: float = 30.0) -> str:
        """Wait until the published checkpoint of `size` entries (every disclosure writes
        two: intent and outcome) carries both witnesses' cosignatures; the note."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            note = await self.checkpoint()
            status, ready = await self.readyz()
            try:
                verify_cosigned(note, self.log_vkey, [w.vkey for w in self.witnesses.values()])
            except Exception:  # not cosigned (yet): any failure of the spec's verifier
                pass
            else:
                if (
                    status == 200
                    and ready["status"] == "ready"
                    and note.split("\n")[1] == str(size)
                ):
                    return note
            assert asyncio.get_running_loop().time() < deadline, (note, ready)
            await asyncio.sleep(0.2)


def start_witnesses(stack: ExitStack, base: Path, log_vkey: str) -> dict[str, Witness]:
    w1 = stack.enter_context(gateway_witness(base / "w1", log_vkey))
    w2 = stack.enter_context(spec_witness(base / "w2", log_vkey))
    return {"w1": w1, "w2": w2}


async def deploy(
    tmp_path: Path, project: Path, storage_url: str, sandboxes: SandboxCluster, stack: ExitStack
) -> tuple[Path, str, dict[str, Witness]]:
    config_path = write_project(
        tmp_path / "project",
        project,
        storage_url=storage_url,
        base_urls={COLLECTIONS: sandboxes.base_url(COLLECTIONS)},
        log_settings={"witness_policy": '"witnesses.txt"', "checkpoint_interval_s": 0.2},
    )
    config = load_config(config_path)
    log_vkey = LogSigner.load(config.keys_dir, config.log.origin).verifier_key
    witnesses = start_witnesses(stack, tmp_path, log_vkey)
    write_policy(config_path.parent / "witnesses.txt", log_vkey, witnesses, "all")
    return config_path, log_vkey, witnesses


async def test_a_disclosure_is_witnessed_by_two_witness_processes(
    tmp_path: Path, project: Path, sandboxes: SandboxCluster
) -> None:
    with ExitStack() as stack:
        config_path, log_vkey, witnesses = await deploy(
            tmp_path, project, "sqlite:///var/gateway.db", sandboxes, stack
        )
        async with aiohttp.ClientSession() as session:
            gateway = GatewayProcess(config_path)
            await gateway.start(session)
            try:
                deployment = Deployment(config_path, log_vkey, witnesses, gateway, session)
                await deployment.disclose()
                note = await deployment.witnessed(2)  # the intent and its outcome
                cosigned = verify_cosigned(note, log_vkey, [w.vkey for w in witnesses.values()])
                assert len(cosigned) == 2
                _, ready = await deployment.readyz()
                assert ready["witnessing"]["quorum_met"] is True
                async with session.get(gateway.url + "/metrics") as response:
                    metrics = await response.text()
                assert 'gateway_witness_cosigned_size{witness="w1"} 2.0' in metrics
                assert 'gateway_witness_cosigned_size{witness="w2"} 2.0' in metrics
            finally:
                gateway.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_the_rollback_drill(
    tmp_path: Path, project: Path, sandboxes: SandboxCluster, backend: Backend
) -> None:
    storage_url = "sqlite:///var/gateway.db" if backend.name == "sqlite" else backend.url
    with ExitStack() as stack:
        config_path, log_vkey, witnesses = await deploy(
            tmp_path, project, storage_url, sandboxes, stack
        )
        async with aiohttp.ClientSession() as session:
            gateway = GatewayProcess(config_path)
            await gateway.start(session)
            deployment = Deployment(config_path, log_vkey, witnesses, gateway, session)
            try:
                kept, witnessed = 2, 6
                await deployment.disclose()
                await deployment.witnessed(kept)
                await deployment.disclose()
                await deployment.disclose()
                await deployment.witnessed(witnessed)
            finally:
                gateway.stop()

            # Behind the gateway's back: the database restored to an older state.
            await roll_back(backend, config_path.parent / "var" / "gateway.db", kept)

            gateway = GatewayProcess(config_path, "after-rollback")
            await gateway.start(session)
            deployment.gateway = gateway
            try:
                problem = await until_not_ready(deployment)
                for name in ("w1", "w2"):
                    assert f"witness {name} has cosigned size {witnessed}" in problem["detail"]
                assert f"the log has {kept} entries" in problem["detail"]
                assert "ROLLBACK ALARM" in gateway.log_text()
                async with session.get(gateway.url + "/metrics") as response:
                    metrics = await response.text()
                assert 'gateway_witness_rollback_alarms_total{witness="w1"}' in metrics
            finally:
                gateway.stop()

        verify = gateway_command(config_path, "log", "verify")
        assert verify.returncode == 1, verify.stdout + verify.stderr
        assert f"witness w1 has cosigned size {witnessed}" in verify.stderr
        assert f"the log has {kept} entries" in verify.stderr

        checkpoint = gateway_command(config_path, "log", "checkpoint")
        assert checkpoint.returncode == 1, checkpoint.stdout + checkpoint.stderr
        assert "ROLLBACK ALARM: witness w2" in checkpoint.stderr


def gateway_command(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gateway --config CONFIG_PATH ARGS…` in a process of its own, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def until_not_ready(deployment: Deployment, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status, body = await deployment.readyz()
        if status == 503:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.2)


ROLLBACK = (
    "DELETE FROM log_entries WHERE idx >= {kept}",
    "DELETE FROM log_nodes",
    "DELETE FROM checkpoints WHERE size > {kept}",
    "DELETE FROM witness_sizes",
)


async def roll_back(backend: Backend, sqlite_path: Path, kept: int) -> None:
    """Delete the newest entries, checkpoints and witness sizes, as an old backup would."""
    statements = [s.format(kept=kept) for s in ROLLBACK]
    if backend.name == "sqlite":
        with sqlite3.connect(sqlite_path) as db:
            for statement in statements:
                db.execute(statement)
        return
    assert backend.admin is not None
    await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
    for statement in [*statements, f"UPDATE log_counter SET next_index = {kept}"]:
        await backend.admin.execute(statement)


async def test_readyz_is_degraded_while_a_witness_is_down_and_a_reload_brings_it_back(
    tmp_config: Config, tmp_path: Path
) -> None:
    log_vkey = LogSigner.load(tmp_config.keys_dir, tmp_config.log.origin).verifier_key
    with ExitStack() as stack:
        witnesses = start_witnesses(stack, tmp_path, log_vkey)
        down = Witness(f"http://127.0.0.1:{free_port()}", witnesses["w2"].vkey)
        policy = write_policy(tmp_path / "witnesses.txt", log_vkey, {**witnesses, "w2": down})
        config = replace(tmp_config, log=replace(tmp_config.log, witness_policy=policy))
        client = TestClient(TestServer(create_app(config)))
        await client.start_server()
        try:
            app = client.server.app
            await app[LOG].checkpoint()
            await app[WITNESSES].submit_latest()
            response = await client.get("/readyz")
            ready = await response.json()
            assert response.status == 200 and ready["status"] == "degraded", ready
            assert ready["witnessing"]["quorum_met"] is False
            assert "w2" in ready["witnessing"]["not_cosigned"]
            assert (await app[LOG].witnessed_checkpoint()) is None

            # The policy fixed (w2's real URL) and reloaded as SIGHUP does: submitted again.
            write_policy(policy, log_vkey, witnesses)
            app[RELOADER].reload()
            deadline = asyncio.get_running_loop().time() + 20
            while (ready := await (await client.get("/readyz")).json())["status"] != "ready":
                assert asyncio.get_running_loop().time() < deadline, ready
                await asyncio.sleep(0.1)
            witnessed = await app[LOG].witnessed_checkpoint()
            assert witnessed is not None
            verify_cosigned(witnessed.note, log_vkey, [w.vkey for w in witnesses.values()])
        finally:
            await client.close()
