"""The wheel stands on its own: built from the repo, installed into a fresh venv outside it,
`gateway init` and `gateway serve` work from a folder that knows nothing of the checkout.

Kept fast and offline: the wheel is built without build isolation, installed with
--no-deps, and the new venv sees the test venv's site-packages (the dependencies) through
a .pth file. A .pth-added folder does not run its own .pth files, so the checkout's
editable install stays switched off there: `gateway` must come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import gateway

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point Python back at the checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("GATEWAY_")
    }
    return env | extra


def package_data_in_checkout() -> set[str]:
    """Every non-Python file under gateway/ (tracked ones, when this is a git checkout)."""
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "gateway"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    else:
        listed = [str(p.relative_to(REPO)) for p in (REPO / "gateway").rglob("*") if p.is_file()]
    return {
        name for name in listed if not name.endswith((".py", ".pyc")) and "__pycache__" not in name
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("package")
    assert not root.resolve().is_relative_to(REPO)
    source = root / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    shutil.copy2(REPO / "pyproject.toml", source)
    for package in ("gateway", "gateway_client"):  # the server reads the SDK's problem table
        shutil.copytree(
            REPO / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    dist = root / "dist"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        dist,
        source,
        cwd=root,
    )
    (wheel,) = dist.glob("disclosure_gateway-*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        wheel,
        cwd=root,
    )
    # Only now: had pip seen the checkout's editable install, it would call it installed.
    purelib = Path(
        run(
            venv / "bin" / "python",
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            cwd=root,
        ).strip()
    )
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "test_venv_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")
    yield Installed(venv, wheel)


def test_the_wheel_carries_every_file_the_package_reads(installed: Installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    missing = package_data_in_checkout() - names
    assert not missing, f"add to [tool.setuptools.package-data] in pyproject.toml: {missing}"
    assert "gateway/templates/init/config.toml" in names
    assert "gateway_client/problems.py" in names


def test_version_from_the_installed_command(installed: Installed, tmp_path: Path):
    expected = f"gateway {gateway.__version__}"
    assert run(installed.bin / "gateway", "--version", cwd=tmp_path).strip() == expected
    assert (
        run(installed.bin / "python", "-m", "gateway", "--version", cwd=tmp_path).strip()
        == expected
    )
    where = run(
        installed.bin / "python", "-c", "import gateway; print(gateway.__file__)", cwd=tmp_path
    ).strip()
    assert Path(where).is_relative_to(installed.venv), where
    assert not Path(where).resolve().is_relative_to(REPO)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_init_then_serve_from_the_new_folder(installed: Installed, tmp_path: Path):
    run(installed.bin / "gateway", "init", "deployment", cwd=tmp_path)
    folder = tmp_path / "deployment"
    run(installed.bin / "gateway", "partners", "validate", cwd=folder)
    port = free_port()
    server = subprocess.Popen(
        [str(installed.bin / "gateway"), "serve"],
        cwd=folder,
        env=clean_env(GATEWAY_SERVER_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    status = r.status
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert status == 200, f"no /healthz on {port}: exit {server.poll()}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    # /healthz answered on the environment's port, not config.toml's 8080: the override
    # reached the workers; the store is where the starter config puts it.
    assert (folder / "var" / "gateway.db").exists(), output
