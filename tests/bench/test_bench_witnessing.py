"""`benchmarks/witnessing.py --quick` as a smoke test: it runs and prints every figure.

Nothing here is about speed (a shared CI machine's figures mean little). What is checked:
the two witnesses start, every checkpoint of the run is cosigned by both (the script stops
otherwise), and each per-checkpoint figure issue #18 asks for is printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUICK = ("--quick", "--checkpoints", "3", "--batch", "200")
MS = r"median [\d.]+ ms, p95 [\d.]+ ms; gateway CPU [\d.]+ ms"
FIGURES = (
    rf"^sign: {MS}",
    rf"^submit to both witnesses: {MS} .*witnesses' CPU [\d.]+ ms each",
    rf"^store the cosigned note: {MS}",
    rf"^consistency proof alone \(\d+ hashes\): {MS}",
    r"^per checkpoint in all: median [\d.]+ ms, gateway CPU [\d.]+ ms, of which witnessing",
    r"^sqlite, [\d,]+ entries at the end; 3 checkpoints, each after 200 appends; 2 witnesses",
)


def test_quick_witnessing_benchmark_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/witnessing.py", *QUICK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    for figure in FIGURES:
        assert re.search(figure, done.stdout, re.MULTILINE), f"no {figure!r}:\n{done.stdout}"
