"""`benchmarks/soak.py` for a few seconds: it starts the partners and the gateway, holds a
rate, samples, verifies the log and writes its report.

Nothing here is about speed (a shared CI machine makes figures mean little, and a short
run's p99 drift is noise): the check is that the harness runs to the end, that every
request it sent was a successful disclosure, and that the report holds every figure the
issue asks for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.processes import run_harness

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


def test_a_short_soak_writes_its_report(tmp_path: Path) -> None:
    report_path = tmp_path / "soak-report.json"
    args = ["benchmarks/soak.py", "--seconds", "8", "--window", "2"]
    code, out, err = run_harness(
        [*args, "--rate", "20", "--report", str(report_path)], REPO, TIMEOUT_S
    )

    assert report_path.exists(), f"no report\nstdout:\n{out}\nstderr:\n{err[-3000:]}"
    report = json.loads(report_path.read_text())
    # A short run's figures may miss a target on a busy machine; errors and verify may not.
    assert report["errors"] == 0, out
    assert report["verify_ok"], report["verify"]
    assert report["verify"].startswith("ok: "), report["verify"]
    assert report["requests"] > 0
    assert report["rate_rps"] == 20
    assert len(report["windows"]) >= 3, out
    for window in report["windows"]:
        assert window["rss_mib"] > 0
        assert window["open_fds"] > 0
        assert {"p50_ms", "p99_ms", "errors", "requests"} <= set(window)
    assert {"rss_growth", "p99_drift", "fd_growth", "missed"} <= set(report)
    assert "verdict: " in out and "RSS growth after warm-up" in out
    # Exit 0 exactly when every target was met.
    assert (code == 0) == (report["missed"] == []), (code, out)


def test_the_verdict_reads_growth_after_the_warm_up_and_drift_between_ends() -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.soak import Report, Window, judge

    def window(at: float, rss: float, p99: float, errors: int = 0) -> Window:
        return Window(at, rss, 40, 100, 10.0, p99 / 4, p99, errors, 1.0)

    def report(*windows: Window, verified: bool = True) -> Report:
        # Two warm-up windows: the baseline is the sample at the end of the second.
        made = Report("t", "m", 10.0, 20.0, 60.0, 10.0, 2, list(windows))
        made.errors = sum(w.errors for w in windows)
        made.verify_ok = verified
        judge(made)
        return made

    # Memory taken during the warm-up is not growth; p99 compared end against start.
    steady = report(
        window(10, 50.0, 100), window(20, 70.0, 10), window(30, 71.0, 10), window(40, 72.0, 11)
    )
    assert steady.rss_growth is not None and round(steady.rss_growth, 3) == 0.029
    assert steady.p99_drift == 0.1 and steady.missed == []

    grown = report(
        window(10, 70.0, 10), window(20, 70.0, 10), window(30, 70.0, 10), window(40, 77.0, 13)
    )
    assert grown.missed == [
        "RSS grew 10.0% (target < 10%)",
        "p99 drifted +30.0% (target < 20%)",
    ]
    failed = report(window(10, 70.0, 10), window(20, 70.0, 10, errors=2), verified=False)
    assert failed.missed == [
        "2 request(s) failed (target 0)",
        "`gateway log verify` did not pass",
    ]
