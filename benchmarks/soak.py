"""`make soak`: the gateway held at half its measured maximum for a long while.

Starts the benchmark's loopback partners (``benchmarks/partner.py``) and the gateway
(`gateway serve`, one worker, SQLite) as ``benchmarks/run.py`` does, with consents in
place so every request is a full disclosure, each with an ``Idempotency-Key`` of its
own (as a careful caller sends them: the key's claim and answer are stored too). Unless
``--rate`` is given, it first measures the maximum (the same disclosures, 64 at a time
back to back, for ``--probe-seconds``), then sends them at half of it, open loop (each
at its scheduled time, whatever the answers before it), for ``--minutes``. Every
``--window`` seconds it samples the gateway process: resident memory (RSS), open file
descriptors, and the window's p50 / p99 latency and errors (an answer other than 2xx,
or no answer). At the end it stops the gateway and
runs ``gateway log verify`` over the log it wrote.

The report is a table on stdout and JSON (``--report``, default ``var/soak-report.json``).
Targets: RSS growth below 10 % after the warm-up (the first tenth of the run, at least
one window), p99 drift below 20 % (the median p99 of the last three windows against that
of the first three after the warm-up), no error, and a log that verifies. The exit code
is 1 when one is missed. Like ``make bench``, it measures and says what it measured;
nothing in the test suite asserts a speed.

Usage: ``python benchmarks/soak.py [--minutes M | --seconds S] [--rate R] [--window W]
[--report PATH] [--project DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

import aiohttp  # noqa: E402

from benchmarks import run as bench  # noqa: E402
from gateway.config.model import load_config  # noqa: E402
from gateway.crypto.dev_tokens import issue_dev_token  # noqa: E402

RSS_GROWTH_LIMIT = 0.10
P99_DRIFT_LIMIT = 0.20
CONNECTIONS = 64  # at most this many requests in flight (open loop below that)
SUBJECTS = 200
SCENARIO = bench.SCENARIOS[0]  # RSA-OAEP-256 + ES256, the bench's first case


@dataclass
class Window:
    """One sampling window: what the gateway process looked like at its end, and the
    answers to the requests sent during it."""

    at_s: float  # seconds since the load began, at the window's end
    rss_mib: float
    open_fds: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    load1: float


@dataclass
class Report:
    started_at: str
    machine: str
    rate_rps: float
    max_rps: float | None  # None when --rate was given
    seconds: float
    window_s: float
    warmup_windows: int
    windows: list[Window] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    rss_growth: float | None = None
    p99_drift: float | None = None
    fd_growth: int | None = None
    verify: str = ""
    verify_ok: bool = False
    missed: list[str] = field(default_factory=list)


# -- the gateway process ----------------------------------------------------------------


def pids_of(pid: int) -> list[int]:
    """`pid` and its live descendants (the workers, when there are several)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in pids_of(int(child)))]


def rss_mib(pid: int) -> float:
    total = 0
    for p in pids_of(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def open_fds(pid: int) -> int:
    count = 0
    for p in pids_of(pid):
        try:
            count += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return count


# -- the load -----------------------------------------------------------------------------


@dataclass
class Answers:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0

    def take(self) -> tuple[list[float], int]:
        latencies, errors = self.latencies, self.errors
        self.latencies, self.errors = [], 0
        return latencies, errors


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def bodies() -> list[bytes]:
    """A disclosure to the scenario's partner for each subject (each has a consent)."""
    return [
        json.dumps(
            {
                "partner": SCENARIO.partner,
                "operation": SCENARIO.operation,
                "purpose": "service_provision",
                "legal_basis": SCENARIO.legal_basis,
                "subject": subject,
                "data": SCENARIO.data,
            }
        ).encode()
        for subject in bench.subjects(SUBJECTS)
    ]


def session_for(port: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        f"http://127.0.0.1:{port}",
        connector=aiohttp.TCPConnector(limit=CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def disclose(
    session: aiohttp.ClientSession, token: str, body: bytes, answers: Answers
) -> None:
    """One disclosure with an Idempotency-Key of its own (what a careful caller sends: the
    gateway claims and completes a key for each, as in production)."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"soak-{uuid.uuid4().hex}",
    }
    started = time.perf_counter()
    try:
        async with session.post("/v1/disclosures", data=body, headers=headers) as response:
            await response.read()
            if not 200 <= response.status < 300:
                answers.errors += 1
                return
    except (aiohttp.ClientError, TimeoutError):
        answers.errors += 1
        return
    answers.latencies.append(time.perf_counter() - started)


async def probe(port: int, token: str, seconds: float) -> tuple[float, int]:
    """The maximum: the same disclosures, `CONNECTIONS` at a time back to back (closed
    loop), after a short warm-up; disclosures per second and the failures."""
    prepared = bodies()
    async with session_for(port) as session:
        for warmup in (True, False):
            answers = Answers()
            stop = time.perf_counter() + (min(2.0, seconds) if warmup else seconds)

            async def worker(offset: int, answers: Answers = answers, stop: float = stop) -> None:
                n = offset
                while time.perf_counter() < stop:
                    await disclose(session, token, prepared[n % len(prepared)], answers)
                    n += 1

            began = time.perf_counter()
            await asyncio.gather(*(worker(i * 7) for i in range(CONNECTIONS)))
            elapsed = time.perf_counter() - began
    return len(answers.latencies) / elapsed, answers.errors


async def hold(
    port: int,
    token: str,
    rate: float,
    seconds: float,
    window_s: float,
    gateway_pid: int,
    report: Report,
) -> None:
    """Send disclosures at `rate` per second for `seconds`, sampling every `window_s`."""
    prepared = bodies()
    answers = Answers()
    slots = asyncio.Semaphore(CONNECTIONS)

    async with session_for(port) as session:

        async def one(body: bytes) -> None:
            try:
                await disclose(session, token, body, answers)
            finally:
                slots.release()

        async def sampler(began: float) -> None:
            window_began = began
            while True:
                await asyncio.sleep(window_s)
                now = time.perf_counter()
                latencies, errors = answers.take()
                window = Window(
                    at_s=round(now - began, 1),
                    rss_mib=round(rss_mib(gateway_pid), 1),
                    open_fds=open_fds(gateway_pid),
                    requests=len(latencies),
                    rps=round(len(latencies) / (now - window_began), 1),
                    p50_ms=round(percentile(latencies, 0.50) * 1e3, 2),
                    p99_ms=round(percentile(latencies, 0.99) * 1e3, 2),
                    errors=errors,
                    load1=round(os.getloadavg()[0], 2),
                )
                window_began = now
                report.windows.append(window)
                report.requests += window.requests
                report.errors += window.errors
                print(table_row(window), flush=True)

        tasks: set[asyncio.Task[None]] = set()
        began = time.perf_counter()
        sampling = asyncio.create_task(sampler(began))
        n = 0
        while True:
            due = began + n / rate
            if due - began >= seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()  # more than CONNECTIONS late answers: the load waits
            task = asyncio.create_task(one(prepared[n % len(prepared)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        answers.sent = n
        if tasks:
            await asyncio.wait(set(tasks))
        # The last window, partial unless the run ended on a window boundary.
        sampling.cancel()
        elapsed = time.perf_counter() - began
        if not report.windows or elapsed - report.windows[-1].at_s > window_s / 4:
            latencies, errors = answers.take()
            if latencies or errors:
                last_end = report.windows[-1].at_s if report.windows else 0.0
                window = Window(
                    at_s=round(elapsed, 1),
                    rss_mib=round(rss_mib(gateway_pid), 1),
                    open_fds=open_fds(gateway_pid),
                    requests=len(latencies),
                    rps=round(len(latencies) / max(elapsed - last_end, 1e-9), 1),
                    p50_ms=round(percentile(latencies, 0.50) * 1e3, 2),
                    p99_ms=round(percentile(latencies, 0.99) * 1e3, 2),
                    errors=errors,
                    load1=round(os.getloadavg()[0], 2),
                )
                report.windows.append(window)
                report.requests += window.requests
                report.errors += window.errors
                print(table_row(window), flush=True)


HEADER = (
    f"{'at s':>7} {'RSS MiB':>8} {'fds':>5} {'requests':>9} {'req/s':>7} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'load1':>6}"
)


def table_row(w: Window) -> str:
    return (
        f"{w.at_s:7.0f} {w.rss_mib:8.1f} {w.open_fds:5d} {w.requests:9d} {w.rps:7.1f} "
        f"{w.p50_ms:8.2f} {w.p99_ms:8.2f} {w.errors:7d} {w.load1:6.2f}"
    )


# -- the verdict --------------------------------------------------------------------------


def judge(report: Report) -> None:
    """Fill in the growth and drift figures and what missed its target."""
    after = report.windows[report.warmup_windows - 1 :] if report.windows else []
    if len(after) >= 2:
        base, last = after[0], after[-1]
        report.rss_growth = round((last.rss_mib - base.rss_mib) / base.rss_mib, 4)
        report.fd_growth = last.open_fds - base.open_fds
        measured = [w for w in after[1:] if w.requests]
        if len(measured) >= 2:
            span = min(3, len(measured) // 2)
            first = median(w.p99_ms for w in measured[:span])
            final = median(w.p99_ms for w in measured[-span:])
            report.p99_drift = round((final - first) / first, 4) if first else None
    missed = report.missed
    if report.rss_growth is not None and report.rss_growth >= RSS_GROWTH_LIMIT:
        missed.append(f"RSS grew {report.rss_growth:.1%} (target < {RSS_GROWTH_LIMIT:.0%})")
    if report.p99_drift is not None and report.p99_drift >= P99_DRIFT_LIMIT:
        missed.append(f"p99 drifted {report.p99_drift:+.1%} (target < {P99_DRIFT_LIMIT:.0%})")
    if report.errors:
        missed.append(f"{report.errors} request(s) failed (target 0)")
    if not report.verify_ok:
        missed.append("`gateway log verify` did not pass")


def summary(report: Report) -> str:
    def pct(value: float | None) -> str:
        return "n/a (run too short)" if value is None else f"{value:+.1%}"

    lines = [
        f"rate: {report.rate_rps:.0f} disclosures/s"
        + (
            f" (half of the {report.max_rps:.0f}/s measured)"
            if report.max_rps is not None
            else " (--rate)"
        ),
        f"duration: {report.seconds:.0f} s, {report.requests} requests, "
        f"{report.errors} errors; warm-up {report.warmup_windows} window(s) of "
        f"{report.window_s:g} s",
        f"RSS growth after warm-up: {pct(report.rss_growth)} (target < {RSS_GROWTH_LIMIT:.0%})",
        f"p99 drift: {pct(report.p99_drift)} (target < {P99_DRIFT_LIMIT:.0%})",
        f"open fds after warm-up: {report.fd_growth if report.fd_growth is not None else 'n/a'}"
        " more",
        f"log verify: {report.verify}",
        "verdict: " + ("; ".join(report.missed) if report.missed else "every target met"),
    ]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def verify(config_path: Path) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config_path), "log", "verify"],
        cwd=config_path.parent,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    # "ok: N entries and C checkpoint(s) verified …", or the problems found.
    text = done.stdout.strip() or done.stderr.strip()
    return done.returncode == 0, text[-1000:]


def main() -> None:
    parser = argparse.ArgumentParser(description="the gateway at half its maximum, for long")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=30.0, help="duration (default 30)")
    length.add_argument("--seconds", type=float, help="duration in seconds (instead of minutes)")
    parser.add_argument("--rate", type=float, help="disclosures/s (default: half the maximum)")
    parser.add_argument(
        "--window", type=float, help="seconds per sample (default 30, less for short runs)"
    )
    parser.add_argument(
        "--probe-seconds", type=float, default=10.0, help="seconds measuring the maximum"
    )
    parser.add_argument(
        "--report", type=Path, default=ROOT / "var" / "soak-report.json", help="JSON report"
    )
    bench.add_project_argument(parser)
    args = parser.parse_args()
    # Stopped with SIGTERM (or SIGINT, ignored in a background job): the partners and the
    # gateway are stopped too, by the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    window_s = args.window or min(30.0, max(2.0, seconds / 10))
    windows = max(1, int(seconds // window_s))
    project = args.project.resolve()
    config = load_config(project / "config.toml")
    print(f"machine: {bench.uptime()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="gw-soak-") as scratch:
        tmp = Path(scratch)
        services: list[bench.Service] = []
        try:
            partner_proc = bench.Service(
                "partner",
                # Every partner of the bench: its consents name them all.
                [
                    *(sys.executable, "-m", "benchmarks.partner", str(project)),
                    *(s.partner for s in bench.SCENARIOS),
                ],
                tmp / "partner.log",
            )
            services.append(partner_proc)
            served = partner_proc.ready_line()
            config_path = bench.workspace(tmp / "gw", "sqlite:///soak.db", served, config)
            port = bench.free_port()
            gateway = bench.Service(
                "gateway",
                [
                    *(sys.executable, "-m", "gateway", "--config", str(config_path)),
                    *("serve", "--port", str(port), "--workers", "1"),
                ],
                tmp / "gateway.log",
                cwd=config_path.parent,
            )
            services.append(gateway)
            asyncio.run(bench.wait_healthy(port, gateway))
            writer = issue_dev_token(config.keys_dir, config.auth, bench.CONSENT_WRITER)
            asyncio.run(bench.grant_consents(port, writer, config, SUBJECTS))
            token = issue_dev_token(config.keys_dir, config.auth, SCENARIO.caller, ttl_s=6 * 3600)
            requests = tmp / "probe.requests"
            requests.write_bytes(bench.gateway_requests(port, token, SCENARIO, SUBJECTS))
            asyncio.run(bench.check_once(port, requests.read_bytes(), "gateway"))
            max_rps = None
            rate = args.rate
            if rate is None:
                max_rps, failed = asyncio.run(probe(port, token, args.probe_seconds))
                if failed:
                    raise SystemExit(f"{failed} request(s) failed while measuring the maximum")
                rate = max(1.0, max_rps / 2)
                print(f"maximum: {max_rps:.0f} disclosures/s at {CONNECTIONS} connections")
            report = Report(
                started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                machine=bench.uptime(),
                rate_rps=round(rate, 1),
                max_rps=None if max_rps is None else round(max_rps, 1),
                seconds=seconds,
                window_s=window_s,
                warmup_windows=max(1, windows // 10),
            )
            print(
                f"holding {rate:.0f} disclosures/s for {seconds:.0f} s "
                f"(a sample every {window_s:g} s)",
                flush=True,
            )
            print(HEADER, flush=True)
            asyncio.run(hold(port, token, rate, seconds, window_s, gateway.process.pid, report))
            gateway.stop()
            if gateway.process.returncode not in (0, -15):
                report.missed.append(f"the gateway stopped with {gateway.process.returncode}")
            report.verify_ok, report.verify = verify(config_path)
        finally:
            bench.stop_all(services)
    judge(report)
    report.machine += f"; at the end: {bench.uptime()}"
    print(summary(report), flush=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"report: {args.report}", flush=True)
    if report.missed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
