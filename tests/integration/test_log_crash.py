"""kill -9 in the middle of a load: no disclosure reaches a partner without its intent entry,
and the restarted gateway gives every interrupted one an `unknown` outcome.

`gateway serve` runs as a real subprocess on SQLite (so SIGKILL is a real crash of a real
process); the partner is a sandbox in this process, holding its answers back so that
disclosures are in flight — received by the partner, no outcome logged — when the
gateway dies.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import aiohttp
import pytest

from gateway.auth import issue_dev_token
from gateway.cli import main
from gateway.config import Config, load_config
from gateway.crypto import GatewayKeys
from gateway.partners import Partner
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.store import open_store

PARTNER = "mekong-collections"
SETTLED, IN_FLIGHT = 6, 10
DATA = {
    "name": "CANARY Somchai",
    "phone": "+85620CANARY",
    "email": "canary@example.com",
    "amount": 1000,
    "currency": "LAK",
    "transaction_id": "t-1",
    "uuid": "CANARY-UUID",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def sandbox(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    cluster = await start_sandboxes(
        {PARTNER: partners[PARTNER]}, config.keys_dir, jwks, {}, ports={PARTNER: 0}
    )
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
def root(project: Path, sandbox: SandboxCluster, tmp_path: Path) -> Path:
    """A project whose mekong-collections partner file points at the sandbox."""
    (tmp_path / "keys").symlink_to(project / "keys")
    (tmp_path / "partners").mkdir()
    for source in (project / "partners").glob("*.toml"):
        text = source.read_text()
        if source.stem == PARTNER:
            text = text.replace(
                'base_url = "http://127.0.0.1:9107"', f'base_url = "{sandbox.base_url(PARTNER)}"'
            )
        (tmp_path / "partners" / source.name).write_text(text)
    config = (project / "config.toml").read_text()
    config = config.replace('url = "sqlite:///var/gateway.db"', 'url = "sqlite:///gateway.db"')
    (tmp_path / "config.toml").write_text(config)
    return tmp_path


class Gateway:
    """`python -m gateway serve` as a child process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        log = (self.root / "gateway.out").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "--config",
                str(self.root / "config.toml"),
                "serve",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        for _ in range(300):
            if self.process.poll() is not None:
                raise AssertionError((self.root / "gateway.out").read_text()[-3000:])
            try:
                async with session.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("gateway did not start within 15 s")

    def kill(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=15)


async def test_kill_9_mid_load_loses_no_intent_and_recovers_unknown_outcomes(
    root: Path, sandbox: SandboxCluster
) -> None:
    config = load_config(root / "config.toml")
    token = issue_dev_token(config.keys_dir, config.auth, "payments-service")
    body = {
        "partner": PARTNER,
        "operation": "open_case",
        "purpose": "service_provision",
        "legal_basis": "contract",
        "subject": "CANARY-subject-1",
        "data": DATA,
    }
    gateway = Gateway(root)
    partner = sandbox.partner(PARTNER)

    async with aiohttp.ClientSession() as session:

        async def disclose() -> int:
            async with session.post(
                gateway.url + "/v1/disclosures",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                await response.read()
                return response.status

        await gateway.start(session)
        try:
            settled = await asyncio.gather(*(disclose() for _ in range(SETTLED)))
            assert all(status < 300 for status in settled), settled
            # The partner now takes the next ones in and holds its answers back.
            partner.slow_body(IN_FLIGHT, seconds=60)
            load = [asyncio.ensure_future(disclose()) for _ in range(IN_FLIGHT)]
            for _ in range(400):
                if len(partner.received) == SETTLED + IN_FLIGHT:
                    break
                await asyncio.sleep(0.025)
            assert len(partner.received) == SETTLED + IN_FLIGHT
        finally:
            gateway.kill(signal.SIGKILL)
        crashed = await asyncio.gather(*load, return_exceptions=True)
        assert all(isinstance(r, aiohttp.ClientError) for r in crashed), crashed

        received = {r.disclosure_id for r in partner.received}
        store = await open_store(config.storage_url, config.root)
        try:
            for disclosure_id in received:
                kinds = [
                    json.loads(e)["kind"]
                    for _, e in await store.log_entries_for_disclosure(disclosure_id)
                ]
                assert kinds[:1] == ["intent"], disclosure_id
            pending = {
                json.loads(e)["disclosure_id"] for _, e in await store.intents_without_outcome()
            }
            assert len(pending) == IN_FLIGHT and pending <= received

            partner.faults.clear()
            await gateway.start(session)  # crash recovery runs at start
            gateway.kill(signal.SIGTERM)

            assert await store.intents_without_outcome() == []
            outcomes: dict[str, str] = {}
            for disclosure_id in received:
                entries = [
                    json.loads(e) for _, e in await store.log_entries_for_disclosure(disclosure_id)
                ]
                assert [e["kind"] for e in entries] == ["intent", "outcome"]
                outcomes[disclosure_id] = entries[1]["outcome"]
        finally:
            await store.close()

    assert sorted(outcomes.values()) == ["sent"] * SETTLED + ["unknown"] * IN_FLIGHT
    assert {d for d, o in outcomes.items() if o == "unknown"} == pending

    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = await asyncio.to_thread(
            main, ["--config", str(root / "config.toml"), "log", "search", "--outcome", "unknown"]
        )
    assert code == 0 and all(d in out.getvalue() for d in pending)
    assert "CANARY" not in out.getvalue()
    with redirect_stdout(out), redirect_stderr(out):
        code = await asyncio.to_thread(
            main, ["--config", str(root / "config.toml"), "log", "verify"]
        )
    assert code == 0, out.getvalue()
