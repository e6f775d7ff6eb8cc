"""Getting a checkpoint cosigned: the C2SP tlog-witness client of the gateway's log.

:func:`cosign_checkpoint` sends one signed checkpoint to every witness of the witness policy
at once (``POST <url>/add-checkpoint``, one shared aiohttp session, a timeout per witness)
and says, per witness, what came of it:

* :class:`Cosigned` — its cosignature/v1 lines that verify against its policy vkey, and the
  size it has now cosigned (what to remember as its size for the next submission);
* :class:`Unreachable` — a network error, a timeout or a 5xx: weather, try again later;
* :class:`Refused` — another 4xx (the witness does not know this log, or our signature),
  a 409 again after the resend, or a 200 without one line that verifies: configuration
  or a witness's fault, not the log's;
* :class:`RollbackAlarm` — the witness has cosigned a tree this log cannot extend: a size
  larger than the local log, or a 422 to a consistency proof that the log computed itself
  (or the same size with another root). The log may have been rolled back or forked; this
  is never retried and never folded into another outcome.

A 409 whose size is at most the local size is the witness telling us a size we did not
remember (our memory is behind): the request is sent once more from that size, with a new
proof. Lines in a 200 that do not verify are dropped and listed in
:attr:`Witnessing.dropped`. The cosigned note is the checkpoint note with the verified lines
appended (c2sp.org/signed-note allows extra signature lines). Whether the policy's quorum
is met is :meth:`WitnessPolicy.satisfied_by` of the witnesses that cosigned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from gateway.log.checkpoint import CheckpointError, split_note
from gateway.log.cosignature import verify_cosignature
from gateway.log.witness_policy import PolicyWitness, WitnessPolicy
from gateway.log.witness_protocol import (
    WitnessProtocolError,
    format_add_checkpoint,
    parse_tlog_size,
)
from gateway.outbound.http import USER_AGENT, read_limited

__all__ = [
    "DEFAULT_TIMEOUT",
    "Cosigned",
    "DroppedLine",
    "ProofSource",
    "Refused",
    "RollbackAlarm",
    "Unreachable",
    "WitnessOutcome",
    "Witnessing",
    "cosign_checkpoint",
]

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds one witness may take for one add-checkpoint request, connecting included."""

MAX_RESPONSE_BYTES: Final = 16 * 1024
"""A witness answers with a few signature lines or a size; more is not a witness."""

ProofSource = Callable[[int, int], Awaitable[Sequence[bytes]]]
"""The consistency proof from the first size to the second (``0 < first < second``)."""


@dataclass(frozen=True)
class Cosigned:
    """The witness cosigned: its verified lines (newline-terminated) and its new size."""

    witness: str
    size: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Unreachable:
    """No answer worth reading (network error, timeout, 5xx, no URL in the policy); why,
    for the operator."""

    witness: str
    reason: str


@dataclass(frozen=True)
class Refused:
    """The witness answered but did not cosign, for a reason that is not a rollback."""

    witness: str
    status: int
    reason: str


@dataclass(frozen=True)
class RollbackAlarm:
    """The witness has seen a tree this log does not extend: ``witness_size`` against the
    local ``log_size``. Never retried: someone must look."""

    witness: str
    witness_size: int
    log_size: int
    reason: str


WitnessOutcome = Cosigned | Unreachable | Refused | RollbackAlarm


@dataclass(frozen=True)
class DroppedLine:
    """A line a witness answered with that is not its valid cosignature of the checkpoint."""

    witness: str
    line: str
    reason: str


@dataclass(frozen=True)
class Witnessing:
    """What came of one submission to every witness of the policy."""

    note: str
    """The checkpoint note with every verified cosignature line appended."""
    outcomes: Mapping[str, WitnessOutcome]
    """Per witness (its policy name), in the policy's order."""
    dropped: tuple[DroppedLine, ...]
    quorum_met: bool

    @property
    def alarms(self) -> list[RollbackAlarm]:
        return [o for o in self.outcomes.values() if isinstance(o, RollbackAlarm)]

    @property
    def cosigned(self) -> dict[str, Cosigned]:
        return {n: o for n, o in self.outcomes.items() if isinstance(o, Cosigned)}

    def known_sizes(self, before: Mapping[str, int]) -> dict[str, int]:
        """The per-witness sizes to remember: the new size where a witness cosigned, the
        earlier one elsewhere (an alarm does not move what we know)."""
        sizes = dict(before)
        sizes.update({name: c.size for name, c in self.cosigned.items()})
        return sizes


async def cosign_checkpoint(
    session: aiohttp.ClientSession,
    policy: WitnessPolicy,
    note: str,
    size: int,
    proof: ProofSource,
    known_sizes: Mapping[str, int],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Witnessing:
    """Submit ``note`` (the log's signed checkpoint of ``size`` entries) to every witness
    of ``policy`` concurrently; ``known_sizes`` is each witness's size as last cosigned (0,
    or absent, for a witness never submitted to). An error of ``proof`` (the local log's)
    is raised, not reported as a witness's outcome."""
    text, _ = split_note(note)
    submissions = [
        _Submission(session, w, note, text, size, proof, timeout) for w in policy.witnesses.values()
    ]
    outcomes = await asyncio.gather(*(s.run(known_sizes.get(s.name, 0)) for s in submissions))
    by_name = {o.witness: o for o in outcomes}
    cosigned = [o for o in outcomes if isinstance(o, Cosigned)]
    lines = "".join(line for c in cosigned for line in c.lines)
    return Witnessing(
        note=note + lines,
        outcomes=by_name,
        dropped=tuple(d for s in submissions for d in s.dropped),
        quorum_met=policy.satisfied_by([c.witness for c in cosigned]),
    )


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


class _Submission:
    """One witness's add-checkpoint exchange: at most two requests (the resend after 409)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        witness: PolicyWitness,
        note: str,
        text: str,
        size: int,
        proof: ProofSource,
        timeout: float,
    ) -> None:
        self.session = session
        self.witness = witness
        self.name = witness.name
        self.note = note
        self.text = text
        self.size = size
        self.proof = proof
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.dropped: list[DroppedLine] = []

    async def run(self, old: int) -> WitnessOutcome:
        if self.witness.url is None:
            return Unreachable(self.name, "the witness policy gives no URL for it")
        if old > self.size:
            return self.alarm(old, f"it was last known at size {old}, the log has {self.size}")
        outcome = await self.send(old)
        if not isinstance(outcome, int):
            return outcome
        witness_size = outcome
        if witness_size == old:
            # 409 with the size we sent: it cosigned that size with another root (a fork).
            return self.alarm(old, f"it answered 409 at size {old}: another root")
        if witness_size > self.size:
            return self.alarm(witness_size, f"it answered 409: it has cosigned {witness_size}")
        outcome = await self.send(witness_size)
        if not isinstance(outcome, int):
            return outcome
        if outcome == witness_size:
            # It cosigned this very size before, with another root than ours: a fork.
            return self.alarm(outcome, f"it answered 409 again at size {outcome}: another root")
        return Refused(self.name, 409, f"its size moved from {witness_size} to {outcome}")

    async def send(self, old: int) -> WitnessOutcome | int:
        """The outcome of one request from ``old``, or the witness's size on a 409."""
        hashes = await self.proof(old, self.size) if 0 < old < self.size else ()
        body = format_add_checkpoint(old, hashes, self.note)
        answer = await self.post(body)
        if not isinstance(answer, _Answer):
            return answer
        if answer.status == 200:
            return self.cosigned(answer.body.decode("utf-8", errors="replace"))
        if answer.status == 409:
            try:
                return parse_tlog_size(answer.body)
            except WitnessProtocolError as exc:
                return Refused(self.name, 409, f"409 without a size body: {exc}")
        reason = _reason(answer.body)
        if answer.status == 422:
            return self.alarm(old, f"it refused the consistency proof from {old} (422): {reason}")
        if answer.status >= 500:
            return Unreachable(self.name, f"HTTP {answer.status}: {reason}")
        return Refused(self.name, answer.status, reason)

    async def post(self, body: bytes) -> _Answer | Unreachable | Refused:
        assert self.witness.url is not None
        url = self.witness.url.rstrip("/") + "/add-checkpoint"
        headers = {"Content-Type": "text/plain", "User-Agent": USER_AGENT}
        try:
            async with self.session.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                # The whole body, however it is chunked (content.read(n) may stop at the
                # first chunk), refused past the bound.
                data = await read_limited(response, MAX_RESPONSE_BYTES)
                status = response.status
        except TimeoutError:
            return Unreachable(self.name, f"no answer within {self.timeout.total} s")
        except aiohttp.ClientError as exc:
            return Unreachable(self.name, f"{type(exc).__name__}: {exc}")
        if data is None:
            return Refused(self.name, status, f"an answer over {MAX_RESPONSE_BYTES} bytes")
        return _Answer(status, data)

    def cosigned(self, body: str) -> Cosigned | Refused:
        lines: list[str] = []
        for line in body.splitlines():
            if not line:
                continue
            try:
                verify_cosignature(line, self.text, self.witness.key)
            except CheckpointError as exc:
                self.dropped.append(DroppedLine(self.name, line, str(exc)))
            else:
                lines.append(line + "\n")
        if not lines:
            return Refused(self.name, 200, "no cosignature line verifies against its vkey")
        return Cosigned(self.name, self.size, tuple(lines))

    def alarm(self, witness_size: int, why: str) -> RollbackAlarm:
        return RollbackAlarm(
            self.name,
            witness_size,
            self.size,
            f"witness {self.name}: {why}; the log has {self.size} entries — rolled back or forked?",
        )


def _reason(body: bytes) -> str:
    return body.decode("utf-8", errors="replace").strip()[:200] or "(empty body)"
