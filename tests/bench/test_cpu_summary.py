"""The bench's CPU line per case: the gateway's CPU per disclosure over the proxy's."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from run import SCENARIOS, Figures, cpu_summary


def cpu(ms: float) -> Figures:
    return Figures(100, 1.0, 1.0, 2.0, 0, 0.5, ms, 0.1)


def test_the_cpu_ratio_is_of_the_medians_per_mode() -> None:
    scenario = SCENARIOS[0]
    rounds = {
        (scenario.partner, "echo", 64): {
            "proxy": [cpu(0.2), cpu(0.3), cpu(0.25)],
            "sqlite": [cpu(1.0), cpu(1.5), cpu(0.5)],
        },
        (scenario.partner, "decrypt", 64): {
            "proxy": [cpu(0.5)],
            "sqlite": [cpu(1.0)],
        },
    }
    text = cpu_summary([scenario], ["decrypt", "echo"], rounds)
    lines = text.splitlines()
    assert "target <= 3x" in lines[1]
    assert lines[2].split() == [
        *"RSA-OAEP-256 + ES256 decrypt 64 conns: proxy 0.50 ms; sqlite 1.00 ms = 2.0x".split()
    ]
    assert "echo" in lines[3] and "proxy 0.25 ms; sqlite 1.00 ms = 4.0x" in lines[3]
