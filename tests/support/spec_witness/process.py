"""The spec witness as a child process, for end-to-end tests.

    with running_witness(tmp_path, [log_vkey], free_port()) as witness:
        witness.url   # http://127.0.0.1:PORT, its submission prefix ({url}/add-checkpoint)
        witness.vkey  # its cosignature/v1 vkey (type 0x04), for a witness policy line

The key and the state live in ``directory``, so a second ``running_witness`` on the same
directory is the same witness restarted, remembering what it cosigned.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPPORT = Path(__file__).resolve().parents[1]  # tests/support, where spec_witness is found


@dataclass(frozen=True)
class RunningWitness:
    url: str
    vkey: str
    process: subprocess.Popen[str]


def witness_command(directory: Path, log_vkeys: Sequence[str], port: int, name: str) -> list[str]:
    """The command line that serves the witness kept in ``directory``."""
    command = [sys.executable, "-m", "spec_witness", "--key", str(directory / "witness.key")]
    command += ["--name", name, "--state", str(directory / "witness-state.json")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    for vkey in log_vkeys:
        command += ["--log", vkey]
    return command


@contextmanager
def running_witness(
    directory: Path,
    log_vkeys: Sequence[str],
    port: int,
    *,
    name: str = "spec-witness.example/w1",
) -> Iterator[RunningWitness]:
    """Start the witness, wait until it listens, and stop it (SIGTERM) on leaving."""
    pythonpath = os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")]))
    with subprocess.Popen(
        witness_command(directory, log_vkeys, port, name),
        env={**os.environ, "PYTHONPATH": pythonpath},
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            # It prints these two lines once it listens, and nothing more on stdout.
            vkey_line, listening = process.stdout.readline(), process.stdout.readline()
            if not vkey_line.startswith("vkey ") or not listening.startswith("listening on "):
                raise RuntimeError(f"spec witness did not start: {vkey_line!r} {listening!r}")
            yield RunningWitness(listening.split()[-1], vkey_line.split()[1], process)
        finally:
            process.terminate()
            process.wait(timeout=10)
