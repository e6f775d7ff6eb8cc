"""What a witness remembers: the latest checkpoint (size, root) it cosigned for each log.

tlog-witness asks a witness to keep only that, per log origin, and to persist a new one
before it answers with the cosignature: a witness that cosigned size N and then, after a
crash, accepted N - 1 would have let the log shrink. The state is one small JSON file,
``{"logs": {"<origin>": {"size": N, "root": "<base64>"}}}``, replaced whole by
``files.write_atomically`` (fsynced, renamed, directory fsynced), so a crash leaves the
old state or the new, never a mix.

One process owns a state file: :meth:`WitnessState.open` takes an exclusive ``flock`` on
``<state>.lock`` for as long as the process runs, so a second ``gateway witness serve`` on
the same state is refused rather than allowed to race the first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.files import write_atomically
from gateway.log.checkpoint import MAX_TREE_SIZE


@dataclass(frozen=True)
class Cosigned:
    """The latest checkpoint a witness cosigned for one log."""

    size: int
    root: bytes


class WitnessState:
    """The state file of one witness; :meth:`record` is durable before it returns."""

    def __init__(self, path: Path, logs: dict[str, Cosigned], lock_fd: int | None) -> None:
        self.path = path
        self._logs = logs
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, path: Path) -> WitnessState:
        """Lock and read ``path`` (absent: nothing cosigned yet). ConfigError naming the
        file when it is held by another process or is not a state file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                str(path), None, "in use by another witness process (one process per state file)"
            ) from None
        try:
            return cls(path, _read(path), fd)
        except ConfigError:
            os.close(fd)
            raise

    def close(self) -> None:
        """Release the lock (the process ending does it too)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def latest(self, origin: str) -> Cosigned | None:
        return self._logs.get(origin)

    async def record(self, origin: str, cosigned: Cosigned) -> None:
        """Make ``cosigned`` the latest of ``origin``, on disk, before returning."""
        logs = {**self._logs, origin: cosigned}
        data = _encode(logs)
        # The fsyncs run beside the event loop; the caller holds the witness's lock, so
        # no other request reads a state that is not yet on disk.
        await asyncio.to_thread(write_atomically, self.path, data, sync_directory=True)
        self._logs = logs


def _encode(logs: dict[str, Cosigned]) -> bytes:
    doc = {
        "logs": {
            origin: {"size": c.size, "root": base64.b64encode(c.root).decode("ascii")}
            for origin, c in sorted(logs.items())
        }
    }
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def _read(path: Path) -> dict[str, Cosigned]:
    try:
        doc: Any = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), None, f"not a witness state file ({exc})") from None
    logs = doc.get("logs") if isinstance(doc, dict) else None
    if not isinstance(logs, dict):
        raise ConfigError(str(path), None, "not a witness state file: expected {'logs': {...}}")
    found: dict[str, Cosigned] = {}
    for origin, entry in logs.items():
        size = entry.get("size") if isinstance(entry, dict) else None
        root_text = entry.get("root") if isinstance(entry, dict) else None
        try:
            root = base64.b64decode(str(root_text), validate=True)
        except (binascii.Error, ValueError):
            root = b""
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not 0 <= size <= MAX_TREE_SIZE
            or len(root) != 32
        ):
            raise ConfigError(
                str(path), None, f"log {origin!r}: expected a size and a base64 32-byte root"
            )
        found[origin] = Cosigned(size, root)
    return found
