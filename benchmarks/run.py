"""`make bench`: the gateway against a bare proxy in the same run, and the pure figures.

Starts, each as a process of its own:

- the loopback partners (``benchmarks/partner.py``: ``gateway.sandbox.partner`` partners that
  decrypt and verify every disclosure, as a real partner would) for an RSA-OAEP-256
  partner (lao-credit-bureau: PS256 inside, OAuth2 client credentials) and an
  ECDH-ES+A256KW partner (lanexang-insurance: Ed25519 inside, API key);
- a bare aiohttp pass-through proxy to the same partners (``benchmarks/proxy.py``),
  fed JWEs sealed in advance, so the partners do the same work for both;
- the gateway (`gateway serve`, one worker) on SQLite and on PostgreSQL (a fresh
  schema of ``$GATEWAY_BENCH_POSTGRES_URL``, dropped afterwards), with consents in
  place, so every request is a full disclosure: caller JWT, consent lookup, decide,
  minimize, sign and encrypt, durable intent, delivery, durable outcome;
- the load generator: wrk (``benchmarks/requests.lua``) where installed, else
  ``benchmarks/loadgen.py``.

Witnessing (issue #18): the SQLite gateway runs a second time with a witness policy naming
two witnesses on loopback (``gateway witness serve``, both must cosign), as the target
``gateway sqlite witnessed`` right after ``gateway sqlite``; after the HTTP cases it says
how many checkpoints it signed and got witnessed, the witnesses' CPU, whether the witnessed
checkpoint kept up, and both gateways' ratios to the proxy side by side. The cost per
checkpoint is ``benchmarks/witnessing.py``'s.

Several processes on one host (issue #20): with ``--workers N`` the SQLite gateway also runs
as ``gateway serve --workers N`` (target ``gateway sqlite xN``), and the bare proxy too
(``benchmarks/proxy.py --workers N``, target ``bare proxy xN``, right before it): the "x
proxy" ratio and the CPU ratio of ``sqlite xN`` are against ``proxy xN``, the same cores on
both sides; cpu ms sums the processes.

Cases run interleaved (proxy, SQLite, PostgreSQL for each partner and connection
count), so a change in the machine's load hits all three alike. Each scenario runs with the
partners decrypting and again with them echoing (answering at once, ``benchmarks/partner.py``:
only the gateway's and the proxy's own costs differ); after the HTTP cases, the gateway's
process CPU per disclosure against the proxy's per request (issue #20: at most 3x). Then decide()
(``benchmarks/decide.py``), the hot path's pieces alone (``benchmarks/cpu_table.py``),
witnessing per checkpoint (``benchmarks/witnessing.py``) and
the log figures (``benchmarks/log.py``), with the cost of a lone durable commit on this
machine (``benchmarks/commit_floor.py``). Prints figures; asserts nothing about speed.

Usage: ``python benchmarks/run.py [--quick] [--seconds S] [--log-entries N] [--skip-log]
[--skip-witnessing] [--workers N] [--project DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from benchmarks import witnessing  # noqa: E402
from benchmarks.partner import ECHO_OFF, ECHO_ON  # noqa: E402
from gateway.config.model import Config, load_config  # noqa: E402
from gateway.crypto.dev_tokens import issue_dev_token  # noqa: E402
from gateway.crypto.seal import GatewayKeys, claims_for, load_partner_key_file  # noqa: E402
from gateway.log.service import LogSigner  # noqa: E402
from gateway.partners import Partner, load_partners  # noqa: E402

POSTGRES_URL = os.environ.get(
    "GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CONSENT_WRITER = "customer-app"
CONNECTIONS = (1, 64)
WITNESSED = "sqlite witnessed"  # the SQLite gateway again, with a witness policy
STARTUP_TIMEOUT_S = 90.0
PARTNER_MODES = {
    "decrypt": "the partner decrypts and verifies",
    "echo": "echo partner (answers at once: only the gateway's own cost differs)",
}


@dataclass(frozen=True)
class Scenario:
    """One partner under load: what the caller sends, and what the partner gets."""

    label: str
    partner: str
    operation: str
    caller: str
    legal_basis: str
    data: dict[str, Any]  # the caller's full record
    minimized: dict[str, Any]  # what the gateway sends (for the proxy's sealed JWEs)


SUBJECT = {
    "name": "Somchai Phommavong",
    "date_of_birth": "1990-04-02",
    "phone": "+856 20 5555 1234",
    "email": "somchai@example.la",
    "gender": "m",
    "uuid": "u-0001-4a7e-9c1d-000000000001",
    "password": "never-leaves",
}
PSEUDONYM = "pX3mKq9V0cJm0b0bq3Jd5m6Dk2c0bXoUu2N4fS1Lr8A"  # stands in for the proxy's JWEs

# The first two are the issue's targets: an RSA-OAEP-256 partner (a payment, signed with
# the default ES256) and an ECDH-ES+A256KW partner. The third shows what a partner that
# asks for an RSA signature (PS256) adds: one RSA private-key operation per request.
SCENARIOS = (
    Scenario(
        "RSA-OAEP-256 + ES256 (bcel-payments charge, contract, OAuth2 basic)",
        "bcel-payments",
        "charge",
        "payments-service",
        "contract",
        {
            **SUBJECT,
            "amount": 125000000,
            "currency": "LAK",
            "card_token": "tok_4f9a1c2e7b",
            "transaction_id": "tx-2026-000123",
        },
        {
            "uuid": PSEUDONYM,
            "amount": 125000000,
            "currency": "LAK",
            "card_token": "tok_4f9a1c2e7b",
            "transaction_id": "tx-2026-000123",
        },
    ),
    Scenario(
        "ECDH-ES+A256KW + Ed25519 (lanexang-insurance quote, consent, API key)",
        "lanexang-insurance",
        "quote",
        "sales-service",
        "consent",
        {
            **SUBJECT,
            "brand": "Toyota",
            "model": "Vios",
            "car_type": "sedan",
            "mileage": 42000,
        },
        {
            "date_of_birth": "35-44",
            "gender": "m",
            "brand": "Toyota",
            "model": "Vios",
            "car_type": "sedan",
            "mileage": 42000,
            "uuid": PSEUDONYM,
        },
    ),
    Scenario(
        "RSA-OAEP-256 + PS256 (lao-credit-bureau credit_check, consent, OAuth2 post)",
        "lao-credit-bureau",
        "credit_check",
        "sales-service",
        "consent",
        SUBJECT,
        {
            "name": "Somchai Phommavong",
            "date_of_birth": "1990",
            "phone": "+856 20 5555 1234",
            "uuid": PSEUDONYM,
        },
    ),
)


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int
    load: float
    server_cpu_ms: float | None  # CPU of the gateway (or proxy) process per request
    partner_cpu_ms: float | None  # CPU of the partners' process per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load1() -> float:
    return os.getloadavg()[0]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` and its live children (the workers of
    `gateway serve --workers N`), from Linux /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Every thread's children: a process started from another thread is listed there.
        tasks = Path(f"/proc/{pid}/task").glob("*/children")
        children = [child for task in tasks for child in task.read_text().split()]
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) or 0.0 for child in children)


def per_request_ms(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or not requests:
        return None
    return (after - before) * 1e3 / requests


def uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


# -- processes --------------------------------------------------------------------------


class Service:
    """A child process that prints one JSON line when ready; stopped with SIGTERM."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(args),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def ready_line(self, timeout: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
        self.fail("did not report that it was ready")
        raise AssertionError  # unreachable

    def fail(self, what: str) -> None:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{self.name} {what}; its log ({self.log_path}):\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        service.stop()
    services.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the gateway's workspace ------------------------------------------------------------


def set_key(text: str, section: str, key: str, value: str, *, add: bool = False) -> str:
    """`text` (TOML) with `key` of table `section` set to the TOML literal `value`; with
    `add`, a key the table does not have is added as its first line."""
    lines = text.splitlines()
    current = ""
    header = None
    for n, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            if current == section:
                header = n
        elif current == section and stripped.split("=")[0].strip() == key:
            lines[n] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    if add and header is not None:
        lines.insert(header + 1, f"{key} = {value}")
        return "\n".join(lines) + "\n"
    raise SystemExit(f"config.toml has no {key} in [{section}]; benchmarks/run.py needs one")


def workspace(
    where: Path,
    storage_url: str,
    served: dict[str, dict[str, str | None]],
    config: Config,
    witness_policy: str | None = None,
) -> Path:
    """A directory with config.toml, the partners pointed at the sandboxes, and the keys;
    with `witness_policy` (a tlog-policy's text), witnesses.txt and `[log] witness_policy`."""
    where.mkdir(parents=True)
    (where / "keys").symlink_to(config.keys_dir)
    text = set_key(config.path.read_text(), "storage", "url", json.dumps(storage_url))
    if witness_policy is not None:
        (where / "witnesses.txt").write_text(witness_policy)
        text = set_key(text, "log", "witness_policy", '"witnesses.txt"', add=True)
    if config.sandbox_serve:
        # The benchmark runs its own sandboxes: the gateway must not start them on 91xx too.
        text = set_key(text, "sandbox", "serve", "false")
    (where / "config.toml").write_text(text)
    partners_dir = where / "partners"
    partners_dir.mkdir()
    for pid, urls in served.items():
        source = (config.partners_dir / f"{pid}.toml").read_text()
        source = set_key(source, "", "base_url", json.dumps(urls["base_url"]))
        if urls.get("token_url"):
            source = set_key(source, "auth", "token_url", json.dumps(urls["token_url"]))
        (partners_dir / f"{pid}.toml").write_text(source)
    # The partner files name keys relative to the directory above partners/.
    return where / "config.toml"


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def postgres_schema() -> Iterator[str | None]:
    """A fresh schema's URL, dropped afterwards; None when PostgreSQL is unreachable."""
    schema = f"gw_bench_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"PostgreSQL at {POSTGRES_URL} unreachable ({type(exc).__name__})", file=sys.stderr)
        yield None
        return
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


# -- requests ---------------------------------------------------------------------------


def raw_request(port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def subjects(count: int) -> list[str]:
    return [f"bench-subject-{n:05d}" for n in range(count)]


def gateway_requests(port: int, token: str, scenario: Scenario, count: int) -> bytes:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    requests = []
    for subject in subjects(count):
        body = {
            "partner": scenario.partner,
            "operation": scenario.operation,
            "purpose": "service_provision",
            "legal_basis": scenario.legal_basis,
            "subject": subject,
            "data": scenario.data,
        }
        requests.append(raw_request(port, "/v1/disclosures", headers, json.dumps(body).encode()))
    return b"\0".join(requests)


def proxy_requests(
    port: int, config: Config, partner: Partner, scenario: Scenario, count: int
) -> bytes:
    """JWEs sealed now, as the gateway would seal them, valid for the whole run."""
    keys = GatewayKeys.load(config.keys_dir)
    enc = partner.encryption
    assert enc.public_key is not None
    recipient = load_partner_key_file(enc.public_key, alg=enc.alg)
    operation = partner.operations[scenario.operation]
    requests = []
    for _ in range(count):
        disclosure_id = f"d-{uuid.uuid4()}"
        claims = claims_for(
            issuer=config.log.origin,
            partner_id=partner.id,
            disclosure_id=disclosure_id,
            purpose="service_provision",
            legal_basis=scenario.legal_basis,
            data=scenario.minimized,
            now=datetime.now(UTC),
            lifetime=timedelta(hours=6),
        )
        sealed = keys.seal(
            claims, sign_alg=enc.sign_alg, recipient=recipient, alg=enc.alg, enc=enc.enc
        )
        headers = {"Content-Type": "application/jose", "Idempotency-Key": disclosure_id}
        requests.append(
            raw_request(port, f"/{partner.id}{operation.path}", headers, sealed.encode())
        )
    return b"\0".join(requests)


async def grant_consents(port: int, token: str, config: Config, count: int) -> None:
    partners = [s.partner for s in SCENARIOS]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as session:
        queue = list(subjects(count))

        async def writer() -> None:
            while queue:
                subject = queue.pop()
                body = {
                    "subject": subject,
                    "purposes": ["service_provision"],
                    "partners": partners,
                    "policy_version": config.policy.version,
                    "method": "app",
                }
                async with session.post("/v1/consents", json=body) as response:
                    if response.status != 201:
                        raise SystemExit(
                            f"consent not recorded: {response.status} {await response.text()}"
                        )

        await asyncio.gather(*(writer() for _ in range(8)))


async def wait_healthy(port: int, service: Service) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                service.fail("exited")
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    service.fail("did not answer /healthz")


async def check_once(port: int, raw: bytes, what: str) -> None:
    """Send the first prepared request; a benchmark of refusals would measure nothing."""
    head, _, body = raw.split(b"\0")[0].partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    for name in ("Host", "Content-Length"):
        headers.pop(name, None)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}{path}", data=body, headers=headers) as response,
    ):
        if not 200 <= response.status < 300:
            text = (await response.text())[:500]
            raise SystemExit(f"{what}: a trial request got {response.status}: {text}")


# -- load -------------------------------------------------------------------------------


def measure(
    port: int,
    request_file: Path,
    connections: int,
    seconds: float,
    pids: tuple[int, int],
    wrk: str | None,
) -> Figures:
    """One run of the load generator against 127.0.0.1:`port` (server and partner `pids`)."""
    url = f"http://127.0.0.1:{port}"
    if wrk is not None:
        args = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(seconds, 1.0):.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "benchmarks" / "requests.lua"),
            url,
            "--",
            str(request_file),
            str(connections * 7),
        ]
    else:
        args = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            url,
            str(request_file),
            str(connections),
            str(seconds),
        ]
    load = load1()
    server_before, partner_before = (cpu_seconds(pid) for pid in pids)
    done = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    server_after, partner_after = (cpu_seconds(pid) for pid in pids)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            result = json.loads(line[len("BENCH ") :])
            requests = int(result["requests"])
            return Figures(
                requests=requests,
                seconds=result["duration_us"] / 1e6,
                p50_ms=result["p50_us"] / 1e3,
                p99_ms=result["p99_us"] / 1e3,
                failed=int(result["non_2xx"]) + int(result["socket_errors"]),
                load=load,
                server_cpu_ms=per_request_ms(server_before, server_after, requests),
                partner_cpu_ms=per_request_ms(partner_before, partner_after, requests),
            )
    raise SystemExit(f"load generator gave no figures:\n{done.stdout}\n{done.stderr}")


def run_case(
    scenario: Scenario,
    mode: str,
    connections: int,
    args: argparse.Namespace,
    targets: list[tuple[str, str, int]],
    request_files: dict[tuple[str, str], Path],
    pids: dict[str, int],
    wrk: str | None,
    partner_pid: int,
    watch: WitnessWatch,
) -> dict[str, list[Figures]]:
    """Every round of one case (a scenario, a partner mode, a connection count) on every
    target, interleaved, printed as it goes, with the medians."""
    rounds: dict[str, list[Figures]] = {key: [] for _, key, _ in targets}
    for number in range(args.rounds):
        for label, key, port in targets:
            path = request_files[(key, scenario.partner)]
            who = (pids[key], partner_pid)
            if args.warmup and number == 0:
                measure(port, path, connections, args.warmup, who, wrk)
            profile = args.profile if number == 0 else None
            with profiled(
                profile, key, f"{scenario.partner}-{mode}", connections, pids[key], args.seconds
            ) as cpu_ms:
                figures = measure(port, path, connections, args.seconds, who, wrk)
                cpu_ms.append(figures.server_cpu_ms)
            rounds[key].append(figures)
            proxy = None if is_proxy(key) else rounds[baseline_of(key, rounds)][number]
            name = f"{label} #{number + 1}" if args.rounds > 1 else label
            print(row(name, connections, figures, proxy), flush=True)
            watch.after_case(key, port)
    if args.rounds > 1:
        for label, key, _ in targets:
            print(median_row(label, connections, rounds, key), flush=True)
    if "postgresql" in args.stores and "postgresql" not in pids:
        print(row("gateway postgresql", connections, None, None, " (PostgreSQL unreachable)"))
    return rounds


def cpu_summary(
    scenarios: Sequence[Scenario],
    modes: Sequence[str],
    cpu_rounds: dict[tuple[str, str, int], dict[str, list[Figures]]],
) -> str:
    """The gateway's process CPU per disclosure against the bare proxy's per request
    (medians of the rounds), per scenario, partner mode and connection count: issue #20's
    target is at most 3x."""
    lines = [
        "\nCPU per request: the gateway's process CPU time per disclosure / the bare proxy's "
        "per request (medians of the rounds; target <= 3x)"
    ]
    for scenario in scenarios:
        label = scenario.label.split(" (")[0]
        for mode in modes:
            for (partner, case_mode, conns), rounds in cpu_rounds.items():
                if partner != scenario.partner or case_mode != mode:
                    continue
                proxy = median_or_none(f.server_cpu_ms for f in rounds["proxy"])
                cells = []
                for key, figures in rounds.items():
                    if is_proxy(key):
                        continue
                    cpu = median_or_none(f.server_cpu_ms for f in figures)
                    baseline = baseline_of(key, rounds)
                    base = median_or_none(f.server_cpu_ms for f in rounds[baseline])
                    ratio = f" = {cpu / base:.1f}x" if cpu and base else ""
                    against = "" if baseline == "proxy" else f" {baseline} ({_ms(base)} ms)"
                    cells.append(f"{key} {_ms(cpu)} ms{ratio}{against}")
                lines.append(
                    f"  {label:<28} {mode:<7} {conns:>3} conns: proxy {_ms(proxy)} ms; "
                    + "; ".join(cells)
                )
    return "\n".join(lines)


@contextmanager
def profiled(
    into: Path | None, key: str, case: str, connections: int, pid: int, seconds: float
) -> Iterator[list[float | None]]:
    """py-spy samples the gateway (not the proxy) for the case's duration, when asked. The
    caller adds the case's CPU per request (ms) to the list it gets, for the µs per concern
    (the sampler's own cost, at 500 Hz, is in that CPU too)."""
    cpu_ms: list[float | None] = []
    if into is None or is_proxy(key):
        yield cpu_ms
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy (in the test extras: pip install -e '.[test]')")
    into.mkdir(parents=True, exist_ok=True)
    out = into / f"{key.replace(' ', '-')}-{case}-{connections}.txt"
    recorder = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            f"{max(seconds, 1.0):.0f}",
            "--format",
            "raw",
            "--rate",
            "500",
            "--gil",
            "--subprocesses",  # the workers of `--workers N`
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield cpu_ms
    finally:
        recorder.wait(timeout=seconds + 30)
    if out.exists():
        print(profile_summary(out, cpu_ms[0] if cpu_ms else None), flush=True)


# The gateway's concerns, each by the frames that belong to it (file or file:function).
PROFILE_PARTS = (
    ("web layer: caller auth", ("gateway/callers/tokens.py",)),
    (
        "web layer: request parsing, access log",
        ("gateway/web/", "gateway/policy/request.py", "gateway/observe/app_log.py"),
    ),
    (
        "decide (facts, policy)",
        ("gateway/disclosure/flow.py:evaluate", "gateway/store/:subject_facts"),
    ),
    ("minimize", ("gateway/policy/minimize.py",)),
    ("seal (sign + encrypt)", ("gateway/disclosure/flow.py:_seal",)),
    ("log: entry building", ("gateway/log/entries.py",)),
    (
        "log: append (writer, store)",
        ("gateway/log/writer.py", "gateway/store/:append_log", "gateway/store/:_Writer"),
    ),
    ("delivery (aiohttp client, retries)", ("gateway/outbound/",)),
    ("aiohttp server", ("aiohttp/web_protocol.py",)),
)


def profile_summary(path: Path, cpu_ms: float | None = None, top: int = 12) -> str:
    """Each concern's share of the samples, and the hottest functions (self).

    A sample belongs to the innermost concern on its stack: JSON encoding called by the
    log's entry building counts there, the aiohttp client called by delivery counts as
    delivery. What no concern claims is "other" (the event loop, timers, logging setup).
    """
    parts: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        part = next(
            (
                name
                for frame in reversed(frames)
                for name, marks in PROFILE_PARTS
                if _frame_in(frame, marks)
            ),
            "other",
        )
        parts[part] = parts.get(part, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if not total:
        return f"  profile {path.name}: no samples"
    per = "" if cpu_ms is None else f" and µs of CPU per request (of {cpu_ms * 1e3:.0f})"
    lines = [f"  profile {path.name}: {total} samples holding the GIL; by concern{per}:"]
    for name in [name for name, _ in PROFILE_PARTS] + ["other"]:
        share = parts.get(name, 0) / total
        us = "" if cpu_ms is None else f" {share * cpu_ms * 1e3:6.0f} µs"
        lines.append(f"    {100 * share:5.1f}%{us}  {name}")
    lines.append("    hottest functions (self):")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / total:5.1f}%  {frame[:110]}")
    return "\n".join(lines)


def _frame_in(frame: str, marks: Sequence[str]) -> bool:
    """py-spy frames read ``function (path/to/file.py:line)``."""
    function, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0]
    for mark in marks:
        mark_file, _, mark_function = mark.partition(":")
        if file.endswith(mark_file) or (mark_file.endswith("/") and mark_file in file):
            if mark_function in function:
                return True
    return False


# -- witnessing -------------------------------------------------------------------------


class WitnessWatch:
    """What witnessing did during the HTTP cases: the checkpoints the gateway with a
    witness policy signed and got witnessed (and, beside it, what the same gateway without
    one signed), the witnesses' CPU, and, after each of its cases, whether the witnessed
    checkpoint kept up. Inactive when no gateway runs with a witness policy."""

    def __init__(
        self,
        running: Sequence[witnessing.RunningWitness],
        databases: dict[str, Path],
        policy_path: Path,
    ) -> None:
        self.active = WITNESSED in databases and "sqlite" in databases
        self.running = running
        self.databases = databases
        self.policy_path = policy_path
        self.pids = [w.pid for w in running]
        self.samples: list[tuple[float, witnessing.Checkpoints]] = []
        self.plain_ages: list[float] = []  # the gateway without witnesses, after its cases
        if self.active:
            self.cpu_before = witnessing.cpu_seconds(self.pids)
            self.before = self.checkpoints()

    def checkpoints(self) -> dict[str, witnessing.Checkpoints]:
        return {
            "sqlite": witnessing.checkpoints(self.databases["sqlite"], None),
            WITNESSED: witnessing.checkpoints(self.databases[WITNESSED], self.policy_path),
        }

    def after_case(self, key: str, port: int) -> None:
        """Right after a case of `key`: how old its latest (and witnessed) checkpoint is."""
        if not self.active or key not in ("sqlite", WITNESSED):
            return
        if key == "sqlite":
            plain = witnessing.checkpoints(self.databases["sqlite"], None)
            self.plain_ages.append(plain.latest_age_s or 0.0)
            return
        metrics = witnessing.scrape_metrics(port)
        age = metrics.get("gateway_checkpoint_witnessed_age_seconds", -1.0)
        self.samples.append((age, self.checkpoints()[WITNESSED]))

    def report(
        self,
        port: int,
        gateway_log: Path,
        scenarios: Sequence[Scenario],
        all_rounds: dict[tuple[str, int], dict[str, list[Figures]]],
    ) -> str:
        if not self.active:
            return ""
        metrics = witnessing.scrape_metrics(port)  # first: the store is then as new or newer
        after = self.checkpoints()
        cpu_after = witnessing.cpu_seconds(self.pids)
        mine, plain = after[WITNESSED], after["sqlite"]
        signed = mine.signed - self.before[WITNESSED].signed
        witnessed = mine.witnessed - self.before[WITNESSED].witnessed
        lines = [
            f"\nwitnessing: `gateway {WITNESSED}` is `gateway sqlite` with a witness policy "
            f"naming {len(self.running)} witnesses on loopback (`gateway witness serve`), "
            "all of which must cosign",
            f"  checkpoints during the HTTP cases: {signed} signed, {witnessed} of them "
            f"witnessed (the runner submits the latest; one signed during a submission is "
            f"not submitted); the gateway without witnesses signed "
            f"{plain.signed - self.before['sqlite'].signed}",
        ]
        if self.cpu_before is not None and cpu_after is not None:
            cpu_ms = (cpu_after - self.cpu_before) * 1e3
            lines.append(
                f"  the witnesses' CPU during the HTTP cases: {cpu_ms:.0f} ms in all, "
                f"{cpu_ms / max(witnessed, 1):.1f} ms per witnessed checkpoint (all witnesses)"
            )
        if self.samples:
            ages = [age for age, _ in self.samples]
            latest = [c.latest_age_s or 0.0 for _, c in self.samples]
            caught_up = sum(c.latest_witnessed for _, c in self.samples)
            lines.append(
                f"  right after each of its {len(self.samples)} cases: the last witnessed "
                f"checkpoint's age (gateway_checkpoint_witnessed_age_seconds) median "
                f"{median(ages):.2f} s, max {max(ages):.2f} s; the latest checkpoint's age "
                f"median {median(latest):.2f} s, max {max(latest):.2f} s, and it was the "
                f"witnessed one after {caught_up} of {len(self.samples)}"
            )
        # Why a checkpoint was late being witnessed, in the gateway's own words (the runner
        # logs each witness that did not cosign, and each checkpoint short of the quorum).
        log_text = gateway_log.read_text(errors="replace")
        missed = log_text.count("did not cosign the checkpoint")
        short = log_text.count("is not witnessed yet")
        lines.append(
            f"  the witnessed gateway's log: {missed} warning(s) of a witness that did not "
            f"cosign, {short} of a checkpoint short of the quorum"
        )
        first = next((ln for ln in log_text.splitlines() if "did not cosign" in ln), None)
        if first is not None:
            lines.append(f"    the first: {first[:300]}")
        if self.plain_ages:
            lines.append(
                f"  the gateway without witnesses, right after each of its cases: the latest "
                f"checkpoint's age median {median(self.plain_ages):.2f} s, max "
                f"{max(self.plain_ages):.2f} s"
            )
        cosigned = {w.name: metrics.get(cosigned_size_metric(w.name), -1.0) for w in self.running}
        sizes = ", ".join(f"{name} {size:,.0f}" for name, size in cosigned.items())
        lines.append(
            f"  at the end: gateway_checkpoint_witnessed_age_seconds "
            f"{metrics.get('gateway_checkpoint_witnessed_age_seconds', -1.0):.2f}; "
            f"gateway_witness_cosigned_size {sizes}; the latest checkpoint: size "
            f"{mine.latest_size:,}, {'witnessed' if mine.latest_witnessed else 'NOT witnessed'}"
        )
        lines.append(
            "  without / with witnessing: x bare proxy (medians of same-round ratios; latency: "
            "the gateway's over the proxy's), and the gateway's CPU per request in ms (median; "
            "the witness runner's work included, it runs in the same process)"
        )
        columns = (
            ("req/s at 64", 64, "rps"),
            ("p50 at 1", 1, "p50_ms"),
            ("p99 at 1", 1, "p99_ms"),
            ("cpu ms at 64", 64, "server_cpu_ms"),
            ("cpu ms at 1", 1, "server_cpu_ms"),
        )
        lines.append(f"  {'':<28}" + "".join(f"{title:>16}" for title, _, _ in columns))
        for scenario in scenarios:
            cells = [
                _without_with(all_rounds.get((scenario.partner, conns)), attr)
                for _, conns, attr in columns
            ]
            label = scenario.label.split(" (")[0]
            lines.append(f"  {label:<28}" + "".join(f"{cell:>16}" for cell in cells))
        return "\n".join(lines)


def cosigned_size_metric(witness: str) -> str:
    return 'gateway_witness_cosigned_size{witness="' + witness + '"}'


def _without_with(rounds: dict[str, list[Figures]] | None, attr: str) -> str:
    """`a / b`, the gateway without then with a witness policy: for the CPU per request its
    median, for the other figures the median same-round ratio to the proxy."""
    if rounds is None or not rounds.get(WITNESSED):
        return "-"
    values = []
    for key in ("sqlite", WITNESSED):
        if attr == "server_cpu_ms":
            cpu = median_or_none(f.server_cpu_ms for f in rounds[key])
            if cpu is None:
                return "-"
            values.append(cpu)
        else:
            pairs = zip(rounds[key], rounds["proxy"], strict=True)
            values.append(median(getattr(m, attr) / getattr(p, attr) for m, p in pairs))
    return f"{values[0]:.2f} / {values[1]:.2f}"


# -- report -----------------------------------------------------------------------------

HEADER = (
    f"{'':<34}{'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} "
    f"{'load':>5} {'cpu ms':>7} {'partner':>7}   {'x proxy':>7} {'+p50 ms':>8} {'+p99 ms':>8}"
)
LEGEND = (
    "cpu ms: CPU of the gateway (or proxy) process per request; partner: CPU of the "
    "partners' process per request; load: 1-minute load average when the case started"
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def row(
    label: str, connections: int, figures: Figures | None, proxy: Figures | None, note: str = ""
) -> str:
    if figures is None:
        return f"  {label:<32}{connections:>5}  skipped{note}"
    text = (
        f"  {label:<32}{connections:>5} {figures.rps:>8,.0f} {figures.p50_ms:>8.2f} "
        f"{figures.p99_ms:>8.2f} {figures.failed:>7} {figures.load:>5.2f} "
        f"{_ms(figures.server_cpu_ms):>7} {_ms(figures.partner_cpu_ms):>7}"
    )
    if proxy is not None and proxy is not figures and proxy.rps:
        text += (
            f"   {figures.rps / proxy.rps:>6.2f}x {figures.p50_ms - proxy.p50_ms:>+8.2f} "
            f"{figures.p99_ms - proxy.p99_ms:>+8.2f}"
        )
    return text + note


def median_row(label: str, connections: int, rounds: dict[str, list[Figures]], key: str) -> str:
    """The median of the rounds; ratios and differences are taken round by round, each
    against the proxy of the same round, so a change in the machine's speed between
    rounds cancels out."""
    mine, proxy = rounds[key], rounds[baseline_of(key, rounds)]
    text = (
        f"  {'median ' + label:<32}{connections:>5} {median(f.rps for f in mine):>8,.0f} "
        f"{median(f.p50_ms for f in mine):>8.2f} {median(f.p99_ms for f in mine):>8.2f} "
        f"{sum(f.failed for f in mine):>7} {'':>5} "
        f"{_ms(median_or_none(f.server_cpu_ms for f in mine)):>7} "
        f"{_ms(median_or_none(f.partner_cpu_ms for f in mine)):>7}"
    )
    if not is_proxy(key):
        pairs = list(zip(mine, proxy, strict=True))
        text += (
            f"   {median(m.rps / p.rps for m, p in pairs if p.rps):>6.2f}x "
            f"{median(m.p50_ms - p.p50_ms for m, p in pairs):>+8.2f} "
            f"{median(m.p99_ms - p.p99_ms for m, p in pairs):>+8.2f}"
        )
    if key == "postgresql" and "sqlite" in rounds:
        ratios = [pg.rps / lite.rps for pg, lite in zip(mine, rounds["sqlite"], strict=True)]
        text += f"   pg/sqlite {median(ratios):.2f}x"
    return text


def is_proxy(key: str) -> bool:
    return key == "proxy" or key.startswith("proxy x")


def baseline_of(key: str, rounds: Mapping[str, object]) -> str:
    """The proxy a gateway is compared with: the proxy of as many workers ("sqlite x2"
    against "proxy x2", both using the same cores), else the one-process proxy."""
    workers = key.rpartition(" x")[2]
    twin = f"proxy x{workers}"
    return twin if workers.isdigit() and twin in rounds else "proxy"


def median_or_none(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def run_script(args: Sequence[str], timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return done.stdout


# -- main -------------------------------------------------------------------------------


def add_project_argument(parser: argparse.ArgumentParser) -> None:
    """--project: the deployment a harness runs (this checkout unless told)."""
    parser.add_argument(
        "--project",
        type=Path,
        default=ROOT,
        help="directory with config.toml, partners/ and keys/ (default: this checkout)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway vs bare proxy, decide(), the log")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds each")
    parser.add_argument(
        "--seconds", type=float, help="measured seconds per case and round (default 5)"
    )
    parser.add_argument(
        "--log-entries", type=int, help="entries for verify/proof/search (default 1,000,000)"
    )
    parser.add_argument("--skip-log", action="store_true", help="no disclosure-log figures")
    parser.add_argument(
        "--skip-witnessing",
        action="store_true",
        help="no gateway with a witness policy, no per-checkpoint witnessing figures",
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="load generator (auto: wrk when installed)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=list(CONNECTIONS),
        help="connection counts to run (default: 1 64)",
    )
    parser.add_argument(
        "--stores",
        nargs="+",
        choices=("sqlite", "postgresql"),
        default=["sqlite", "postgresql"],
        help="gateway stores to run (default: both)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of every case, interleaved; medians are printed (default 3, quick 1)",
    )
    parser.add_argument(
        "--partners",
        nargs="+",
        choices=[s.partner for s in SCENARIOS],
        default=[s.partner for s in SCENARIOS],
        help="scenarios to run, by partner (default: all)",
    )
    parser.add_argument(
        "--partner-modes",
        nargs="+",
        choices=list(PARTNER_MODES),
        default=list(PARTNER_MODES),
        help="how the partners answer: decrypt (as a real partner) and/or echo (at once, "
        "without decrypting); default both",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="also run the gateway on SQLite with N worker processes sharing the port "
        "(`gateway serve --workers N`); cpu ms then sums the workers",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record each gateway case with py-spy into DIR and print where the time goes",
    )
    add_project_argument(parser)
    args = parser.parse_args()
    scenarios = [s for s in SCENARIOS if s.partner in args.partners]
    args.rounds = args.rounds or (1 if args.quick else 3)
    project = args.project.resolve()
    seconds = args.seconds = args.seconds or (1.0 if args.quick else 5.0)
    # quick: the trial request of each target warms up
    warmup = args.warmup = 0.0 if args.quick else 2.0
    subject_count = 50 if args.quick else 1000
    log_entries = args.log_entries or (20_000 if args.quick else 1_000_000)

    config = load_config(project / "config.toml")
    partners = load_partners(config.partners_dir, config.root)
    started = time.monotonic()
    wrk = shutil.which("wrk") if args.loadgen != "aiohttp" else None
    if wrk is None and args.loadgen == "wrk":
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    generator = "wrk" if wrk else "benchmarks/loadgen.py (aiohttp, in Python: lower figures)"
    print(f"machine: {uptime()}; load generator: {generator}", flush=True)
    print(
        f"each case: {warmup:g} s warm-up, {seconds:g} s measured; one gateway worker; "
        f"{subject_count} subjects with consents",
        flush=True,
    )

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="gw-bench-") as scratch:
        tmp = Path(scratch)
        postgres_url = stack.enter_context(postgres_schema())
        services: list[Service] = []
        stack.callback(stop_all, services)

        partner_ids = [s.partner for s in SCENARIOS]
        partner_proc = Service(
            "partner",
            [sys.executable, "-m", "benchmarks.partner", str(project), *partner_ids],
            tmp / "partner.log",
        )
        services.append(partner_proc)
        served = partner_proc.ready_line()

        proxy_command = [sys.executable, "-m", "benchmarks.proxy", str(project), json.dumps(served)]
        proxy_proc = Service(
            "proxy",
            proxy_command,
            tmp / "proxy.log",
        )
        services.append(proxy_proc)
        proxy_port = int(proxy_proc.ready_line()["port"])
        proxies = {"proxy": proxy_port}
        pids: dict[str, int] = {"proxy": proxy_proc.process.pid}
        if args.workers > 1:
            # The bare proxy on as many processes as the gateway of --workers N: the
            # "x proxy" of "gateway sqlite xN" is against it (the same cores on both sides).
            key = f"proxy x{args.workers}"
            several = Service(
                key,
                [*proxy_command, "--workers", str(args.workers)],
                tmp / f"proxy-x{args.workers}.log",
            )
            services.append(several)
            proxies[key] = int(several.ready_line()["port"])
            pids[key] = several.process.pid

        stores: dict[str, str | None] = {"sqlite": "sqlite:///var/bench.db"}
        stores["postgresql"] = postgres_url
        stores = {name: url for name, url in stores.items() if name in args.stores}
        policies: dict[str, str] = {}
        running: list[witnessing.RunningWitness] = []
        if "sqlite" in stores and not args.skip_witnessing:
            # The same SQLite gateway with a witness policy, right after the one without:
            # two witnesses on loopback, both must cosign (issue #18).
            log_vkey = LogSigner.load(config.keys_dir, config.log.origin).verifier_key
            running = stack.enter_context(witnessing.witnesses(tmp / "witnesses", log_vkey))
            policies[WITNESSED] = witnessing.policy_text(log_vkey, running)
            ordered: dict[str, str | None] = {}
            for name, url in stores.items():
                ordered[name] = url
                if name == "sqlite":
                    ordered[WITNESSED] = "sqlite:///var/bench-witnessed.db"
            stores = ordered
        workers = {name: 1 for name in stores}
        if args.workers > 1 and "sqlite" in stores:
            stores[f"sqlite x{args.workers}"] = f"sqlite:///var/bench-{args.workers}.db"
            workers[f"sqlite x{args.workers}"] = args.workers
        databases: dict[str, Path] = {}
        gateways: dict[str, int] = {}
        tokens = {
            s.caller: issue_dev_token(config.keys_dir, config.auth, s.caller, ttl_s=6 * 3600)
            for s in SCENARIOS
        }
        writer_token = issue_dev_token(config.keys_dir, config.auth, CONSENT_WRITER)
        for name, url in stores.items():
            if url is None:
                continue
            config_path = workspace(
                tmp / name.replace(" ", "-"), url, served, config, policies.get(name)
            )
            if url.startswith("sqlite:///"):
                databases[name] = config_path.parent / url.removeprefix("sqlite:///")
            port = free_port()
            proc = Service(
                f"gateway ({name})",
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "--config",
                    str(config_path),
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers[name]),
                ],
                tmp / f"gateway-{name}.log",
            )
            services.append(proc)
            asyncio.run(wait_healthy(port, proc))
            asyncio.run(grant_consents(port, writer_token, config, subject_count))
            gateways[name] = port
            pids[name] = proc.process.pid

        request_files: dict[tuple[str, str], Path] = {}
        for scenario in scenarios:
            for key, port in proxies.items():
                path = tmp / f"{key.replace(' ', '-')}-{scenario.partner}.requests"
                path.write_bytes(
                    proxy_requests(port, config, partners[scenario.partner], scenario, 64)
                )
                request_files[(key, scenario.partner)] = path
                asyncio.run(check_once(port, path.read_bytes(), f"{key} {scenario.partner}"))
            for name, port in gateways.items():
                path = tmp / f"{name}-{scenario.partner}.requests"
                path.write_bytes(
                    gateway_requests(port, tokens[scenario.caller], scenario, subject_count)
                )
                request_files[(name, scenario.partner)] = path
                asyncio.run(check_once(port, path.read_bytes(), f"gateway {name}"))

        targets = [("bare proxy", "proxy", proxy_port)] + [
            (f"gateway {name}", name, port) for name, port in gateways.items()
        ]
        if args.workers > 1:
            # Right before the gateway of as many workers, to which it is the baseline.
            key = f"proxy x{args.workers}"
            targets.insert(len(targets) - 1, (f"bare {key}", key, proxies[key]))
        several = f"sqlite x{args.workers} and the proxy x{args.workers}"
        each = "1 worker each" if args.workers <= 1 else f"1 worker each but {several}"
        print(f"\nHTTP, {each} ({time.monotonic() - started:.0f} s to start); {LEGEND}")
        print(HEADER)
        every: list[Figures] = []
        all_rounds: dict[tuple[str, int], dict[str, list[Figures]]] = {}
        cpu_rounds: dict[tuple[str, str, int], dict[str, list[Figures]]] = {}
        watch = WitnessWatch(running, databases, tmp / "sqlite-witnessed" / "witnesses.txt")
        for scenario in scenarios:
            for mode in args.partner_modes:
                partner_proc.process.send_signal(ECHO_ON if mode == "echo" else ECHO_OFF)
                time.sleep(0.2)  # the partner's loop handles the signal before the next case
                print(f"{scenario.label}, {PARTNER_MODES[mode]}", flush=True)
                for connections in args.connections:
                    rounds = run_case(
                        scenario,
                        mode,
                        connections,
                        args,
                        targets,
                        request_files,
                        pids,
                        wrk,
                        partner_proc.process.pid,
                        watch,
                    )
                    cpu_rounds[(scenario.partner, mode, connections)] = rounds
                    if mode == args.partner_modes[0]:
                        all_rounds[(scenario.partner, connections)] = rounds
                    every.extend(f for figures in rounds.values() for f in figures)
        failed = sum(f.failed for f in every)
        print(cpu_summary(scenarios, args.partner_modes, cpu_rounds), flush=True)
        print(f"machine after the HTTP cases: {uptime()}", flush=True)
        if WITNESSED in gateways:
            log_path = next(s.log_path for s in services if s.name == f"gateway ({WITNESSED})")
            print(watch.report(gateways[WITNESSED], log_path, scenarios, all_rounds), flush=True)
        stop_all(services)

        # What one lone durable commit costs here: the added latency at one connection
        # cannot be below it, whatever the gateway does.
        print("\ndurable commit floor (a lone one-row commit, no gateway)", flush=True)
        floor = ["benchmarks/commit_floor.py", str(0.5 if args.quick else 2.0), str(tmp)]
        if "postgresql" in gateways:
            floor.append(POSTGRES_URL)
        for line in run_script(floor, 120).splitlines():
            print(f"  {line}", flush=True)

    print("\ndecide()", flush=True)
    print(
        "  " + run_script(["benchmarks/decide.py", str(0.5 if args.quick else 2.0)], 120).strip(),
        flush=True,
    )
    print("\nthe hot path's pieces alone (benchmarks/cpu_table.py)", flush=True)
    table = ["benchmarks/cpu_table.py", "--project", str(project)]
    for line in run_script([*table, *(["--quick"] if args.quick else [])], 300).splitlines():
        print("  " + line, flush=True)
    if not args.skip_witnessing:
        print("\nwitnessing, per checkpoint (benchmarks/witnessing.py)", flush=True)
        witness_args = ["benchmarks/witnessing.py", "--entries", str(log_entries)]
        if args.quick:
            witness_args.append("--quick")
        for line in run_script(witness_args, 1800).splitlines():
            print("  " + line, flush=True)
    if not args.skip_log:
        print("\ndisclosure log", flush=True)
        log_args = ["benchmarks/log.py", "--entries", str(log_entries)]
        if args.quick:
            log_args += ["--append-seconds", "1"]
        for line in run_script(log_args, 3600).splitlines():
            print("  " + line, flush=True)
    print(f"\nmachine at the end: {uptime()}; total {time.monotonic() - started:.0f} s")
    if failed:
        # Figures of refused or failed requests would measure the wrong thing.
        raise SystemExit(f"{failed} request(s) failed during the HTTP cases (column 'failed')")


if __name__ == "__main__":
    main()
