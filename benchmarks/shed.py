"""Load shedding against clients that ignore Retry-After (issue #20, direction 4).

One gateway (`gateway serve`, one worker, SQLite) and the loopback partners
(``benchmarks/partner.py``, switched to *echo*: they answer at once, so only the gateway's own
cost is measured). Two limits are set well below what the gateway can do:

- the caller ``payments-service`` has ``max_in_flight = 1`` (`[[callers]]` in config.toml):
  its excess is shed 429 ``caller_rate_limited`` before its body is read;
- the partner ``lao-credit-bureau`` has ``max_in_flight = 1`` (its partner file): the
  excess of ``sales-service`` to it is shed 429 ``partner_rate_limited``.

The *admitted* load is `--admitted` connections of ``sales-service`` disclosing to
``lanexang-insurance`` (no limit), each sending its next disclosure when the last is
answered. Each case runs it alone (``alone``), then with `--excess` more connections that
flood one limit (``caller flood``, ``partner flood``) and retry at once, with the same
Idempotency-Key, whatever Retry-After says; ``caller, reconnecting`` retries each time on a
new connection, out of reach of the hold of an early retry on the connection that was shed
(gateway.web.held_retries), so its figures are what each refusal costs, a connection's
set-up and tear-down included. Each client group is a process of its own on raw
sockets with pre-built requests (a flood client costs as little CPU as it can), counting
only what is answered within the same window of `--seconds`, over which the gateway's
process CPU is read from /proc.

Printed per case: admitted disclosures/s with their p50/p99, rejections/s, the gateway's
CPU per second of the window, and its CPU per rejection (the window's CPU less what the
admitted disclosures cost in the ``alone`` case of the same round, divided by the
rejections; shown only when rejections outnumber disclosures). Cases alternate for
`--rounds` rounds; the medians follow. Asserts nothing about speed.

Usage: ``python benchmarks/shed.py [--seconds S] [--rounds N] [--admitted A] [--excess E]
[--profile DIR] [--keep DIR] [--project DIR]`` (``--profile``: py-spy samples of the
gateway during each case, as collapsed stacks)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

from benchmarks.partner import ECHO_ON, use_uvloop  # noqa: E402
from benchmarks.run import (  # noqa: E402
    CONSENT_WRITER,
    SCENARIOS,
    Service,
    cpu_seconds,
    free_port,
    grant_consents,
    uptime,
    wait_healthy,
    workspace,
)
from gateway.config.model import load_config  # noqa: E402
from gateway.crypto.dev_tokens import issue_dev_token  # noqa: E402

ADMITTED = SCENARIOS[1]  # sales-service → lanexang-insurance: ECDH-ES+A256KW + Ed25519
FLOODED_CALLER = SCENARIOS[0]  # payments-service → bcel-payments; the caller is limited
FLOODED_PARTNER = SCENARIOS[2]  # sales-service → lao-credit-bureau; the partner is limited
# Each case by the role of its flooding clients (none: the admitted load alone).
CASES: dict[str, str | None] = {
    "alone": None,
    "caller flood": "caller",
    "partner flood": "partner",
    "caller, reconnecting": "reconnecting",
}
SUBJECTS = 200
WARM_UP_S = 1.0  # the clients connect and send before the window opens


# -- the clients (a process each) -------------------------------------------------------


def request_bytes(port: int, token: str, body: dict[str, Any], key: str | None) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        "POST /v1/disclosures HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if key is not None:
        lines.append(f"Idempotency-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def body_of(scenario: Any, n: int) -> dict[str, Any]:
    return {
        "partner": scenario.partner,
        "operation": scenario.operation,
        "purpose": "service_provision",
        "legal_basis": scenario.legal_basis,
        "subject": f"bench-subject-{n % SUBJECTS:05d}",
        "data": scenario.data,
    }


async def read_status(reader: asyncio.StreamReader) -> int:
    """One response off a keep-alive connection: its status (the body read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


@dataclass
class Tally:
    admitted: int = 0
    shed: int = 0
    other: int = 0
    latencies: list[float] | None = None


async def client_connection(
    port: int, role: str, token: str, conn: int, window: tuple[float, float], tally: Tally
) -> None:
    """Admitted: a new disclosure after each answer. Flood: the same request (the same
    Idempotency-Key) again at once after a 429 or 503, a new one after anything else;
    `reconnecting`, each on a new connection (the gateway holds an early retry on the
    connection that was shed, gateway.web.held_retries)."""
    scenario = {
        "admitted": ADMITTED,
        "caller": FLOODED_CALLER,
        "partner": FLOODED_PARTNER,
        "reconnecting": FLOODED_CALLER,
    }[role]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start, stop = window
    n = conn * 1009
    prefix = uuid.uuid4().hex[:12]
    raw = b""
    retry = False
    try:
        while (now := time.time()) < stop:
            if not retry:
                n += 1
                key = None if role == "admitted" else f"shed-{prefix}-{n}"
                raw = request_bytes(port, token, body_of(scenario, n), key)
            began = time.perf_counter()
            writer.write(raw)
            status = await read_status(reader)
            if role == "reconnecting":
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            counted = now >= start and time.time() < stop
            retry = status in (429, 503)
            if not counted:
                continue
            if retry:
                tally.shed += 1
            elif status < 300:
                tally.admitted += 1
                if tally.latencies is not None:
                    tally.latencies.append(time.perf_counter() - began)
            else:
                tally.other += 1
    finally:
        writer.close()


async def clients(port: int, role: str, token: str, count: int) -> None:
    """`count` connections of `role`: ready once imported, they wait for the window's start
    and stop times (a line on stdin), then count what is answered within it."""
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    start, stop = (float(t) for t in line.split())
    tally = Tally(latencies=[] if role == "admitted" else None)
    await asyncio.gather(
        *(client_connection(port, role, token, c, (start, stop), tally) for c in range(count))
    )
    latencies = sorted(tally.latencies or [])

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    result = {
        "admitted": tally.admitted,
        "shed": tally.shed,
        "other": tally.other,
        "p50_ms": percentile(0.50) * 1e3,
        "p99_ms": percentile(0.99) * 1e3,
    }
    print(json.dumps(result), flush=True)


def client_main(argv: list[str]) -> None:
    port, role, token, count = argv
    use_uvloop()
    asyncio.run(clients(int(port), role, token, int(count)))


# -- the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    seconds: float
    admitted: int
    admitted_p50_ms: float
    admitted_p99_ms: float
    shed: int
    flood_admitted: int
    errors: int
    cpu_s: float
    load: float

    @property
    def admitted_rps(self) -> float:
        return self.admitted / self.seconds

    @property
    def shed_rps(self) -> float:
        return self.shed / self.seconds

    def cpu_per_rejection_us(self, alone: Case) -> float | None:
        """The window's CPU less what its admitted disclosures cost when alone (the
        flood's own admitted ones at the same price), per rejection; None when there are
        fewer rejections than disclosures, whose noise the difference would be."""
        if self.shed < max(1, self.admitted + self.flood_admitted) or not alone.admitted:
            return None
        per_disclosure = alone.cpu_s / alone.admitted
        rest = self.cpu_s - (self.admitted + self.flood_admitted) * per_disclosure
        return rest / self.shed * 1e6


def run_case(
    name: str, port: int, pid: int, tokens: dict[str, str], args: argparse.Namespace
) -> Case:
    me = [sys.executable, str(Path(__file__).resolve()), "clients", str(port)]
    groups = {"admitted": args.admitted}
    flood = CASES[name]
    if flood is not None:
        groups[flood] = args.excess
    procs = {
        role: subprocess.Popen(
            [*me, role, tokens[role], str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role, count in groups.items()
    }
    for role, proc in procs.items():
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {role} clients did not start")
    start = time.time() + WARM_UP_S
    stop = start + args.seconds
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.write(f"{start} {stop}\n")
        proc.stdin.flush()
    time.sleep(max(0.0, start - time.time()))
    load = os.getloadavg()[0]
    before = cpu_seconds(pid) or 0.0
    spy = sampled(args.profile, name, pid, args.seconds)
    time.sleep(max(0.0, stop - time.time()))
    after = cpu_seconds(pid) or 0.0
    if spy is not None:
        spy.wait(timeout=args.seconds + 30)
    results: dict[str, dict[str, Any]] = {}
    for role, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"the {role} clients failed (exit {proc.returncode})")
        results[role] = json.loads(out.strip().splitlines()[-1])
    admitted = results["admitted"]
    flooded = results.get(flood) if flood is not None else None
    return Case(
        name=name,
        seconds=args.seconds,
        admitted=admitted["admitted"],
        admitted_p50_ms=admitted["p50_ms"],
        admitted_p99_ms=admitted["p99_ms"],
        shed=flooded["shed"] if flooded else 0,
        flood_admitted=flooded["admitted"] if flooded else 0,
        errors=admitted["other"] + admitted["shed"] + (flooded["other"] if flooded else 0),
        cpu_s=after - before,
        load=load,
    )


def sampled(
    into: Path | None, name: str, pid: int, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy on the gateway for the window, collapsed stacks into `into`, when asked."""
    if into is None:
        return None
    into.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = into / f"{name.replace(' ', '-')}-{int(time.time())}.txt"
    args = ["record", "--pid", str(pid), "--duration", f"{max(1, round(seconds))}"]
    args += ["--format", "raw", "--rate", "250", "--nonblocking", "--output", str(out)]
    return subprocess.Popen([spy, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


HEADER = (
    f"{'case':<30} {'admitted/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'shed/s':>8} "
    f"{'flood ok/s':>10} {'cpu ms/s':>8} {'µs/shed':>8} {'load':>5}"
)


def row(case: Case, per_shed_us: float | None, label: str | None = None) -> str:
    return (
        f"{label or case.name:<30} {case.admitted_rps:>10.0f} {case.admitted_p50_ms:>8.1f} "
        f"{case.admitted_p99_ms:>8.1f} {case.shed_rps:>8.0f} "
        f"{case.flood_admitted / case.seconds:>10.0f} {case.cpu_s / case.seconds * 1e3:>8.0f} "
        f"{'-' if per_shed_us is None else f'{per_shed_us:.0f}':>8} {case.load:>5.1f}"
        + (f"  ({case.errors} unexpected answers)" if case.errors else "")
    )


def median_case(cases: list[Case], alone: list[Case]) -> tuple[Case, float | None]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    per_shed = [c.cpu_per_rejection_us(a) for c, a in zip(cases, alone, strict=True)]
    known = [p for p in per_shed if p is not None]
    first = cases[0]
    return (
        Case(
            name=first.name,
            seconds=first.seconds,
            admitted=round(med([c.admitted for c in cases])),
            admitted_p50_ms=med([c.admitted_p50_ms for c in cases]),
            admitted_p99_ms=med([c.admitted_p99_ms for c in cases]),
            shed=round(med([c.shed for c in cases])),
            flood_admitted=round(med([c.flood_admitted for c in cases])),
            errors=sum(c.errors for c in cases),
            cpu_s=med([c.cpu_s for c in cases]),
            load=med([c.load for c in cases]),
        ),
        med(known) if known else None,
    )


def limited_workspace(where: Path, served: dict[str, Any], config: Any) -> Path:
    """The bench's workspace with the two limits of the module doc."""
    path = workspace(where, "sqlite:///var/shed.db", served, config)
    text = path.read_text()
    marker = f'id = "{FLOODED_CALLER.caller}"\n'
    if marker not in text:
        raise SystemExit(f"config.toml has no caller {FLOODED_CALLER.caller}")
    path.write_text(text.replace(marker, marker + "max_in_flight = 1\n", 1))
    partner_file = where / "partners" / f"{FLOODED_PARTNER.partner}.toml"
    partner_file.write_text("max_in_flight = 1\n" + partner_file.read_text())
    return path


def main() -> None:
    if sys.argv[1:2] == ["clients"]:
        client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description="load shedding against retrying clients")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admitted", type=int, default=8, help="admitted connections")
    parser.add_argument("--excess", type=int, default=64, help="flooding connections")
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--profile", type=Path, help="py-spy the gateway into this directory")
    parser.add_argument("--keep", type=Path, help="work here (a new directory) and keep the logs")
    args = parser.parse_args()
    config = load_config(args.project / "config.toml")
    print(f"machine: {uptime()}", flush=True)
    services: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="gw-shed-") as scratch:
        tmp = Path(scratch) if args.keep is None else args.keep
        tmp.mkdir(exist_ok=True)
        try:
            partners = [s.partner for s in SCENARIOS]
            partner_proc = Service(
                "partner",
                [sys.executable, "-m", "benchmarks.partner", str(args.project), *partners],
                tmp / "partner.log",
            )
            services.append(partner_proc)
            served = partner_proc.ready_line()
            partner_proc.process.send_signal(ECHO_ON)
            config_path = limited_workspace(tmp / "gateway", served, config)
            port = free_port()
            gateway = Service(
                "gateway",
                [
                    *(sys.executable, "-m", "gateway", "--config", str(config_path)),
                    *("serve", "--port", str(port), "--workers", "1"),
                ],
                tmp / "gateway.log",
            )
            services.append(gateway)
            asyncio.run(wait_healthy(port, gateway))
            writer = issue_dev_token(config.keys_dir, config.auth, CONSENT_WRITER)
            asyncio.run(grant_consents(port, writer, config, SUBJECTS))
            tokens = {
                role: issue_dev_token(config.keys_dir, config.auth, s.caller, ttl_s=3600)
                for role, s in (
                    ("admitted", ADMITTED),
                    ("caller", FLOODED_CALLER),
                    ("partner", FLOODED_PARTNER),
                    ("reconnecting", FLOODED_CALLER),
                )
            }
            print(
                f"{args.admitted} admitted connections ({ADMITTED.caller} → "
                f"{ADMITTED.partner}, echo partner); a flood is {args.excess} more connections "
                f"retrying at once: caller flood = {FLOODED_CALLER.caller} (max_in_flight 1), "
                f"partner flood = {FLOODED_PARTNER.partner} (max_in_flight 1), reconnecting: "
                "the caller flood on a new connection per retry; "
                f"{args.seconds:g} s windows, {args.rounds} round(s)",
                flush=True,
            )
            print(HEADER, flush=True)
            rounds: dict[str, list[Case]] = {name: [] for name in CASES}
            for _ in range(args.rounds):
                for name in CASES:
                    case = run_case(name, port, gateway.process.pid, tokens, args)
                    rounds[name].append(case)
                    print(row(case, case.cpu_per_rejection_us(rounds["alone"][-1])), flush=True)
            if args.rounds > 1:
                print("medians of the rounds:")
                for name in CASES:
                    middle, per_shed = median_case(rounds[name], rounds["alone"])
                    print(row(middle, per_shed, f"{name} (median)"), flush=True)
        finally:
            for service in reversed(services):
                service.stop()
    print(f"machine at the end: {uptime()}", flush=True)


if __name__ == "__main__":
    main()
