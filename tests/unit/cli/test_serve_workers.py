"""`gateway serve --workers N|auto`: auto is one worker per core this process may use."""

from __future__ import annotations

import argparse
import os

import pytest

from gateway.cli.server import usable_cores, workers_count


def test_auto_is_one_worker_per_core_this_process_may_use() -> None:
    assert workers_count("auto") == usable_cores() == len(os.sched_getaffinity(0))
    assert workers_count("3") == 3


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_anything_else_is_refused_saying_what_would_pass(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        workers_count(text)
    assert "give a whole number from 1, or auto (one per core:" in str(refused.value)
