"""`benchmarks/big_log.py` at 2,000 entries, so that the ten-million tooling cannot rot.

Nothing here is about speed. What is checked: the fill stops and resumes where the store
ends (the second run grows a store of 1,000 entries to 2,000 with the same entries), the
filled log verifies (entries, checkpoints and search columns), and every figure the issue
asks for is printed, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import big_log  # noqa: E402

if TYPE_CHECKING:
    from conftest import Backend

FIGURES = (
    r"fill: 1,000 entries in [\d.]+s \([\d,]+ entries/s\)",
    r"verify: 2,000 entries, 2 checkpoints in [\d.]+s with 2 process\(es\) \(ok\)",
    r"inclusion proof at 2,000: median [\d.]+ ms, p95 [\d.]+ ms \(verified\)",
    r"subject report: median [\d.]+ ms, p95 [\d.]+ ms \([\d.]+ disclosures per subject\)",
    r"search \(a partner, one hour, first 50\): median [\d.]+ ms",
    r"on disk: [\d,.]+ MiB for 2,000 entries, [\d,]+ disclosures: [\d,]+ bytes per disclosure",
)


async def test_big_log_fills_resumes_and_measures(
    backend: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = (
        ["--store", "sqlite", "--path", str(tmp_path / "big" / "log.db")]
        if backend.name == "sqlite"
        else ["--store", "postgresql", "--dsn", backend.url, "--keys", str(tmp_path / "keys")]
    )
    common = [*where, "--subjects", "300", "--checkpoint-every", "1000", "--jobs", "2"]
    await big_log.main(["--entries", "1000", "--no-measure", *common])
    first = capsys.readouterr().out
    assert "fill: 1,000 entries" in first
    await big_log.main(["--entries", "2000", *common])
    out = capsys.readouterr().out
    for figure in FIGURES:
        assert re.search(figure, out), f"missing {figure!r} in:\n{out}"
