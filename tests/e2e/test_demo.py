"""`gateway demo` runs the whole flow and verifies its log (on free ports, in a copy)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_shows_the_flow_and_verifies(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    for file in (root / "partners").glob("*.toml"):
        port = free_port()
        text = re.sub(r"127\.0\.0\.1:91\d\d", f"127.0.0.1:{port}", file.read_text())
        file.write_text(text)
    config = root / "config.toml"
    config.write_text(config.read_text().replace("port = 8080", f"port = {free_port()}"))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("ALLOWED") == 6 and out.count("REFUSED") == 6
    assert "consent_withdrawn" in out and "subject_under_age" in out
    # adreach received data under the marketing consent: it is told of the withdrawal.
    assert "adreach told: consent_withdrawn notice sent" in out
    # 18 disclosure entries, the notice's 2 and 4 action entries (3 consents, 1 withdrawn).
    assert re.search(r"log verified .*: OK \(24 entries", out)
    # The listing shows every entry the verification counts (refusals and outcomes are
    # committed after their answer).
    assert "disclosure log: 24 entries" in out and re.search(r"^  #23 ", out, re.M)
    assert "Somchai" not in out and "+856" not in out
