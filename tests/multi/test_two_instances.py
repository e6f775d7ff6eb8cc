"""Two `gateway serve` processes on one PostgreSQL schema (issue 6 item 2).

Each test starts instances A and B as real subprocesses on a fresh schema, with the
partners played by sandboxes in this process. What must hold across instances:

- a consent withdrawn through A refuses the next disclosure through B;
- an Idempotency-Key reused across A and B (one after the other, or at the same time)
  sends once: the partner records one disclosure;
- both append at once, in waves, to one log that `gateway log verify` accepts, whose
  checkpoints (each signed by whichever instance's loop got there first) form one chain,
  with every intent answered by one outcome.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from support.processes import GatewayProcess, write_project

from gateway.cli.main import main
from gateway.config.model import Config, load_config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.seal import GatewayKeys
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.store import Store, open_store

if TYPE_CHECKING:
    from conftest import Backend

BUREAU, COLLECTIONS = "lao-credit-bureau", "mekong-collections"
# Both instances on one PostgreSQL schema; the `backend` fixture makes it fresh per test
# (and under CI=true a missing PostgreSQL fails instead of skipping).
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

CASE = {
    "partner": COLLECTIONS,
    "operation": "open_case",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "subject": "s-multi-1",
    "data": {"name": "N", "phone": "+856 20 1", "amount": 10, "currency": "LAK", "uuid": "u-1"},
}


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess
    session: aiohttp.ClientSession
    config_path: Path
    token: Callable[[str], str]

    async def call(
        self,
        instance: GatewayProcess,
        method: str,
        path: str,
        caller: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        async with self.session.request(
            method,
            instance.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token(caller)}", **(headers or {})},
        ) as response:
            payload = await response.read()
            text = payload.decode("utf-8", "replace")
            parsed: Any = json.loads(text) if text.startswith(("{", "[")) else text
            return response.status, dict(response.headers), parsed


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    chosen = {pid: partners[pid] for pid in (BUREAU, COLLECTIONS)}
    cluster = await start_sandboxes(
        chosen, config.keys_dir, jwks, {}, ports=dict.fromkeys(chosen, 0)
    )
    yield cluster
    await cluster.close()


@pytest.fixture
async def pair(
    backend: Backend, project: Path, sandboxes: SandboxCluster, tmp_path: Path
) -> AsyncIterator[Pair]:
    config_path = write_project(
        tmp_path / "project",
        project,
        storage_url=backend.url,
        base_urls={pid: sandboxes.base_url(pid) for pid in (BUREAU, COLLECTIONS)},
        # Frequent checkpoints, so that both instances sign some while the load runs.
        log_settings={"checkpoint_interval_s": 0.3, "instance_timeout_s": 5},
    )
    config = load_config(config_path)
    tokens: dict[str, str] = {}

    def token(caller: str) -> str:
        if caller not in tokens:
            tokens[caller] = issue_dev_token(config.keys_dir, config.auth, caller)
        return tokens[caller]

    # A config folder each, as on two hosts: a second `serve` on one folder refuses to
    # start while the first's var/gateway.pid names it.
    config_b = write_project(
        tmp_path / "project-b",
        project,
        storage_url=backend.url,
        base_urls={pid: sandboxes.base_url(pid) for pid in (BUREAU, COLLECTIONS)},
        log_settings={"checkpoint_interval_s": 0.3, "instance_timeout_s": 5},
    )
    a, b = GatewayProcess(config_path, "a"), GatewayProcess(config_b, "b")
    async with aiohttp.ClientSession() as session:
        try:
            # At once: migrations take an advisory lock, so each version is applied once.
            await asyncio.gather(a.start(session), b.start(session))
            yield Pair(a, b, session, config_path, token)
        finally:
            a.stop()
            b.stop()


async def open_shared_store(pair: Pair) -> Store:
    config = load_config(pair.config_path)
    return await open_store(config.storage_url, config.root)


async def test_a_consent_withdrawn_through_a_binds_b(pair: Pair, sandboxes: SandboxCluster) -> None:
    subject = f"s-{uuid.uuid4()}"
    consent = {
        "subject": subject,
        "purposes": ["service_provision"],
        "partners": [BUREAU],
        "policy_version": "2024-09-30",
        "method": "app",
    }
    credit_check = {
        "partner": BUREAU,
        "operation": "credit_check",
        "purpose": "service_provision",
        "legal_basis": "consent",
        "subject": subject,
        "data": {"name": "N", "date_of_birth": "1990-04-02", "phone": "+856 20 5", "uuid": "u"},
    }
    status, _, granted = await pair.call(pair.a, "POST", "/v1/consents", "customer-app", consent)
    assert status == 201, granted
    status, _, body = await pair.call(
        pair.b, "POST", "/v1/disclosures", "sales-service", credit_check
    )
    assert status < 300, body

    status, _, body = await pair.call(
        pair.a, "POST", f"/v1/consents/{granted['id']}/withdraw", "customer-app"
    )
    assert status == 200 and body["withdrawn_at"], body
    status, headers, problem = await pair.call(
        pair.b, "POST", "/v1/disclosures", "sales-service", credit_check
    )

    assert status == 403, problem
    assert problem["type"].endswith("consent_withdrawn"), problem
    assert headers["Content-Type"].startswith("application/problem+json")
    received = sandboxes.received(BUREAU)
    [disclosed] = [r for r in received if r.notice is None]
    # A, which withdrew, found in the shared log what B disclosed under the consent, and
    # told the bureau of the withdrawal naming that disclosure.
    [told] = [r for r in received if r.notice == "consent_withdrawn"]
    assert told.about == [disclosed.disclosure_id]


async def test_an_idempotency_key_reused_across_instances_sends_once(
    pair: Pair, sandboxes: SandboxCluster
) -> None:
    def send(instance: GatewayProcess, key: str) -> Any:
        return pair.call(
            instance, "POST", "/v1/disclosures", "payments-service", CASE, {"Idempotency-Key": key}
        )

    # One after the other: B replays A's answer.
    first = await send(pair.a, "order-1")
    repeat = await send(pair.b, "order-1")
    assert first[0] == 201 and repeat[0] == 201, (first, repeat)
    assert repeat[1]["Idempotency-Replayed"] == "true"
    assert repeat[1]["Disclosure-Id"] == first[1]["Disclosure-Id"]
    assert repeat[2] == first[2]

    # At the same time, several rounds: one request wins each key, the other replays or
    # is told the key is in progress (409) — never a second disclosure.
    for round_ in range(5):
        key = f"order-race-{round_}"
        answers = await asyncio.gather(send(pair.a, key), send(pair.b, key))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses in ([201, 201], [201, 409]), answers
        ids = {headers.get("Disclosure-Id") for status, headers, _ in answers if status == 201}
        assert len(ids) == 1, answers

    received = [r.disclosure_id for r in sandboxes.received(COLLECTIONS)]
    assert len(received) == len(set(received)) == 6
    assert first[1]["Disclosure-Id"] in received


async def test_both_append_to_one_log_that_verifies_as_one_checkpoint_chain(
    pair: Pair, sandboxes: SandboxCluster
) -> None:
    waves, per_instance = 3, 10
    store = await open_shared_store(pair)
    try:
        for _ in range(waves):
            answers = await asyncio.gather(
                *(
                    pair.call(instance, "POST", "/v1/disclosures", "payments-service", CASE)
                    for _ in range(per_instance)
                    for instance in (pair.a, pair.b)
                )
            )
            assert [status for status, _, _ in answers] == [201] * 2 * per_instance, answers[0]
            # The instances' checkpoint loops (every 0.3 s) cover the wave before the next.
            grown = await store.log_size()
            deadline = asyncio.get_running_loop().time() + 10
            while (latest := await store.latest_checkpoint()) is None or latest.size < grown:
                assert asyncio.get_running_loop().time() < deadline, "no checkpoint of the wave"
                await asyncio.sleep(0.05)
        pair.a.stop()
        pair.b.stop()
        size = await store.log_size()
        entries = [json.loads(raw) for _, raw in await store.read_log(0, size)]
        checkpoints = await store.checkpoints()
        instances = await store.list_instances()
    finally:
        await store.close()

    # Every disclosure: one intent, then one `sent` outcome; intents from both instances.
    assert size == waves * 4 * per_instance
    by_disclosure: dict[str, list[str]] = {}
    for entry in entries:
        by_disclosure.setdefault(entry["disclosure_id"], []).append(
            entry["kind"] if entry["kind"] == "intent" else entry["outcome"]
        )
    assert set(map(tuple, by_disclosure.values())) == {("intent", "sent")}
    writers = {e["instance"] for e in entries if e["kind"] == "intent"}
    assert len(writers) == 2
    received = {r.disclosure_id for r in sandboxes.received(COLLECTIONS)}
    assert received == set(by_disclosure)
    # Both stopped cleanly: retired, nothing for anyone to recover.
    assert all(i.recovered_at is not None for i in instances if i.id in writers)

    # One chain: stored in order of growing size, the last one covering the whole log,
    # and every signed root matching the recomputed tree (gateway log verify).
    sizes = [c.size for c in checkpoints]
    assert len(set(sizes)) >= waves and sizes == sorted(sizes) and sizes[-1] == size, sizes
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = await asyncio.to_thread(main, ["--config", str(pair.config_path), "log", "verify"])
    assert code == 0, out.getvalue()
    assert f"ok: {size} entries and {len(checkpoints)} checkpoint(s) verified" in out.getvalue()
