"""kill -9 in the middle of a load: no disclosure reaches a partner without its intent entry,
and the restarted gateway gives every interrupted one an `unknown` outcome (once the killed
instance has been silent for `[log] instance_timeout_s`, set short here).

`gateway serve` runs as a real subprocess on SQLite (so SIGKILL is a real crash of a real
process); the partner is a sandbox in this process, holding its answers back so that
disclosures are in flight — received by the partner, no outcome logged — when the
gateway dies.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import aiohttp
import pytest
from support.processes import GatewayProcess, write_project
from support.sandboxes import sandboxes_of

from gateway.cli.main import main
from gateway.config.model import Config, load_config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster
from gateway.store import open_store

PARTNER = "mekong-collections"
SETTLED, IN_FLIGHT = 6, 10
INSTANCE_TIMEOUT_S = 1.0
DATA = {
    "name": "CANARY Somchai",
    "phone": "+85620CANARY",
    "email": "canary@example.com",
    "amount": 1000,
    "currency": "LAK",
    "transaction_id": "t-1",
    "uuid": "CANARY-UUID",
}


@pytest.fixture
async def sandbox(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    cluster = await sandboxes_of(config, [partners[PARTNER]])
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
def root(project: Path, sandbox: SandboxCluster, tmp_path: Path) -> Path:
    """A project on SQLite whose mekong-collections partner file points at the sandbox."""
    write_project(
        tmp_path,
        project,
        storage_url="sqlite:///gateway.db",
        base_urls={PARTNER: sandbox.base_url(PARTNER)},
        # The killed instance is presumed dead after this long without a heartbeat.
        log_settings={"instance_timeout_s": INSTANCE_TIMEOUT_S},
    )
    return tmp_path


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
    gateway = GatewayProcess(root / "config.toml")
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
            # The restarted process is another instance: it marks the killed one's
            # disclosures once that one has been silent for the instance timeout.
            await gateway.start(session)
            for _ in range(200):
                if not await store.intents_without_outcome():
                    break
                await asyncio.sleep(0.05)
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
