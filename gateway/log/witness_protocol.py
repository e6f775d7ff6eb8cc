"""The tlog-witness wire format: an add-checkpoint request body and a 409's size body.

C2SP tlog-witness (https://c2sp.org/tlog-witness) has a log send ``POST
<submission prefix>/add-checkpoint`` with::

    old <size the log believes the witness has cosigned>\\n
    <base64 hash>\\n          zero to 63 lines: the consistency proof from that size
    \\n
    <the signed checkpoint note>

and a witness whose latest cosigned size differs answer 409 with that size, in decimal
and a newline, as ``text/x.tlog.size``. Both ends use this module: the witness of
``gateway.witness`` parses what the gateway's log (and anyone's) formats. Pure;
every refusal is a :class:`WitnessProtocolError` (a ``ValueError``) saying what was
expected.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.log.checkpoint import MAX_TREE_SIZE, b64decode_strict

__all__ = [
    "MAX_PROOF_LINES",
    "TLOG_SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "WitnessProtocolError",
    "format_add_checkpoint",
    "format_tlog_size",
    "parse_add_checkpoint",
    "parse_tlog_size",
]

MAX_PROOF_LINES: Final = 63
"""A consistency proof between uint64 sizes has at most 63 hashes; the spec caps it so."""

TLOG_SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"

_HASH_SIZE = 32
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


class WitnessProtocolError(ValueError):
    """An add-checkpoint body or a size body that does not follow tlog-witness."""


@dataclass(frozen=True)
class AddCheckpoint:
    """One add-checkpoint request: the old size, the proof from it, the signed checkpoint."""

    old: int
    proof: tuple[bytes, ...]
    note: str


def format_add_checkpoint(old: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body for ``POST …/add-checkpoint``."""
    if len(proof) > MAX_PROOF_LINES:
        raise WitnessProtocolError(
            f"proof has {len(proof)} hashes, expected at most {MAX_PROOF_LINES}"
        )
    lines = [f"old {_size(old, 'old size')}\n"]
    lines += [base64.b64encode(h).decode("ascii") + "\n" for h in proof]
    return ("".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body; the note is returned as sent (its signature is not checked)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessProtocolError("request body is not UTF-8") from None
    old_line, newline, rest = text.partition("\n")
    if not newline:
        raise WitnessProtocolError("request body has no complete first line, expected 'old N'")
    if not old_line.startswith("old "):
        raise WitnessProtocolError(f"first line is {old_line[:40]!r}, expected 'old <size>'")
    old = _parse_size(old_line[4:], "old size")
    proof: list[bytes] = []
    while True:
        line, newline, rest = rest.partition("\n")
        if not newline:
            raise WitnessProtocolError(
                "request body has no empty line, expected one between the proof and the checkpoint"
            )
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise WitnessProtocolError(f"proof has more than {MAX_PROOF_LINES} lines")
        digest = b64decode_strict(line)
        if digest is None or len(digest) != _HASH_SIZE:
            raise WitnessProtocolError(
                f"proof line {len(proof) + 1} is not the canonical base64 of a 32-byte hash"
            )
        proof.append(digest)
    if not rest:
        raise WitnessProtocolError("request body has no checkpoint after the empty line")
    return AddCheckpoint(old, tuple(proof), rest)


def format_tlog_size(size: int) -> str:
    """A 409 body: the witness's latest cosigned size, in decimal, and a newline."""
    return f"{_size(size, 'size')}\n"


def parse_tlog_size(body: bytes) -> int:
    """The size of a 409 body (``text/x.tlog.size``)."""
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n"):
        raise WitnessProtocolError("size body does not end with a newline")
    return _parse_size(text[:-1], "size")


def _size(value: int, what: str) -> int:
    if isinstance(value, bool) or not 0 <= value <= MAX_TREE_SIZE:
        raise WitnessProtocolError(f"{what} is {value!r}, expected an int in 0..{MAX_TREE_SIZE}")
    return value


def _parse_size(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_TREE_SIZE:
        raise WitnessProtocolError(
            f"{what} {text[:40]!r} is not a decimal number without leading zeros in "
            f"0..{MAX_TREE_SIZE}"
        )
    return int(text)
