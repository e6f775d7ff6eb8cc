"""`gateway serve --workers 2` (issue #20 direction 3): one host's cores, one correct log.

The gateway runs as one real `serve --workers 2` process tree on SQLite and on PostgreSQL,
with two witness processes (ours and the spec-only one, quorum 2) and the partner played by
a sandbox in this process. A burst of concurrent disclosures, each on a connection of its
own so the kernel spreads them over both workers (SO_REUSEPORT), then:

- both workers wrote intents; every disclosure is one intent then one `sent` outcome, and
  the indexes are dense (0..size-1 in order);
- `gateway log verify` passes, and every stored checkpoint is consistent with the previous
  one (a consistency proof from `GET /v1/log/proof/consistency`, checked here);
- the witnessed checkpoint `GET /v1/log/checkpoint`, asked on many connections (so of both
  workers), carries the log's signature and both witnesses' cosignatures;
- a receipt of a disclosure of each worker verifies with `gateway receipt verify`;
- no witness rollback alarm: the workers' interleaved submissions are never one (the
  store keeps none, /readyz says ready on every connection);
- `--metrics-port P`: each worker's own /metrics on P and P+1, which together count every
  disclosure once (a scrape of the shared port would see one worker's counts);
- only the main process submits checkpoints to the witnesses (the other worker's /metrics
  has no cosigned size, and no submission meets a witness ahead by a peer's checkpoint):
  N workers submitting each checkpoint would be N round trips per witness.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from support.processes import GatewayProcess, free_port, write_project
from support.receipts import verify
from support.sandboxes import sandboxes_of
from support.spec_witness import verify_cosigned
from support.spec_witness.note import NoteError
from support.witnesses import Witness, gateway_witness, spec_witness, write_policy

from gateway.cli.main import main
from gateway.config.model import Config, load_config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.log.merkle import verify_consistency
from gateway.log.service import LogSigner
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster
from gateway.store import open_store

if TYPE_CHECKING:
    from conftest import Backend

COLLECTIONS = "mekong-collections"
WORKERS = 2
BURST = 40


def case() -> dict[str, Any]:
    return {
        "partner": COLLECTIONS,
        "operation": "open_case",
        "purpose": "service_provision",
        "legal_basis": "contract",
        "subject": f"s-workers-{uuid.uuid4()}",
        "data": {"name": "N", "phone": "+856 20 1", "amount": 10, "currency": "LAK", "uuid": "u"},
    }


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    cluster = await sandboxes_of(config, [partners[COLLECTIONS]])
    yield cluster
    await cluster.close()


class Client:
    """Callers of the gateway, each request on a new connection (so any worker answers it)."""

    def __init__(self, url: str, config_path: Path) -> None:
        self.url = url
        self.config = load_config(config_path)
        self.tokens: dict[str, str] = {}
        self.disclosed = 0

    async def call(
        self, method: str, path: str, caller: str | None = None, body: Any = None
    ) -> tuple[int, Any, str]:
        headers: dict[str, str] = {}
        if caller is not None:
            if caller not in self.tokens:
                self.tokens[caller] = issue_dev_token(
                    self.config.keys_dir, self.config.auth, caller
                )
            headers["Authorization"] = f"Bearer {self.tokens[caller]}"
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, self.url + path, json=body, headers=headers) as response,
        ):
            if path == "/v1/disclosures" and response.status == 201:
                self.disclosed += 1
            return response.status, response.headers, await response.text()


async def until(check: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (found := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return found


def size_and_root(note: str) -> tuple[int, bytes]:
    _, size, root = note.split("\n")[:3]
    return int(size), base64.b64decode(root)


async def test_a_burst_through_two_workers_keeps_one_verifiable_witnessed_log(
    backend: Backend, tmp_path: Path, project: Path, sandboxes: SandboxCluster
) -> None:
    config_path = write_project(
        tmp_path / "project",
        project,
        storage_url=backend.url,
        base_urls={COLLECTIONS: sandboxes.base_url(COLLECTIONS)},
        # Frequent checkpoints: both workers' loops sign and submit some during the burst.
        log_settings={"witness_policy": '"witnesses.txt"', "checkpoint_interval_s": 0.2},
    )
    config = load_config(config_path)
    log_vkey = LogSigner.load(config.keys_dir, config.log.origin).verifier_key
    with ExitStack() as stack:
        witnesses: dict[str, Witness] = {
            "w1": stack.enter_context(gateway_witness(tmp_path / "w1", log_vkey)),
            "w2": stack.enter_context(spec_witness(tmp_path / "w2", log_vkey)),
        }
        write_policy(config_path.parent / "witnesses.txt", log_vkey, witnesses, "all")
        metrics_port = consecutive_free_ports(WORKERS)
        gateway = GatewayProcess(
            config_path, workers=WORKERS, serve_args=("--metrics-port", str(metrics_port))
        )
        async with aiohttp.ClientSession() as session:
            await gateway.start(session)
        try:
            client = Client(gateway.url, config_path)
            store = await open_store(config.storage_url, config.root)
            try:
                await until(lambda: both_serve(client, store), f"{WORKERS} workers serving")
                outcome = await check_burst(client, store, witnesses, log_vkey, tmp_path)
                await check_metrics_per_worker(client, metrics_port)
            finally:
                await store.close()
        finally:
            gateway.stop()
    assert gateway.process is not None and gateway.process.returncode == 0, gateway.log_text()
    # One worker submits, so no witness is ever ahead of it by another worker's checkpoint.
    assert "stored by another instance" not in gateway.log_text()
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = await asyncio.to_thread(main, ["--config", str(config_path), "log", "verify"])
    assert code == 0, out.getvalue()
    assert f"ok: {outcome} entries and " in out.getvalue(), out.getvalue()


def consecutive_free_ports(count: int) -> int:
    """The first of `count` ports free right now."""
    while True:
        first = free_port()
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


async def check_metrics_per_worker(client: Client, first_port: int) -> None:
    sent = []
    submitters = []
    for port in range(first_port, first_port + WORKERS):
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200, url
            text = await response.text()
        # A worker that got a cosignature sets the gauge: only the main process submits.
        if "\ngateway_witness_cosigned_size{" in text:
            submitters.append(port - first_port)
        sent.append(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("gateway_disclosures_total{") and 'outcome="sent"' in line
            )
        )
    assert all(sent) and sum(sent) == client.disclosed, sent
    assert submitters == [0], f"workers submitting checkpoints to the witnesses: {submitters}"


async def both_serve(client: Client, store: Any) -> bool:
    """One disclosure; true once the log has intents of every worker (a spawned worker
    starts listening a few seconds after the first one)."""
    status, _, text = await client.call("POST", "/v1/disclosures", "payments-service", case())
    assert status == 201, text
    rows = await store.read_log(0, await store.log_size())
    return len({json.loads(raw).get("instance") for _, raw in rows} - {None}) >= WORKERS


async def check_burst(
    client: Client, store: Any, witnesses: dict[str, Witness], log_vkey: str, tmp_path: Path
) -> int:
    """The burst and every check made while the workers run; returns the log's size."""
    answers = await asyncio.gather(
        *(client.call("POST", "/v1/disclosures", "payments-service", case()) for _ in range(BURST))
    )
    assert [status for status, _, _ in answers] == [201] * BURST, answers[0]
    # Outcomes may still be in a worker's write batch when the 201 is out.
    size = 2 * client.disclosed

    async def all_written() -> bool:
        return bool(await store.log_size() == size)

    await until(all_written, "every intent's outcome in the log", timeout_s=10)
    burst = {headers["Disclosure-Id"] for _, headers, _ in answers}

    # Dense, ordered indexes; one intent then one `sent` outcome per disclosure; both wrote.
    rows = await store.read_log(0, size)
    assert [index for index, _ in rows] == list(range(size))
    entries = [json.loads(raw) for _, raw in rows]
    kinds: dict[str, list[str]] = {}
    for entry in entries:
        kind = entry["kind"] if entry["kind"] == "intent" else entry["outcome"]
        kinds.setdefault(entry["disclosure_id"], []).append(kind)
    assert set(map(tuple, kinds.values())) == {("intent", "sent")}
    writer_of = {e["disclosure_id"]: e["instance"] for e in entries if e["kind"] == "intent"}
    assert len({writer_of[d] for d in burst}) == WORKERS, "the burst reached one worker only"

    # The witnessed checkpoint covers the whole log, whichever worker answers.
    vkeys = [w.vkey for w in witnesses.values()]

    async def witnessed_whole_log() -> str | None:
        # The newest note, with the cosignatures gathered so far: one a worker that does
        # not submit has just signed waits for worker 0's next look at the store (2 s).
        status, _, note = await client.call("GET", "/v1/log/checkpoint", "reviewer-alice")
        assert status == 200, note
        if size_and_root(note)[0] != size:
            return None
        try:
            cosigned = verify_cosigned(note, log_vkey, vkeys)
        except NoteError:  # no cosignature yet
            return None
        return note if len(cosigned) == len(vkeys) else None

    for _ in range(8):
        await until(witnessed_whole_log, "a witnessed checkpoint of the whole log")

    # Every stored checkpoint extends the previous one (consistency proofs).
    checkpoints = await store.checkpoints()
    trees = [size_and_root(c.note) for c in checkpoints]
    assert [s for s, _ in trees] == sorted(s for s, _ in trees), trees
    for (first, root1), (second, root2) in pairwise(trees):
        if first == 0:
            continue
        query = f"/v1/log/proof/consistency?first={first}&second={second}"
        status, _, text = await client.call("GET", query, "reviewer-alice")
        assert status == 200, text
        hashes = [base64.b64decode(h) for h in json.loads(text)["hashes"]]
        verify_consistency(first, second, hashes, root1, root2)

    # A receipt of one disclosure of each worker verifies offline.
    _, _, keys = await client.call("GET", "/v1/log/key")
    folder = tmp_path / "verifier"
    folder.mkdir()
    (folder / "policy.txt").write_text(
        f"log {keys.splitlines()[0]}\n"
        + "".join(f"witness {name} {w.vkey}\n" for name, w in witnesses.items())
        + f"group all {len(witnesses)} {' '.join(witnesses)}\nquorum all\n"
    )
    one_of_each = {instance: disclosure for disclosure, instance in writer_of.items()}
    for disclosure in one_of_each.values():
        await check_receipt(client, disclosure, folder)

    # No rollback alarm from the workers' interleaved submissions.
    assert await store.witness_alarms() == []
    for _ in range(6):
        status, _, ready = await client.call("GET", "/readyz")
        assert status == 200 and json.loads(ready)["status"] == "ready", ready
    return size


async def check_receipt(client: Client, disclosure: str, folder: Path) -> None:
    path = f"/v1/disclosures/{disclosure}/receipt"

    async def ready() -> str | None:
        status, _, text = await client.call("GET", path, "payments-service")
        assert status in (200, 202), text
        return text if status == 200 else None

    receipt = await until(ready, f"the receipt of {disclosure}")
    index = int(receipt.split("\n")[1].removeprefix("index "))
    status, _, entry = await client.call("GET", f"/v1/log/entries/{index}", "payments-service")
    assert status == 200, entry
    (folder / f"{disclosure}.tlog-proof").write_text(receipt, encoding="utf-8")
    (folder / f"{disclosure}.json").write_text(entry, encoding="utf-8")
    args = ("--policy", "policy.txt", "--entry", f"{disclosure}.json")
    done = await asyncio.to_thread(verify, folder, f"{disclosure}.tlog-proof", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ok: entry {index} of "), done.stdout
