"""Real `gateway serve` processes for tests: a project directory pointed at loopback sandboxes
and a store, and the child process serving it.

Imported as `support.processes` (tests/ is on sys.path) by the crash, multi-instance,
fault and security suites. A subprocess is what makes SIGKILL a real crash and two
instances really two: separate interpreters, separate pools, one shared store.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp

_ORIGIN = re.compile(r'^base_url\s*=\s*"(https?://[^/"]+)', re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_harness(args: Sequence[str], cwd: Path, timeout_s: float) -> tuple[int, str, str]:
    """`python ARGS…` (a benchmark harness) in a process group of its own, so a timeout
    also ends the partner, proxy and gateway processes it started: (exit code, stdout,
    stderr); over `timeout_s` it fails the test."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"{' '.join(args)} took over {timeout_s} s:\n{out}") from None
    return process.returncode, out, err


def write_project(
    target: Path,
    project: Path,
    *,
    storage_url: str,
    base_urls: Mapping[str, str],
    partner_settings: Mapping[str, Mapping[str, float | int]] | None = None,
    log_settings: Mapping[str, float | str] | None = None,
) -> Path:
    """`target`/config.toml and partners/ from the shipped ones in `project` (keys shared).

    A partner in `base_urls` gets that origin wherever its file names its own (base_url,
    and a token_url on the same origin); `partner_settings` overrides top-level numbers of
    a partner file (timeout_s, max_attempts); `log_settings` adds keys to [log]. The
    gateway starts no sandbox of its own ([sandbox] serve = false). Returns the config path.
    """
    target.mkdir(parents=True, exist_ok=True)
    (target / "keys").symlink_to(project / "keys")
    (target / "partners").mkdir()
    for source in (project / "partners").glob("*.toml"):
        text = source.read_text()
        if source.stem in base_urls:
            match = _ORIGIN.search(text)
            assert match is not None, source
            text = text.replace(match.group(1), base_urls[source.stem].rstrip("/"))
        for key, value in (partner_settings or {}).get(source.stem, {}).items():
            text, count = re.subn(rf"^{key}\s*=.*$", f"{key} = {value}", text, flags=re.M)
            assert count == 1, (source, key)
        (target / "partners" / source.name).write_text(text)
    config = (project / "config.toml").read_text()
    config = config.replace('url = "sqlite:///var/gateway.db"', f'url = "{storage_url}"')
    # The test runs its own sandboxes on free ports: this gateway starts none (the shipped
    # development config would start them on the fixed 91xx ports, shared by everything).
    config, count = re.subn(r"^serve\s*=\s*true\b", "serve = false", config, flags=re.M)
    assert count == 1, "config.toml has no [sandbox] serve = true to turn off"
    for key, value in (log_settings or {}).items():
        line = re.compile(rf"^{key}\s*=.*$", re.MULTILINE)
        if line.search(config):
            config = line.sub(f"{key} = {value}", config, count=1)
        else:
            config = config.replace("[log]\n", f"[log]\n{key} = {value}\n", 1)
    (target / "config.toml").write_text(config)
    return target / "config.toml"


class GatewayProcess:
    """`python -m gateway --config … serve --port … [--workers N]` as a child process."""

    def __init__(
        self,
        config_path: Path,
        name: str = "gateway",
        workers: int = 1,
        serve_args: Sequence[str] = (),
    ) -> None:
        self.config_path = config_path
        self.workers = workers
        self.serve_args = tuple(serve_args)
        self.output = config_path.parent / f"{name}.out"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, session: aiohttp.ClientSession, timeout_s: float = 15.0) -> None:
        """Start it and return once /healthz answers."""
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "--config",
                    str(self.config_path),
                    "serve",
                    "--port",
                    str(self.port),
                    *(("--workers", str(self.workers)) if self.workers > 1 else ()),
                    *self.serve_args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.log_text()[-3000:])
            try:
                async with session.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"gateway did not start within {timeout_s} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` and wait for the process to end (killed, and its log's tail told,
        if it has not within 20 s: a stop that hangs is a failure worth reading)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"the gateway did not end within 20 s of signal {sig}; its log:\n"
                    + self.log_text()[-4000:]
                ) from None

    def stop(self) -> None:
        """SIGTERM: a clean stop (final checkpoint, instance retired)."""
        self.kill(signal.SIGTERM)

    def log_text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""
