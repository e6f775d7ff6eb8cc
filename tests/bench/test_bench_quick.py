"""`benchmarks/run.py --quick` as a smoke test: it runs to the end and prints every row.

Nothing here is about speed: on a shared CI machine the figures mean little. What is
checked is that the harness still starts the partners, the proxy and both gateways,
that every request it sends is a successful disclosure (run.py stops otherwise), and
that each figure the issue asks for is printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("RSA-OAEP-256 + PS256", "ECDH-ES+A256KW + Ed25519")
TARGETS = ("bare proxy", "gateway sqlite", "gateway postgresql")
FIGURES = (
    r"decide\(\): [\d,]+ decisions/s",
    r"sqlite: [\d,]+ appends/s",
    r"sqlite: `gateway log verify` over [\d,]+ entries",
    r"sqlite: inclusion proof at [\d,]+",
    r"sqlite: subject search at [\d,]+",
    r"machine at the end: load average",
)


def test_quick_benchmark_prints_every_row(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--project", str(project)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr[-4000:]}"

    sections = re.split(r"^(?=\S)", out, flags=re.MULTILINE)
    for scenario in SCENARIOS:
        section = next((s for s in sections if s.startswith(scenario)), None)
        assert section is not None, f"no section for {scenario}:\n{out}"
        for connections in (1, 64):
            for target in TARGETS:
                # A figure row, or (PostgreSQL unreachable outside CI) a skipped one.
                row = rf"^  {target}\s+{connections}\s+(?:[\d,]+\s+[\d.]+\s+[\d.]+|skipped)"
                assert re.search(row, section, re.MULTILINE), f"no row {target} x{connections}"
    for figure in FIGURES:
        assert re.search(figure, out), f"no figure matching {figure!r}:\n{out}"
