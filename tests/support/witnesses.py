"""Witnesses as child processes for end-to-end tests: `gateway witness serve` (ours) and
the spec-only witness of `support.spec_witness`, each on a free port, and a witness policy
file naming them.

    with gateway_witness(tmp_path / "w1", log_vkey) as w1:
        with spec_witness(tmp_path / "w2", log_vkey) as w2:
            write_policy(path, log_vkey, {"w1": w1, "w2": w2}, "all")
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.processes import free_port
from support.spec_witness.process import running_witness

from gateway.log.cosignature import witness_vkey
from gateway.witness.keyfile import load_or_create_key

GATEWAY = Path(sys.executable).parent / "gateway"
GW_NAME = "witness.partner.example/w1"


@dataclass(frozen=True)
class Witness:
    url: str
    vkey: str


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert process.poll() is None, "gateway witness serve exited"
            assert time.monotonic() < deadline, "gateway witness serve did not start"
            time.sleep(0.1)


@contextmanager
def gateway_witness(
    directory: Path, log_vkeys: str | Sequence[str], port: int | None = None
) -> Iterator[Witness]:
    """`gateway witness serve` as a child process; its key and state live in `directory`,
    so the same directory again is the same witness restarted. It witnesses `log_vkeys`
    (one log vkey, or several: a log key rotation)."""
    key_path = directory / "gw-witness.pem"
    directory.mkdir(parents=True, exist_ok=True)
    vkey = witness_vkey(GW_NAME, load_or_create_key(key_path).public_key())
    port = port or free_port()
    command = [str(GATEWAY), "witness", "serve", "--key", str(key_path), "--name", GW_NAME]
    command += ["--log", *listed(log_vkeys), "--port", str(port)]
    with (directory / "gw-witness.out").open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, process)
            yield Witness(f"http://127.0.0.1:{port}", vkey)
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def spec_witness(
    directory: Path, log_vkeys: str | Sequence[str], port: int | None = None
) -> Iterator[Witness]:
    """The spec-only witness (code that does not import gateway) as a child process."""
    directory.mkdir(parents=True, exist_ok=True)
    with running_witness(directory, listed(log_vkeys), port or free_port()) as running:
        yield Witness(running.url, running.vkey)


def listed(log_vkeys: str | Sequence[str]) -> list[str]:
    return [log_vkeys] if isinstance(log_vkeys, str) else list(log_vkeys)


def write_policy(
    path: Path, log_vkey: str, witnesses: Mapping[str, Witness], threshold: str = "all"
) -> Path:
    """A tlog-policy file: the log, `witnesses` in one group of `threshold`, the quorum."""
    lines = [f"log {log_vkey}"]
    lines += [f"witness {name} {w.vkey} {w.url}" for name, w in witnesses.items()]
    lines += [f"group witnesses {threshold} {' '.join(witnesses)}", "quorum witnesses"]
    path.write_text("\n".join(lines) + "\n")
    return path
