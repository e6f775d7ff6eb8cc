"""Checkpoints (c2sp.org/tlog-checkpoint): the note text of a log's tree head.

Origin line, tree size in decimal without leading zeros, base64 root hash, then optional
non-empty extension lines; every line ends in a newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .note import NoteError, b64decode, b64encode

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
# Sizes stay below 2^63 so they fit the u64 fields other formats carry them in.
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = (self.origin, str(self.size), b64encode(self.root), *self.extensions)
        return "".join(line + "\n" for line in lines)


def parse_decimal(text: str, what: str) -> int:
    """An ASCII decimal with no leading zeros (``0`` itself allowed)."""
    if len(text) > 19 or not _DECIMAL.fullmatch(text):
        raise NoteError(f"{what} {text[:30]!r} is not a decimal without leading zeros")
    value = int(text)
    if value > MAX_SIZE:
        raise NoteError(f"{what} {value} is larger than 2^63-1")
    return value


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (the part before the signatures)."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint has {len(lines)} lines, expected origin, size and root")
    if any(not line for line in lines):
        raise NoteError("checkpoint has an empty line")
    root = b64decode(lines[2])
    if len(root) != 32:
        raise NoteError(f"checkpoint root hash has {len(root)} bytes, expected 32")
    size = parse_decimal(lines[1], "checkpoint size")
    return Checkpoint(lines[0], size, root, tuple(lines[3:]))
