"""The fault suite (issue 6 item 3): partners that hang, reset, answer 500, drip their answer
byte by byte or cut it off half-way; a circuit breaker that opens and recovers; a gateway
killed mid-delivery; a database stopped and started under load.

After every fault the log is audited against what the sandbox partner recorded:

- every disclosure that reached the partner has its intent entry, written before it;
- every intent has exactly one outcome, and it is the right one: `sent` (the partner has
  it), `failed` (with `maybe_received` when an attempt may have reached the partner) or
  `unknown` (the instance died mid-delivery);
- no outcome counts more attempts than the partner's `max_attempts`;
- no entry is lost: each answered disclosure has its intent and its outcome.

Partner faults run against the in-process gateway on SQLite (the behaviour under test is
the delivery, not the store); the kill runs `gateway serve` as a subprocess on the shared
PostgreSQL server; the database outage stops and starts a PRIVATE PostgreSQL cluster made
with initdb for this test (never the machine's shared one). The figures (faults
injected, disclosures attempted and delivered, entries lost…) are written to
test-artifacts/fault-suite.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.processes import GatewayProcess, free_port, write_project

from gateway.config.model import Config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.seal import GatewayKeys
from gateway.log.audit import audit_store
from gateway.log.service import LogSigner
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster, SandboxPartner, start_sandboxes
from gateway.store import Store, open_store
from gateway.web import keys
from gateway.web.app import create_app

if TYPE_CHECKING:
    from conftest import Backend

PARTNER = "mekong-collections"
CALLER = "payments-service"
TIMEOUT_S = 0.6  # per attempt, for the partner under test
MAX_ATTEMPTS = 3
BODY = {
    "partner": PARTNER,
    "operation": "open_case",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "subject": "s-fault-1",
    "data": {"name": "N", "phone": "+856 20 1", "amount": 10, "currency": "LAK", "uuid": "u-1"},
}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[Counter[str]]:
    """Tally of the whole suite, written out when the module ends."""
    yield FIGURES
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fault-suite.json").write_text(json.dumps(dict(sorted(FIGURES.items())), indent=2))


# -- what every fault is checked against -----------------------------------------------------


@dataclass
class Answer:
    status: int
    problem: str | None
    disclosure_id: str | None
    headers: dict[str, str]


async def audit(store: Store, partner: SandboxPartner, answers: list[Answer]) -> dict[str, Any]:
    """Check the log against the partner's record (the module doc's four rules); return,
    per disclosure id, its intent and its outcome entries."""
    entries = [(i, json.loads(raw)) for i, raw in await store.read_log(0, await store.log_size())]
    intents = {e["disclosure_id"]: (i, e) for i, e in entries if e["kind"] == "intent"}
    outcomes: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, e in entries:
        if e["kind"] == "outcome":
            outcomes.setdefault(e["disclosure_id"], []).append((i, e))
    received = {r.disclosure_id for r in partner.received}

    without_intent = received - set(intents)
    without_outcome = {d for d in intents if len(outcomes.get(d, [])) != 1}
    sent_not_received = {
        d for d, found in outcomes.items() if found[0][1]["outcome"] == "sent"
    } - received
    too_many = [
        d for d, found in outcomes.items() if found[0][1]["attempts"] > partner.partner.max_attempts
    ]
    # A refusal's answer carries a disclosure id too (log_unavailable included): its record
    # is one `refused` entry, written once the store is back.
    refused = {e["disclosure_id"] for _, e in entries if e["kind"] == "refused"}
    answered = {a.disclosure_id for a in answers if a.disclosure_id is not None}
    lost = {d for d in answered if not (d in intents and d in outcomes) and d not in refused}
    FIGURES["deliveries without an intent"] += len(without_intent)
    FIGURES["intents without exactly one outcome"] += len(without_outcome)
    FIGURES["outcomes sent without a delivery"] += len(sent_not_received)
    FIGURES["log entries lost"] += len(lost)
    FIGURES["outcomes over max_attempts"] += len(too_many)
    assert not without_intent, f"reached the partner without an intent: {without_intent}"
    for disclosure_id in received:
        assert intents[disclosure_id][0] < outcomes[disclosure_id][0][0]
    assert not without_outcome, without_outcome
    assert not sent_not_received, sent_not_received
    assert not too_many, too_many
    assert not lost, lost
    return {d: (intents[d][1], outcomes[d][0][1]) for d in intents}


async def settled(store: Store, timeout_s: float = 10.0) -> None:
    """Wait until no intent is without an outcome (late outcomes, recovery sweeps)."""
    deadline = time.monotonic() + timeout_s
    while await store.intents_without_outcome():
        assert time.monotonic() < deadline, "intents still without outcome"
        await asyncio.sleep(0.05)


async def refusals_written(store: Store, answers: list[Answer], timeout_s: float = 10.0) -> None:
    """Wait until every log_unavailable answer's `refused` entry is in the log: they wait in
    the instance and are written once the store is back, after the answer went out."""
    wanted = {a.disclosure_id for a in answers if a.problem == "log_unavailable"}
    deadline = time.monotonic() + timeout_s
    while True:
        raw = await store.read_log(0, await store.log_size())
        written = {json.loads(data)["disclosure_id"] for _, data in raw}
        if wanted <= written:
            return
        assert time.monotonic() < deadline, f"refusals never written: {wanted - written}"
        await asyncio.sleep(0.05)


def kept_records(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if "kept until the log can be written" in r.message]


def problem_of(payload: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        doc = json.loads(payload)
        if isinstance(doc, dict) and isinstance(doc.get("type"), str):
            return str(doc["type"]).rsplit("/", 1)[-1]
    return None


# -- the in-process gateway against one sandbox partner --------------------------------------


class Monotonic:
    """The gateway's delivery clock, so the breaker's 30 s cool-down passes at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Rig:
    client: TestClient
    sandbox: SandboxPartner
    clock: Monotonic
    token: str
    answers: list[Answer]

    @property
    def store(self) -> Store:
        return self.client.server.app[keys.STORE]

    async def disclose(self, body: dict[str, Any] = BODY) -> Answer:
        FIGURES["disclosures attempted"] += 1
        response = await self.client.post(
            "/v1/disclosures", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        payload = await response.read()
        answer = Answer(
            response.status,
            problem_of(payload) if response.status >= 400 else None,
            response.headers.get("Disclosure-Id"),
            dict(response.headers),
        )
        self.answers.append(answer)
        return answer

    async def breaker_state(self) -> str:
        text = await (await self.client.get("/metrics")).text()
        states = [
            line.split('state="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("gateway_breaker_state{")
            and f'partner="{PARTNER}"' in line
            and line.endswith(" 1.0")
        ]
        assert len(states) == 1, states
        return states[0]


async def one_sandbox(config: Config, partner: Partner) -> SandboxCluster:
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    return await start_sandboxes(
        {partner.id: partner}, config.keys_dir, jwks, {}, ports={partner.id: 0}
    )


@pytest.fixture
async def rig(config: Config, partners: dict[str, Partner], tmp_path: Path) -> AsyncIterator[Rig]:
    tuned = replace(partners[PARTNER], timeout_s=TIMEOUT_S, max_attempts=MAX_ATTEMPTS)
    cluster = await one_sandbox(config, tuned)
    clock = Monotonic()
    app = create_app(
        replace(config, storage_url=f"sqlite:///{tmp_path}/gateway.db"),
        partners={**partners, PARTNER: cluster.partner_config(PARTNER)},
        env={},
        monotonic=clock,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    token = issue_dev_token(config.keys_dir, config.auth, CALLER)
    rig = Rig(client, cluster.partner(PARTNER), clock, token, [])
    try:
        yield rig
    finally:
        await client.close()
        await cluster.close()


@dataclass(frozen=True)
class Fault:
    """One partner fault: how to inject it, and what the gateway must make of it."""

    inject: Callable[[SandboxPartner], None]
    units: int  # requests it spoils
    status: int
    outcome: str
    attempts: int
    problem: str | None = None
    maybe_received: bool | None = None
    received: bool = True  # whether the partner ends up with the disclosure
    settle_s: float = 0.0  # how long the partner keeps working after the gateway gave up


FAULTS = {
    "500 twice, then ok": Fault(lambda p: p.fail_next(2, 500), 2, 201, "sent", 3),
    "500 on every attempt": Fault(
        lambda p: p.fail_next(3, 500), 3, 502, "failed", 3, "partner_unavailable", True, False
    ),
    "hang once, then ok": Fault(
        lambda p: p.hang_next(1, seconds=0.9), 1, 201, "sent", 2, settle_s=0.4
    ),
    "hang on every attempt": Fault(
        lambda p: p.hang_next(3, seconds=0.9),
        3,
        504,
        "failed",
        3,
        "partner_timeout",
        True,
        settle_s=0.7,
    ),
    "reset twice, then ok": Fault(lambda p: p.reset_next(2), 2, 201, "sent", 3),
    "reset on every attempt": Fault(
        lambda p: p.reset_next(3), 3, 502, "failed", 3, "partner_unavailable", True, False
    ),
    "answer dripped byte by byte, in time": Fault(
        lambda p: p.drip_body(1, byte_delay_s=0.0002), 1, 201, "sent", 1
    ),
    "answer dripped too slowly": Fault(
        lambda p: p.drip_body(3, byte_delay_s=0.01), 3, 504, "failed", 3, "partner_timeout", True
    ),
    "closed mid-body once, then ok": Fault(lambda p: p.cut_body(1), 1, 201, "sent", 2),
    "closed mid-body on every attempt": Fault(
        lambda p: p.cut_body(3), 3, 502, "failed", 3, "partner_unavailable", True
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
async def test_a_partner_fault_is_survived_and_logged_right(rig: Rig, name: str) -> None:
    fault = FAULTS[name]
    before = await rig.disclose()  # a healthy disclosure first
    fault.inject(rig.sandbox)
    FIGURES["faults injected"] += fault.units

    answer = await rig.disclose()
    after = await rig.disclose()  # and the partner serves again
    await asyncio.sleep(fault.settle_s)

    assert (before.status, after.status) == (201, 201)
    assert (answer.status, answer.problem) == (fault.status, fault.problem), answer
    assert rig.sandbox.faults.pending == []  # every spoiled request was tried
    await settled(rig.store)
    found = await audit(rig.store, rig.sandbox, rig.answers)
    assert answer.disclosure_id is not None
    _, outcome = found[answer.disclosure_id]
    assert outcome["outcome"] == fault.outcome
    assert outcome["attempts"] == fault.attempts <= MAX_ATTEMPTS
    assert outcome["maybe_received"] is fault.maybe_received
    if fault.status >= 500:
        assert outcome["problem"] == fault.problem
    received = [r.disclosure_id for r in rig.sandbox.received]
    assert received.count(answer.disclosure_id) == (1 if fault.received else 0)
    assert len(received) == len(set(received))  # a retry is never a second disclosure
    FIGURES["disclosures delivered"] += len(received)


async def test_the_breaker_opens_refuses_without_sending_and_recovers(rig: Rig) -> None:
    rig.sandbox.fail_next(MAX_ATTEMPTS * 5, 503)
    FIGURES["faults injected"] += MAX_ATTEMPTS * 5
    assert await rig.breaker_state() == "closed"
    failed = await asyncio.gather(*(rig.disclose() for _ in range(5)))
    assert {(a.status, a.problem) for a in failed} == {(502, "partner_unavailable")}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in failed)  # transient: retry later
    assert await rig.breaker_state() == "open"

    refused = await rig.disclose()
    assert (refused.status, refused.problem) == (503, "circuit_open")
    assert int(refused.headers["Retry-After"]) >= 1
    assert rig.sandbox.faults.pending == [] and rig.sandbox.received == []

    rig.clock.offset += 31  # the cool-down passes
    assert await rig.breaker_state() == "half_open"
    trial = await rig.disclose()
    assert trial.status == 201
    assert await rig.breaker_state() == "closed"
    assert (await rig.disclose()).status == 201

    await settled(rig.store)
    found = await audit(rig.store, rig.sandbox, rig.answers)
    assert refused.disclosure_id is not None
    _, outcome = found[refused.disclosure_id]
    assert (outcome["outcome"], outcome["attempts"], outcome["maybe_received"]) == (
        "failed",
        0,
        False,
    )
    FIGURES["disclosures delivered"] += len(rig.sandbox.received)


# -- a gateway killed mid-delivery, on PostgreSQL ----------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_kill_mid_delivery_leaves_unknown_outcomes_and_no_send_without_intent(
    backend: Backend, config: Config, partners: dict[str, Partner], project: Path, tmp_path: Path
) -> None:
    in_flight = 6
    cluster = await one_sandbox(config, partners[PARTNER])
    partner = cluster.partner(PARTNER)
    config_path = write_project(
        tmp_path / "project",
        project,
        storage_url=backend.url,
        base_urls={PARTNER: cluster.base_url(PARTNER)},
        log_settings={"instance_timeout_s": 1},
    )
    gateway = GatewayProcess(config_path)
    token = issue_dev_token(config.keys_dir, config.auth, CALLER)
    store = await open_store(backend.url, tmp_path)
    answers: list[Answer] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def disclose() -> None:
                FIGURES["disclosures attempted"] += 1
                async with session.post(
                    gateway.url + "/v1/disclosures",
                    json=BODY,
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    await response.read()
                    answers.append(
                        Answer(response.status, None, response.headers.get("Disclosure-Id"), {})
                    )

            await gateway.start(session)
            await asyncio.gather(*(disclose() for _ in range(3)))
            # The partner takes the next ones in and works on them for a while.
            partner.hang_next(in_flight, seconds=0.8)
            FIGURES["faults injected"] += in_flight + 1  # the hangs, and the kill
            load = [asyncio.ensure_future(disclose()) for _ in range(in_flight)]
            # Killed once every one of them is logged and has been taken in by the partner.
            deadline = time.monotonic() + 10
            while partner.faults.pending or len(await store.intents_without_outcome()) < in_flight:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            gateway.kill(signal.SIGKILL)
            await asyncio.gather(*load, return_exceptions=True)
            deadline = time.monotonic() + 10
            while len(partner.received) < 3 + in_flight:  # it finishes what it took in
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)

            await gateway.start(session)  # another instance: recovers the dead one
            await settled(store)
            gateway.stop()
        found = await audit(store, partner, answers)
        outcomes = Counter(outcome["outcome"] for _, outcome in found.values())
        assert outcomes == {"sent": 3, "unknown": in_flight}
        FIGURES["disclosures delivered"] += len(partner.received)
        FIGURES["unknown outcomes after a kill"] += outcomes["unknown"]
    finally:
        gateway.kill()
        await store.close()
        await cluster.close()


# -- the database stopped and started under load (a private PostgreSQL cluster) --------------


def _postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class PrivateCluster:
    """A throwaway PostgreSQL server in a temporary directory, run as the postgres OS user."""

    def __init__(self, bin_dir: Path, base: Path) -> None:
        self.bin = bin_dir
        self.data = base / "data"
        self.sockets = base / "sockets"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = base / "postgres.log"

    def _as_postgres(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args]

    def init(self) -> None:
        subprocess.run(
            self._as_postgres(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self._as_postgres(
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while (
            subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            ).returncode
            != 0
        ):
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "private PostgreSQL did not start"
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(
            self._as_postgres(
                str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w"
            ),
            check=True,
            capture_output=True,
        )
        self.process.wait(timeout=20)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    bin_dir = _postgres_bin()
    problem = None
    if bin_dir is None:
        problem = "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    elif os.geteuid() != 0 or shutil.which("runuser") is None:
        problem = "starting a private cluster needs root and runuser (to run as postgres)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI=true requires the database outage test to run")
        pytest.skip(problem)
    assert bin_dir is not None
    base = Path(tempfile.mkdtemp(prefix="gw-private-pg-"))
    (base / "sockets").mkdir()
    shutil.chown(base, "postgres")
    shutil.chown(base / "sockets", "postgres")
    cluster = PrivateCluster(bin_dir, base)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


async def test_a_database_stopped_mid_load_sends_nothing_and_serves_again_when_back(
    private_cluster: PrivateCluster,
    config: Config,
    partners: dict[str, Partner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = await one_sandbox(config, partners[PARTNER])
    partner = cluster.partner(PARTNER)
    tuned = replace(
        config,
        storage_url=private_cluster.url,
        log=replace(config.log, instance_timeout_s=1.0, checkpoint_interval_s=0.5),
    )
    app = create_app(tuned, partners={**partners, PARTNER: cluster.partner_config(PARTNER)}, env={})
    client = TestClient(TestServer(app))
    await client.start_server()
    rig = Rig(
        client, partner, Monotonic(), issue_dev_token(config.keys_dir, config.auth, CALLER), []
    )
    held = 4
    try:
        assert {(await rig.disclose()).status for _ in range(5)} == {201}

        # Some disclosures are at the partner (intents durable) when the database stops:
        # their outcomes cannot be written until it is back.
        partner.hang_next(held, seconds=1.5)
        at_partner = [asyncio.ensure_future(rig.disclose()) for _ in range(held)]
        deadline = time.monotonic() + 10
        while partner.faults.pending or len(await rig.store.intents_without_outcome()) < held:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.to_thread(private_cluster.stop)
        FIGURES["faults injected"] += held + 1  # the hangs, and the outage
        assert {a.status for a in await asyncio.gather(*at_partner)} == {201}
        delivered_before = len(partner.received)
        # Their outcomes wait in the instance for the store (each kept when its commit
        # fails, which may come just after the answer).
        while len(kept_records(caplog)) < held:
            assert time.monotonic() < deadline + 10
            await asyncio.sleep(0.02)
        assert len(kept_records(caplog)) == held

        # While it is down: 503 log_unavailable, and nothing leaves.
        down = await asyncio.gather(*(rig.disclose() for _ in range(8)))
        assert {(a.status, a.problem) for a in down} == {(503, "log_unavailable")}
        # A retry can succeed once the store is back: every answer says when to ask again.
        assert {a.headers.get("Retry-After") for a in down} == {"5"}
        not_ready = await client.get("/readyz")
        assert (not_ready.status, not_ready.headers.get("Retry-After")) == (503, "5")
        await asyncio.sleep(0.3)
        assert len(partner.received) == delivered_before

        await asyncio.to_thread(private_cluster.start)
        back_at = time.monotonic()
        while (await rig.disclose()).status != 201:
            assert time.monotonic() - back_at < 10, "not serving 10 s after the database returned"
            await asyncio.sleep(0.1)
        FIGURES["ms to serve again after the database returned"] = max(
            FIGURES["ms to serve again after the database returned"],
            round((time.monotonic() - back_at) * 1000),
        )
        assert (await client.get("/readyz")).status == 200
        assert {(await rig.disclose()).status for _ in range(5)} == {201}

        await settled(rig.store)  # the held outcomes, written once the store was back
        await refusals_written(rig.store, rig.answers)  # the 503s' refused entries, likewise
        found = await audit(rig.store, partner, rig.answers)
        outcomes = Counter(outcome["outcome"] for _, outcome in found.values())
        assert outcomes == {"sent": len(partner.received)}
        # Besides an intent and an outcome per delivery, one `refused log_unavailable` entry
        # per request answered 503 while the database was away, written once it was back.
        raw = await rig.store.read_log(0, await rig.store.log_size())
        refusals = [json.loads(data) for _, data in raw if json.loads(data)["kind"] == "refused"]
        assert {r["problem"] for r in refusals} <= {"log_unavailable"}
        unavailable = {a.disclosure_id for a in rig.answers if a.problem == "log_unavailable"}
        assert {r["disclosure_id"] for r in refusals} == unavailable
        assert len(raw) == 2 * len(partner.received) + len(refusals)
        signer = LogSigner.load(config.keys_dir, config.log.origin)
        report = await audit_store(rig.store, signer.verifier_key, config.log.origin)
        assert report.ok, report.problems
        FIGURES["disclosures delivered"] += len(partner.received)
    finally:
        await client.close()
        await cluster.close()
