"""docs/deploy/disclosure-gateway.service is a unit systemd accepts, sandboxed as documented.

`systemd-analyze verify` wants ExecStart's binary to exist, so it checks a copy whose
ExecStart points at this venv's `gateway`; the shipped unit keeps its documented path.
Skipped where systemd-analyze is missing (`make test` installs Debian's systemd for it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "docs" / "deploy" / "disclosure-gateway.service"
SHIPPED_GATEWAY = "/opt/disclosure-gateway/venv/bin/gateway"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def test_the_unit_is_sandboxed_and_restarts_as_the_deploy_readme_says():
    unit = directives(UNIT.read_text(encoding="utf-8"))
    assert unit["ExecStart"] == [f"{SHIPPED_GATEWAY} serve --workers auto"]
    (workdir,) = unit["WorkingDirectory"]
    assert unit["ReadWritePaths"] == [f"{workdir}/var {workdir}/keys"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["EnvironmentFile"] == ["-/etc/disclosure-gateway/environment"]
    assert unit["User"] == ["gateway"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path):
    gateway = Path(sys.executable).parent / "gateway"
    assert gateway.exists()
    copy = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    copy.write_text(text.replace(f"ExecStart={SHIPPED_GATEWAY}", f"ExecStart={gateway}"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # An unknown key or a bad value is only a warning (exit 0): any line naming the unit fails.
    complaints = [line for line in done.stderr.splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not complaints, done.stderr
