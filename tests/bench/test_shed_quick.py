"""`benchmarks/shed.py` as a smoke test: it starts the partners and a gateway with the two
limits, runs every case to the end and prints a figure row for each. Nothing about speed:
only that the admitted load got through alone and that each flood was shed, answered with
nothing but disclosures and shed answers."""

from __future__ import annotations

import re
from pathlib import Path

from support.processes import run_harness

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
CASES = ("alone", "caller flood", "partner flood", "caller, reconnecting")


def test_the_shedding_benchmark_prints_a_row_per_case(project: Path) -> None:
    args = ["benchmarks/shed.py", "--seconds", "2", "--rounds", "1", "--admitted", "2"]
    args += ["--excess", "8", "--project", str(project)]
    code, out, err = run_harness(args, REPO, TIMEOUT_S)
    assert code == 0, f"{out}\n{err[-4000:]}"
    rows = {}
    for case in CASES:
        found = re.search(rf"^{re.escape(case)} +(\d+) +[\d.]+ +[\d.]+ +(\d+) ", out, re.M)
        assert found is not None, f"no row for {case}:\n{out}"
        rows[case] = (int(found.group(1)), int(found.group(2)))
    assert rows["alone"][0] > 0, out  # the admitted disclosures went through
    assert all(rows[case][1] > 0 for case in CASES[1:]), out  # every flood was shed
    assert "unexpected answers" not in out, out
