"""Getting the log's checkpoints witnessed, beside the log service (issue #18).

:class:`WitnessRunner` submits each checkpoint the gateway signs to every witness of the
witness policy (:func:`~gateway.outbound.witnesses.cosign_checkpoint`), in a background
task of its own so a disclosure never waits for a witness, and keeps what came of it in
the store (``WitnessStateStore``): each witness's cosigned size (the old size of the next
submission) and the checkpoint's note with the verified cosignature lines appended.

* It always submits the **latest stored** checkpoint: several signed while one submission
  ran are one submission, and another instance's newer checkpoint is submitted too.
* A checkpoint is witnessed when the cosignatures on its stored note meet the policy's
  quorum (:meth:`witnessed_checkpoint`, read back from the store, so a checkpoint another
  instance got witnessed counts, and a reloaded policy is applied to what is stored).
* While the quorum is not met (a witness unreachable) the latest checkpoint is submitted
  again every ``retry_s``; nothing is lost meanwhile, checkpoints keep being signed.
* A witness that answers with a size larger than the checkpoint submitted but not larger
  than the latest stored checkpoint has seen another instance's newer checkpoint (several
  instances on one database): that checkpoint is submitted instead — never an alarm.
* A :class:`~gateway.outbound.witnesses.RollbackAlarm` is logged at ERROR, counted and
  kept in the store (schema 11, ``witness_alarms``); ``alarms`` is the store's view, read
  when the task starts and before each submission, so a restart or another instance on the
  database never forgets it. /readyz fails while it is there. It is never cleared by time,
  by a restart or by a witness being unreachable — only when **that witness cosigns** a
  checkpoint again (it verified that the log extends the tree it cosigned: the rollback is
  undone, e.g. after ``gateway db restore`` of a copy with every entry it saw; logged at
  WARNING with both sizes), or when **a person clears it** (``gateway witness alarm clear
  WITNESS --as ID``, an ``action`` entry naming the witness and both sizes). A person's clear
  of a rollback that is still real lasts until the next submission, which raises it again.

* Only one process of a ``gateway serve --workers N`` submits (``submits=False`` in the
  others, which the main process spawned): N workers submitting the same checkpoint cost
  N round trips per witness, all but one answered 409. The submitting one also looks at
  the store every ``OBSERVE_S`` for a checkpoint another worker signed, and submits it.
  The others **observe** the store
  every ``OBSERVE_S`` instead: its alarms (so /readyz fails on every worker) and whether
  the latest checkpoint is witnessed; each serves the cosigned note from the store.
  Separate hosts on one PostgreSQL each submit (the peer handling above keeps that
  correct, only redundant).

It lives in ``outbound/`` (it speaks to witnesses over HTTP, and imports ``log`` and
``store``); the log service below it knows it only as the small Protocol
``log.service.CheckpointWitnessing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

import aiohttp

from gateway.clock import utc_now
from gateway.errors import ConfigErrors, GatewayError
from gateway.log.checkpoint import CheckpointError, parse_signature_line, split_note
from gateway.log.cosignature import cosigners
from gateway.log.witness_policy import NONE, WitnessPolicy, load_witness_policy
from gateway.observe.metrics import Metrics
from gateway.outbound.witnesses import (
    DEFAULT_TIMEOUT,
    Cosigned,
    ProofSource,
    RollbackAlarm,
    Witnessing,
    cosign_checkpoint,
)
from gateway.store.ports import CheckpointStore, WitnessStateStore
from gateway.store.records import StoredCheckpoint, WitnessAlarm

__all__ = [
    "RETRY_S",
    "Submitted",
    "WitnessRunner",
    "WitnessRunnerStore",
    "merge_cosignatures",
    "witnessed_note",
]

log = logging.getLogger("gateway.witnessing")

RETRY_S: Final = 30.0
"""While the quorum is not met, the latest checkpoint is submitted again this often."""

PEER_RESUBMITS: Final = 3
"""How many times a newer stored checkpoint (another instance's) is submitted instead."""

OBSERVE_S: Final = 2.0
"""How often a runner reads the store: one that submits, for a checkpoint another worker
signed; one that does not, for the alarms and the witnessing."""

WITNESSED_LOOKBACK: Final = 64
"""How many of the latest cosigned checkpoints are searched for one that meets the quorum."""


class WitnessRunnerStore(CheckpointStore, WitnessStateStore, Protocol):
    """The two ports the runner uses."""


@dataclass(frozen=True)
class Submitted:
    """One submission: the checkpoint submitted, what each witness answered, and the note
    as now stored (every cosignature it has gathered so far)."""

    checkpoint: StoredCheckpoint
    witnessing: Witnessing
    cosigned_note: str
    quorum_met: bool

    @property
    def alarms(self) -> list[RollbackAlarm]:
        return self.witnessing.alarms


class WitnessRunner:
    """Submits the latest checkpoint to the policy's witnesses; see the module docstring."""

    def __init__(
        self,
        store: WitnessRunnerStore,
        session: aiohttp.ClientSession,
        policy: WitnessPolicy | None,
        proof: ProofSource,
        *,
        policy_path: Path | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        timeout: float = DEFAULT_TIMEOUT,
        retry_s: float = RETRY_S,
        submits: bool = True,
        observe_s: float = OBSERVE_S,
    ) -> None:
        self.policy = policy
        self.submits = submits
        """False: another process of this host submits; this one observes the store."""
        self.policy_path = policy_path
        self.alarms: dict[str, RollbackAlarm] = {}
        """Rollback alarms by witness, as the store keeps them (see the module docstring)."""
        self.not_cosigned: dict[str, str] = {}
        """Witnesses whose last answer was no cosignature (unreachable, refused): why."""
        self.quorum_met: bool | None = None
        """Whether the last submission met the quorum (None: none made yet)."""
        self._store = store
        self._session = session
        self._proof = proof
        self._metrics = metrics
        self._clock = clock
        self._timeout = timeout
        self._retry_s = retry_s
        self._observe_s = observe_s
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._witnessed_seq: int | None = None

    @property
    def active(self) -> bool:
        """Whether there is any witness to submit to."""
        return self.policy is not None and bool(self.policy.witnesses)

    # -- what the log service calls ------------------------------------------------------

    def checkpoint_signed(self, checkpoint: StoredCheckpoint) -> None:
        """A checkpoint was stored: submit the latest soon (never waits)."""
        if self.active and self.submits:
            self._wanted.set()

    async def witnessed_checkpoint(self) -> StoredCheckpoint | None:
        """The latest stored checkpoint whose cosigned note meets the quorum, its ``note``
        the cosigned one; with no policy (or quorum ``none``) the latest checkpoint."""
        policy = self.policy
        if policy is None or policy.quorum == NONE:
            latest = await self._store.latest_checkpoint()
            return None if latest is None else replace(latest, note=latest.cosigned or latest.note)
        for stored in await self._store.cosigned_checkpoints(WITNESSED_LOOKBACK):
            if stored.cosigned is not None and witnessed_note(policy, stored.cosigned):
                return replace(stored, note=stored.cosigned)
        return None

    # -- the background task -------------------------------------------------------------

    def start(self) -> None:
        """Start submitting in the background; the latest checkpoint at once (a restart
        shows the witnesses' view again)."""
        if self.active and self.submits:
            self._wanted.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run() if self.submits else self._observe())

    async def stop(self) -> None:
        """Stop the task; a checkpoint signed since the last submission (the final one of
        a clean stop) is submitted first, within the witnesses' timeout."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._wanted.is_set():
            self._wanted.clear()
            # Two requests per witness at most (the resend after a 409), then give up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.submit_latest(), timeout=2 * self._timeout + 1)

    async def _run(self) -> None:
        with contextlib.suppress(GatewayError):  # the first submission reads them again
            await self.load_alarms()
        while True:
            behind = self.active and self.quorum_met is False
            # Not only when this process signs one: the other workers of the host sign
            # checkpoints too and never submit, so the store is looked at every OBSERVE_S
            # (one read; nothing is sent while the latest is witnessed).
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that
            # meets the wake-up, and a stop then waited on this loop for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_s if behind else self._observe_s):
                    await self._wanted.wait()
            self._wanted.clear()
            await self.submit_latest()

    async def _observe(self) -> None:
        while True:
            if self.active:
                try:
                    await self.load_alarms()
                    await self._observe_quorum()
                except GatewayError as exc:
                    log.warning("witnessing state not read from the store: %s", exc.detail)
            await asyncio.sleep(self._observe_s)

    async def _observe_quorum(self) -> None:
        """`quorum_met` as the submitting process would say: False once the latest
        checkpoint has waited a retry period without meeting the quorum."""
        latest = await self._store.latest_checkpoint()
        witnessed = await self.witnessed_checkpoint()
        if witnessed is not None and self._metrics is not None:
            self._metrics.witnessed_at = witnessed.at
        if latest is None:
            return
        if witnessed is not None and witnessed.seq == latest.seq:
            self.quorum_met = True
        elif (self._clock() - latest.at).total_seconds() > self._retry_s:
            self.quorum_met = False

    async def submit_latest(self) -> Submitted | None:
        """Submit the latest stored checkpoint, unless it is already witnessed; a failure
        of the store or the log is logged (the next checkpoint or retry tries again)."""
        try:
            latest = await self._store.latest_checkpoint()
            if latest is None or (latest.seq == self._witnessed_seq and not self.alarms):
                return None
            return await self.submit(latest)
        except GatewayError as exc:
            self.quorum_met = False
            log.warning("checkpoint not submitted to the witnesses: %s", exc.detail)
        except Exception:  # a bug must not end the task that keeps the log witnessed
            self.quorum_met = False
            log.exception("checkpoint not submitted to the witnesses")
        return None

    # -- one submission ------------------------------------------------------------------

    async def submit(self, checkpoint: StoredCheckpoint) -> Submitted | None:
        """Submit ``checkpoint`` to every witness of the policy now and store what came of
        it (None when the policy names no witness). A witness that has seen another
        instance's newer stored checkpoint gets that one instead."""
        policy = self.policy
        if policy is None or not policy.witnesses:
            return None
        async with self._lock:
            await self.load_alarms()
            for _ in range(PEER_RESUBMITS + 1):
                known = {name: w.size for name, w in (await self._store.witness_sizes()).items()}
                result = await cosign_checkpoint(
                    self._session,
                    policy,
                    checkpoint.note,
                    checkpoint.size,
                    self._proof,
                    known,
                    timeout=self._timeout,
                )
                newer = await self._peer_checkpoint(checkpoint, result)
                if newer is None:
                    break
                await self._record(policy, checkpoint, result)
                log.info(
                    "a witness has cosigned checkpoint #%d of size %d stored by another "
                    "instance; submitting that one",
                    newer.seq,
                    newer.size,
                )
                checkpoint = newer
            submitted = await self._record(policy, checkpoint, result)
            await self._report(submitted)
            return submitted

    async def load_alarms(self) -> None:
        """Take the store's alarms as this runner's (a person may have cleared one, another
        instance raised one)."""
        kept = await self._store.witness_alarms()
        self.alarms = {
            a.witness: RollbackAlarm(a.witness, a.witness_size, a.log_size, a.reason) for a in kept
        }

    async def _keep_alarm(self, alarm: RollbackAlarm) -> None:
        self.alarms[alarm.witness] = alarm
        kept = WitnessAlarm(
            alarm.witness, alarm.witness_size, alarm.log_size, alarm.reason, self._clock()
        )
        await self._store.raise_witness_alarm(kept)

    async def _clear_alarm(self, cosigned: Cosigned) -> None:
        """The witness cosigned: the log extends what it had cosigned, its alarm is over."""
        alarm = self.alarms.pop(cosigned.witness, None)
        if alarm is None:
            return
        await self._store.clear_witness_alarm(cosigned.witness)
        log.warning(
            "rollback alarm of witness %s cleared: it cosigned the checkpoint of size %d, "
            "which extends the size %d it had cosigned (the log had %d when it was raised)",
            cosigned.witness,
            cosigned.size,
            alarm.witness_size,
            alarm.log_size,
        )

    async def _peer_checkpoint(
        self, checkpoint: StoredCheckpoint, result: Witnessing
    ) -> StoredCheckpoint | None:
        """The newer stored checkpoint that explains every alarm of ``result`` ahead of
        ``checkpoint`` (another instance's, already submitted), or None: a real alarm."""
        ahead = [a.witness_size for a in result.alarms if a.witness_size > checkpoint.size]
        if not ahead or len(ahead) != len(result.alarms):
            return None
        latest = await self._store.latest_checkpoint()
        if latest is None or latest.seq == checkpoint.seq or latest.size < max(ahead):
            return None
        return latest

    async def _record(
        self, policy: WitnessPolicy, checkpoint: StoredCheckpoint, result: Witnessing
    ) -> Submitted:
        stored = await self._store.checkpoint_by_seq(checkpoint.seq) if checkpoint.seq else None
        before = stored.cosigned if stored is not None else checkpoint.cosigned
        cosigned_note = merge_cosignatures(checkpoint.note, before, result.note)
        sizes = {name: c.size for name, c in result.cosigned.items()}
        changed = bool(result.cosigned) and checkpoint.seq > 0
        if changed:
            await self._store.record_witnessing(checkpoint.seq, cosigned_note, sizes, self._clock())
        return Submitted(
            replace(checkpoint, cosigned=cosigned_note if changed else before),
            result,
            cosigned_note,
            witnessed_note(policy, cosigned_note),
        )

    async def _report(self, submitted: Submitted) -> None:
        metrics = self._metrics
        for name, outcome in submitted.witnessing.outcomes.items():
            if isinstance(outcome, RollbackAlarm):
                await self._keep_alarm(outcome)
                log.error("ROLLBACK ALARM: %s", outcome.reason)
                if metrics is not None:
                    metrics.witness_rollback_alarms.labels(name).inc()
            elif isinstance(outcome, Cosigned):
                self.not_cosigned.pop(name, None)
                await self._clear_alarm(outcome)
                if metrics is not None:
                    metrics.witness_cosigned_size.labels(name).set(outcome.size)
            else:
                self.not_cosigned[name] = outcome.reason
                log.warning(
                    "witness %s did not cosign the checkpoint of size %d: %s",
                    name,
                    submitted.checkpoint.size,
                    outcome.reason,
                )
        for dropped in submitted.witnessing.dropped:
            log.warning(
                "witness %s answered a line that is not its cosignature: %s",
                dropped.witness,
                dropped.reason,
            )
        self.quorum_met = submitted.quorum_met
        if submitted.quorum_met:
            self._witnessed_seq = submitted.checkpoint.seq
            if metrics is not None:
                metrics.witnessed_at = submitted.checkpoint.at
        else:
            log.warning(
                "checkpoint of size %d is not witnessed yet: the quorum %s is not met",
                submitted.checkpoint.size,
                self.policy.quorum if self.policy else NONE,
            )

    # -- the policy ----------------------------------------------------------------------

    def reload_policy(self) -> bool:
        """Read the policy file again (SIGHUP); a bad one keeps the policy in force, with
        each problem logged as ``file:line``. Whether the new one is in force."""
        if self.policy_path is None:
            return False
        try:
            fresh = load_witness_policy(self.policy_path)
        except ConfigErrors as exc:
            for problem in exc.errors:
                log.error("witness policy not reloaded, the one in force stays: %s", problem)
            return False
        if fresh != self.policy:
            log.info("witness policy reloaded from %s (quorum %s)", self.policy_path, fresh.quorum)
            self.policy = fresh
            self._witnessed_seq = None
            if self.submits:
                self._wanted.set()
        return True


def witnessed_note(policy: WitnessPolicy, cosigned_note: str) -> bool:
    """Whether the cosignature lines on ``cosigned_note`` meet ``policy``'s quorum."""
    try:
        text, lines = split_note(cosigned_note)
        found = cosigners(lines, text, policy.witness_keys())
    except CheckpointError:
        return False
    return policy.satisfied_by(found)


def merge_cosignatures(note: str, *cosigned: str | None) -> str:
    """``note`` with the cosignature lines of each cosigned version of it appended, one
    per key (a later version's line replaces an earlier one's): a witness unreachable on
    the second submission keeps the cosignature it gave on the first."""
    lines: dict[tuple[str, bytes], str] = {}
    for text in cosigned:
        if text is None or not text.startswith(note):
            continue
        for line in text[len(note) :].splitlines():
            try:
                parsed = parse_signature_line(line)
            except CheckpointError:
                continue
            lines[(parsed.name, parsed.key_id)] = line + "\n"
    return note + "".join(lines.values())
