"""Writing a small file whole: key files, a key-period file, config.toml after an edit.

:func:`write_atomically` promises three things:

- **atomic**: the bytes go to a temporary file in the same directory, which is then
  renamed over the target (or, with ``exclusive=True``, hard-linked to it), so a reader —
  or the gateway after a crash — sees the old file or the new one, never part of either;
- **durable**: the temporary file is fsynced before the rename, so the name never points
  at data still in the page cache; with ``sync_directory=True`` the directory is fsynced
  after, so the rename itself survives a power cut (needed where losing it would lose a
  key that data was already protected with);
- **mode**: the file is created 0600 (``tempfile.mkstemp``), so a secret is never readable
  by others even for a moment, then given ``mode`` before it gets its name.

The temporary file (``.<name>.<random>``) is removed whatever happens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE = 0o600


def write_atomically(
    path: Path,
    data: bytes,
    *,
    mode: int = PRIVATE,
    exclusive: bool = False,
    sync_directory: bool = False,
) -> bool:
    """Write ``data`` as the whole of ``path`` (see the module docstring for the promises).

    With ``exclusive`` the file is created only if absent (a hard link is an atomic
    create-if-absent: of two racing instances one wins, the other gets False and its
    bytes are discarded). Returns True when ``path`` now holds ``data``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode != PRIVATE:
            os.chmod(temp, mode)
        if exclusive:
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
        else:
            os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    if sync_directory:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return True
