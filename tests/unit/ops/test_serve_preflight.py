"""`gateway serve` refuses at once, with file:line, what `partners validate` refuses: an
unset secret env var would otherwise surface only when a worker opens its resources."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

GATEWAY = Path(sys.executable).parent / "gateway"


def test_serve_refuses_an_unset_partner_secret_before_starting(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "deployment"
    shutil.copytree(project, root)
    partner = root / "partners" / "bcel-payments.toml"
    lines = partner.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith("client_secret_file"))
    lines[number] = 'client_secret_env = "GATEWAY_TEST_UNSET_SECRET"'
    partner.write_text("\n".join(lines) + "\n")
    ran = subprocess.run(
        [str(GATEWAY), "--config", str(root / "config.toml"), "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert ran.returncode == 2, ran.stderr[-2000:]
    assert "bcel-payments.toml:" in ran.stderr and "GATEWAY_TEST_UNSET_SECRET" in ran.stderr
    assert "gateway not started" in ran.stderr
    assert "serving on" not in ran.stderr  # refused before it claims to serve
