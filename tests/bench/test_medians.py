"""The harness's medians: each ratio is taken against the proxy of the same round."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from run import Figures, median_row


def figures(rps: float, p50_ms: float) -> Figures:
    return Figures(int(rps * 10), 10.0, p50_ms, p50_ms * 2, 0, 0.5, 1.0, 0.5)


def test_ratios_are_medians_of_same_round_ratios() -> None:
    # The machine ran twice as fast in round 2: per-round ratios are 0.5, 0.6 and 0.4;
    # the ratio of the medians (120 / 200 = 0.6) would be wrong.
    rounds = {
        "proxy": [figures(100, 1.0), figures(200, 0.5), figures(150, 0.8)],
        "sqlite": [figures(50, 3.0), figures(120, 1.5), figures(60, 2.0)],
        "postgresql": [figures(40, 3.5), figures(120, 1.6), figures(30, 2.2)],
    }
    line = median_row("gateway sqlite", 64, rounds, "sqlite")
    assert " 0.50x " in line
    assert "+1.20" in line  # +p50: 2.0, 1.0, 1.2 → 1.2
    pg = median_row("gateway postgresql", 64, rounds, "postgresql")
    assert pg.endswith("pg/sqlite 0.80x")  # 0.8, 1.0, 0.5
