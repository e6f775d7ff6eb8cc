"""`gateway serve` and its pid file: a second serve on the same config folder refuses to
start while the file names a live gateway, and no gateway deletes a pid file not its own
(else `gateway partners reload` loses the first one: "no gateway pid")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.ops.reload import (
    GatewayAlreadyRunning,
    claim_pid_file,
    owning_pid_file,
    read_pid_file,
)


@pytest.fixture
def root(tmp_path: Path, project: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    return root


def sleeper(*argv: str) -> subprocess.Popen[bytes]:
    """A live process whose command line ends with `argv` (a stand-in gateway or not),
    returned once it runs its own command line (until its exec it is a copy of pytest)."""
    script = "import time; print('ready', flush=True); time.sleep(30)"
    process = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    return process


@pytest.fixture
def running_gateway() -> Iterator[int]:
    with sleeper("gateway", "serve") as process:
        yield process.pid
        process.kill()


def test_a_second_serve_on_the_same_config_refuses_and_keeps_the_first_ones_file(
    root: Path, running_gateway: int, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = root / "var" / "gateway.pid"
    pid_file.parent.mkdir(exist_ok=True)
    pid_file.write_text(f"{running_gateway}\n")

    assert main(["--config", str(root / "config.toml"), "serve", "--log-format", "text"]) == 2
    err = capsys.readouterr().err
    assert f"a gateway is already running on this config (pid {running_gateway}" in err
    assert f"kill {running_gateway}" in err and "--config" in err and "--port" in err
    assert "gateway serving on" not in err
    assert read_pid_file(pid_file) == running_gateway


def test_a_stale_file_is_taken_over(tmp_path: Path) -> None:
    pid_file = tmp_path / "var" / "gateway.pid"
    with sleeper() as not_a_gateway:  # a live pid, but reused by something else
        for stale in (not_a_gateway.pid, 4_000_000):
            pid_file.parent.mkdir(exist_ok=True)
            pid_file.write_text(f"{stale}\n")
            claim_pid_file(pid_file, os.getpid())
            assert read_pid_file(pid_file) == os.getpid()
        not_a_gateway.kill()


def test_a_gateway_never_deletes_a_pid_file_naming_another(
    tmp_path: Path, running_gateway: int
) -> None:
    pid_file = tmp_path / "gateway.pid"
    with owning_pid_file(pid_file):
        assert read_pid_file(pid_file) == os.getpid()
        pid_file.write_text(f"{running_gateway}\n")  # taken over meanwhile (by hand)
    assert read_pid_file(pid_file) == running_gateway
    with pytest.raises(GatewayAlreadyRunning), owning_pid_file(pid_file):
        pass
    assert read_pid_file(pid_file) == running_gateway
    pid_file.write_text(f"{os.getpid()}\n")
    with owning_pid_file(pid_file):
        pass
    assert not pid_file.exists()
