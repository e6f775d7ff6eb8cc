"""A tlog-witness (c2sp.org/tlog-witness): ``POST /add-checkpoint`` and the monitoring read.

The request body is ``old <size>\\n``, up to 63 base64 consistency-proof lines, a blank
line, then the signed checkpoint. The witness answers, in the spec's order of checks:
400 for a malformed body or an old size above the checkpoint's, 404 for an unknown origin,
403 when no trusted log signature verifies, 409 (``text/x.tlog.size``, its own size) when
the old size is not the size it last cosigned, 422 when the proof or the roots do not hold;
otherwise it persists the new (size, root) and answers its ``cosignature/v1`` line.

Checking the old size and persisting the new one happen under one lock, so two concurrent
requests cannot roll the recorded size back (the race the spec describes). The state file
(JSON, per origin: size, root, and the cosigned checkpoint) is replaced atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .checkpoint import parse_checkpoint, parse_decimal
from .cosignature import Cosigner
from .merkle import EMPTY_ROOT, verify_consistency
from .note import (
    Ed25519Verifier,
    Note,
    NoteError,
    b64decode,
    b64encode,
    check_utf8,
    open_note,
    parse_note,
)

MAX_PROOF_LINES = 63
MAX_BODY = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
log = logging.getLogger("spec_witness")


class Refused(Exception):
    """An add-checkpoint the witness must not cosign: an HTTP status and why."""

    def __init__(self, status: int, reason: str, body: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body


@dataclass(frozen=True)
class Request:
    old: int
    proof: list[bytes]
    note: str


def parse_request(body: bytes) -> Request:
    """Split an add-checkpoint body into old size, proof hashes and the checkpoint note."""
    try:
        text = check_utf8(body)
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise NoteError("no blank line after the old size and proof lines")
        lines = head.split("\n")
        if not lines[0].startswith("old "):
            raise NoteError("the first line is not 'old <size>'")
        old = parse_decimal(lines[0][4:], "old size")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise NoteError(f"{len(lines) - 1} proof lines, more than {MAX_PROOF_LINES}")
        proof = [b64decode(line) for line in lines[1:]]
        if any(len(node) != 32 for node in proof):
            raise NoteError("a proof line is not a 32-byte hash")
    except NoteError as exc:
        raise Refused(400, str(exc)) from exc
    return Request(old, proof, note)


@dataclass
class LogState:
    size: int
    root: bytes
    checkpoint: str  # the last cosigned checkpoint, with its log and witness signatures


class Witness:
    """One witness key over a set of trusted logs, with its persisted view of each."""

    def __init__(self, cosigner: Cosigner, log_vkeys: Iterable[str], state_path: Path) -> None:
        self.cosigner = cosigner
        self.logs: dict[str, list[Ed25519Verifier]] = {}
        for vkey in log_vkeys:
            verifier = Ed25519Verifier.from_vkey(vkey)
            # The log's key name is its origin (tlog-checkpoint recommends they match).
            self.logs.setdefault(verifier.name, []).append(verifier)
        self.state_path = state_path
        self.state = self._load()
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, LogState]:
        if not self.state_path.exists():
            return {}
        raw = json.loads(self.state_path.read_text())
        return {
            origin: LogState(entry["size"], b64decode(entry["root"]), entry["checkpoint"])
            for origin, entry in raw.items()
        }

    def _save(self) -> None:
        raw = {
            origin: {"size": s.size, "root": b64encode(s.root), "checkpoint": s.checkpoint}
            for origin, s in self.state.items()
        }
        temp = self.state_path.with_name(self.state_path.name + ".tmp")
        with temp.open("w") as handle:
            json.dump(raw, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.state_path)

    def _open(self, note: str) -> Note:
        """The checkpoint note, verified with the keys trusted for its origin."""
        try:
            parsed = parse_note(note)
            parse_checkpoint(parsed.text)
        except NoteError as exc:
            raise Refused(400, f"checkpoint: {exc}") from exc
        origin = parsed.text.split("\n", 1)[0]
        if origin not in self.logs:
            raise Refused(404, f"unknown log origin {origin[:80]!r}")
        try:
            return open_note(note, list(self.logs[origin]))[0]
        except NoteError as exc:
            raise Refused(403, f"checkpoint signature: {exc}") from exc

    async def add_checkpoint(self, body: bytes) -> str:
        """Check one add-checkpoint request; the cosignature line(s), or Refused."""
        request = parse_request(body)
        note = self._open(request.note)
        checkpoint = parse_checkpoint(note.text)
        if request.old > checkpoint.size:
            raise Refused(400, f"old size {request.old} > checkpoint size {checkpoint.size}")
        async with self._lock:
            known = self.state.get(checkpoint.origin)
            size, root = (known.size, known.root) if known else (0, EMPTY_ROOT)
            if request.old != size:
                raise Refused(409, f"old size {request.old}, witnessed {size}", f"{size}\n")
            # From size 0 only an empty proof, between equal sizes only equal roots: the
            # RFC 9162 check covers both (and a size-0 checkpoint's empty-tree root).
            if not verify_consistency(size, checkpoint.size, root, checkpoint.root, request.proof):
                raise Refused(422, f"no consistency from size {size} to {checkpoint.size}")
            line = self.cosigner.cosign(note.text).line()
            self.state[checkpoint.origin] = LogState(
                checkpoint.size, checkpoint.root, request.note + line
            )
            self._save()
        log.info("cosigned %s at size %d (old %d)", checkpoint.origin, checkpoint.size, size)
        return line

    def latest(self, origin_hash: str) -> str | None:
        """The last cosigned checkpoint of the log whose origin hashes to ``origin_hash``."""
        for origin, state in self.state.items():
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                return state.checkpoint
        return None


WITNESS: web.AppKey[Witness] = web.AppKey("witness", Witness)


async def add_checkpoint(request: web.Request) -> web.Response:
    witness = request.app[WITNESS]
    try:
        line = await witness.add_checkpoint(await request.read())
    except Refused as refused:
        log.info("refused with %d: %s", refused.status, refused.reason)
        if refused.body is not None:
            # Exactly this media type, no charset parameter: the spec names it so.
            headers = {"Content-Type": SIZE_CONTENT_TYPE}
            return web.Response(status=refused.status, body=refused.body.encode(), headers=headers)
        return web.Response(status=refused.status, text=refused.reason + "\n")
    return web.Response(text=line)


async def latest_checkpoint(request: web.Request) -> web.Response:
    checkpoint = request.app[WITNESS].latest(request.match_info["origin_hash"])
    if checkpoint is None:
        raise web.HTTPNotFound(text="no checkpoint cosigned for this log\n")
    return web.Response(text=checkpoint)


def make_app(witness: Witness) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[WITNESS] = witness
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/{origin_hash:[0-9a-f]{64}}/checkpoint", latest_checkpoint)
    return app
