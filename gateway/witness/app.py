"""A witness anyone can run: C2SP tlog-witness ``POST /add-checkpoint``, cosignature/v1.

It cosigns a checkpoint of a log it was given (``--log VKEY``; the key's name is the log's
origin) only when it extends the latest one it cosigned for that log, so a log that shrank
or forked gets no cosignature. The checks run in the order the spec gives them:

====  ==========================================================================
400   the body is not an add-checkpoint request, the note is malformed, or
      ``old`` is larger than the checkpoint's size
404   the checkpoint's origin is not a log this witness was given
403   no signature by a key of that log verifies
409   ``old`` is not the size this witness last cosigned (body: that size, as
      ``text/x.tlog.size``), or the same size arrives with another root
422   the consistency proof from ``old`` does not verify (or is not empty from 0)
200   one cosignature/v1 line, after the new (size, root) is on disk
====  ==========================================================================

The check of ``old`` against the state and the write of the new state run under one lock,
and the whole decision is shielded from a client that goes away: the state on disk and
in memory never part (the race tlog-witness warns of cannot roll a log back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import utc_now
from gateway.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    split_note,
)
from gateway.log.cosignature import cosign, witness_vkey
from gateway.log.merkle import ProofError, verify_consistency
from gateway.log.witness_protocol import (
    TLOG_SIZE_CONTENT_TYPE,
    AddCheckpoint,
    WitnessProtocolError,
    format_tlog_size,
    parse_add_checkpoint,
)
from gateway.witness.state import Cosigned, WitnessState

MAX_REQUEST_BYTES: Final = 64 * 1024
"""An add-checkpoint body: 63 proof lines and a checkpoint with its signatures fit easily."""

_log = logging.getLogger("gateway.witness")


@dataclass(frozen=True)
class Answer:
    """What the witness answers: a status and a body (a reason, a size or a cosignature)."""

    status: int
    text: str
    content_type: str = "text/plain"


class Witness:
    """One witness key cosigning the checkpoints of the logs it was given."""

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        logs: Iterable[str],
        state: WitnessState,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = name
        self._key = private_key
        self.vkey = witness_vkey(name, private_key.public_key())
        self._logs: dict[str, list[str]] = {}
        for vkey in logs:
            origin, _ = parse_verifier_key(vkey)  # a log key's name is its origin
            self._logs.setdefault(origin, []).append(vkey.strip())
        self._state = state
        self._clock = clock
        self._lock = asyncio.Lock()

    @property
    def origins(self) -> list[str]:
        return sorted(self._logs)

    async def add_checkpoint(self, body: bytes) -> Answer:
        """Decide one add-checkpoint request (see the module docstring for the answers)."""
        try:
            request = parse_add_checkpoint(body)
            text, _ = split_note(request.note)
        except (WitnessProtocolError, CheckpointError) as exc:
            return _refuse(400, f"malformed request: {exc}")
        origin = text.partition("\n")[0]
        vkeys = self._logs.get(origin)
        if vkeys is None:
            return _refuse(404, f"unknown log {origin!r}; this witness cosigns {self.origins}")
        vkey = next((k for k in vkeys if _signed_by(request.note, k)), None)
        if vkey is None:
            return _refuse(403, f"no signature by a key of log {origin!r} verifies")
        try:
            checkpoint = open_checkpoint(request.note, vkey, expected_origin=origin)
        except CheckpointError as exc:
            return _refuse(400, f"malformed checkpoint: {exc}")
        if request.old > checkpoint.size:
            return _refuse(
                400, f"old size {request.old} is larger than the checkpoint's {checkpoint.size}"
            )
        async with self._lock:
            return await self._decide(request, checkpoint, text)

    async def _decide(self, request: AddCheckpoint, checkpoint: Checkpoint, text: str) -> Answer:
        origin = checkpoint.origin
        latest = self._state.latest(origin)
        size = 0 if latest is None else latest.size
        if request.old != size:
            return _conflict(size, f"old size {request.old}, but this witness cosigned {size}")
        if latest is not None and checkpoint.size == size and checkpoint.root != latest.root:
            _log.warning(
                "log %s: a second root for size %d (a fork): refused", origin, checkpoint.size
            )
            return _conflict(size, f"size {size} was cosigned with another root")
        if latest is None or request.old == 0:
            if request.proof:
                return _refuse(422, "a proof from old size 0 must be empty")
        else:
            try:
                verify_consistency(
                    request.old, checkpoint.size, request.proof, latest.root, checkpoint.root
                )
            except ProofError as exc:
                # Known log, valid signature, no consistency: possibly a log misbehaving.
                _log.warning(
                    "log %s: no consistency from %d to %d: %s",
                    origin,
                    request.old,
                    checkpoint.size,
                    exc,
                )
                return _refuse(422, f"consistency proof does not verify: {exc}")
        if latest is None or checkpoint.size > latest.size:
            await self._state.record(origin, Cosigned(checkpoint.size, checkpoint.root))
        timestamp = int(self._clock().timestamp())
        return Answer(200, cosign(text, self.name, self._key, timestamp))


def witness_app(witness: Witness) -> web.Application:
    """The aiohttp app: ``POST /add-checkpoint`` (the submission prefix is the root)."""

    async def add_checkpoint(request: web.Request) -> web.Response:
        body = await request.read()
        # Shielded: a client that disconnects must not stop the decision between the
        # state written to disk and the state kept in memory.
        answer = await asyncio.shield(witness.add_checkpoint(body))
        return web.Response(
            status=answer.status,
            body=answer.text.encode("utf-8"),
            content_type=answer.content_type,
        )

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post("/add-checkpoint", add_checkpoint)
    return app


def _signed_by(note: str, vkey: str) -> bool:
    try:
        open_note(note, vkey)
    except CheckpointError:
        return False
    return True


def _refuse(status: int, reason: str) -> Answer:
    _log.info("add-checkpoint refused (%d): %s", status, reason)
    return Answer(status, reason + "\n")


def _conflict(size: int, reason: str) -> Answer:
    _log.info("add-checkpoint refused (409): %s", reason)
    return Answer(409, format_tlog_size(size), TLOG_SIZE_CONTENT_TYPE)
