"""`gateway serve` tunes the interpreter for a loop thread beside SQLite's writer thread."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.serve import GIL_SWITCH_INTERVAL_S


def test_the_writer_thread_waits_for_the_gil_at_most_the_switch_interval() -> None:
    # In a child process: the tuning is process-wide (uvloop's policy included).
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, sys; from gateway.serve import _tune_interpreter; "
            "_tune_interpreter(); print(sys.getswitchinterval(), "
            "type(asyncio.get_event_loop_policy()).__module__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert float(shown[0]) == pytest.approx(GIL_SWITCH_INTERVAL_S) and GIL_SWITCH_INTERVAL_S < 0.005
    assert shown[1].startswith("uvloop")
