"""`benchmarks/run.py --quick` as a smoke test: it runs to the end and prints every row.

Nothing here is about speed: on a shared CI machine the figures mean little. What is
checked is that the harness still starts the partners, the proxy and both gateways,
that every request it sends is a successful disclosure (run.py stops otherwise), and
that each figure the issue asks for is printed, with a gateway of two workers.
"""

from __future__ import annotations

import re
from pathlib import Path

from support.processes import run_harness

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 600
SCENARIOS = ("RSA-OAEP-256 + ES256", "ECDH-ES+A256KW + Ed25519", "RSA-OAEP-256 + PS256")
TARGETS = (
    "bare proxy",
    "gateway sqlite",
    "gateway sqlite witnessed",
    "gateway postgresql",
    "bare proxy x2",
    "gateway sqlite x2",
)
FIGURES = (
    r"sqlite \(WAL, synchronous=FULL, one row per commit\): p50 [\d.]+ ms, p99 [\d.]+ ms",
    r"decide\(\): [\d,]+ decisions/s",
    r"sqlite: [\d,]+ appends/s",
    r"sqlite: `gateway log verify` over [\d,]+ entries",
    r"sqlite: inclusion proof at [\d,]+",
    r"sqlite: subject search at [\d,]+",
    # Witnessing: on the disclosure path (the gateway with a witness policy), per checkpoint.
    r"checkpoints during the HTTP cases: \d+ signed, \d+ of them witnessed",
    r"at the end: gateway_checkpoint_witnessed_age_seconds [\d.]+; "
    r"gateway_witness_cosigned_size w1 [\d,]+, w2 [\d,]+",
    r"the witnessed gateway's log: \d+ warning\(s\) of a witness that did not cosign",
    r"RSA-OAEP-256 \+ ES256 +[\d.]+ / [\d.]+ +[\d.]+ / [\d.]+ +[\d.]+ / [\d.]+",
    r"submit to both witnesses: median [\d.]+ ms",
    r"per checkpoint in all: median [\d.]+ ms",
    r"machine at the end: load average",
    # Issue #20: the gateway's CPU per disclosure against the proxy's per request, with the
    # echo partner too, and the hot path's pieces alone.
    r"RSA-OAEP-256 \+ ES256 +echo +64 conns: proxy [\d.]+ ms; sqlite [\d.]+ ms = [\d.]+x",
    r"RSA-OAEP-256 \+ ES256 +decrypt +1 conns: proxy [\d.]+ ms; sqlite [\d.]+ ms = [\d.]+x",
    # Issue #20 direction 3: two workers against the bare proxy of two workers.
    r"HTTP, 1 worker each but sqlite x2 and the proxy x2",
    r"sqlite x2 [\d.]+ ms = [\d.]+x proxy x2 \([\d.]+ ms\)",
    r"seal: ES256 inside RSA-OAEP-256 \(bcel-payments\) +[\d.]+",
    r"consent query: one subject, one consent \(SQLite, at rest\) +[\d.]+",
    r"aiohttp round trip to a loopback echo \(client \+ server\) +[\d.]+",
)
MODES = ("the partner decrypts and verifies", "echo partner")


def run_quick(project: Path) -> tuple[int, str, str]:
    """`benchmarks/run.py --quick` with a gateway of two workers."""
    args = ["benchmarks/run.py", "--quick", "--workers", "2", "--project", str(project)]
    return run_harness(args, REPO, TIMEOUT_S)


def test_quick_benchmark_prints_every_row(project: Path) -> None:
    code, out, err = run_quick(project)
    assert code == 0, f"{out}\n{err[-4000:]}"

    sections = re.split(r"^(?=\S)", out, flags=re.MULTILINE)
    for scenario, mode in ((scenario, mode) for scenario in SCENARIOS for mode in MODES):
        section = next(
            (s for s in sections if s.startswith(scenario) and mode in s.splitlines()[0]), None
        )
        assert section is not None, f"no section for {scenario}, {mode}:\n{out}"
        for connections in (1, 64):
            for target in TARGETS:
                # A figure row, or (PostgreSQL unreachable outside CI) a skipped one.
                row = rf"^  {target}\s+{connections}\s+(?:[\d,]+\s+[\d.]+\s+[\d.]+|skipped)"
                assert re.search(row, section, re.MULTILINE), f"no row {target} x{connections}"
    for figure in FIGURES:
        assert re.search(figure, out), f"no figure matching {figure!r}:\n{out}"
