"""Crash recovery for several gateway instances on one log: each instance's in-flight
disclosures are its own, and only a dead instance's are marked `unknown` (CONTRACT §5).

An intent without an outcome means one of three things, and only the first is a crash:

- its instance died between the intent and the outcome: the partner may or may not
  have the data, so a reviewer must see `unknown`;
- its instance is alive and still delivering (retries can take a while): hands off;
- its instance is alive but could not write the outcome (the database went away
  after the partner answered): the instance still knows the outcome and writes it
  when the database is back.

So every process is an *instance* with an id, recorded in each intent entry it writes
(field ``instance``), and a row in the store's ``instances`` table whose heartbeat it
refreshes every third of ``[log] instance_timeout_s``. A periodic sweep in every
instance claims the instances silent for longer than that (atomically: one live
instance recovers a dead one) and gives their intents without outcome an `unknown`
outcome. A restarted process is a new instance, so the old one is recovered like any
other dead one, once its heartbeat is stale.

Staleness is judged on the store's clock, and an instance judges others only after its
own heartbeats have succeeded without a break for a full timeout: when the database
itself was down, every heartbeat is old, and the instance that reconnects first must
not take its live peers for dead. An instance that was presumed dead anyway (stalled
longer than the timeout) learns it at its next heartbeat, says so loudly, and
registers again; its late outcomes then follow the `unknown` ones in the log.

:class:`InFlightLog` is the log as the pipeline of one instance sees it: it stamps the
instance on intents, knows which disclosures are in flight, keeps outcome and refusal
entries that could not be written, and remembers intents whose append failed (the
store may have committed one before failing to answer; nothing was sent for it, so it
gets a `failed` outcome with ``maybe_received: false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

from gateway.clock import utc_now
from gateway.errors import GatewayError
from gateway.log.entries import outcome_entry, refused_for_intent
from gateway.log.record import EntryRecord
from gateway.store.records import LEGACY_INSTANCE, LogEntry

__all__ = [
    "INSTANCE_FIELD",
    "Appender",
    "InFlightLog",
    "Recovery",
    "RecoveryStore",
    "new_instance_id",
]

log = logging.getLogger("gateway.log.recovery")

INSTANCE_FIELD: Final = "instance"
HEARTBEATS_PER_TIMEOUT: Final = 3


def new_instance_id() -> str:
    """A fresh id for this process: never reused, so a restart is a new instance."""
    return f"i-{uuid.uuid4().hex}"


class Appender(Protocol):
    """Where entries go (gateway.log.service.LogService); raises GatewayError on failure."""

    async def append(self, entry: Mapping[str, Any]) -> int: ...
    def append_later(self, entry: Mapping[str, Any]) -> asyncio.Future[int]: ...
    async def settle(self) -> None: ...


class RecoveryStore(Protocol):
    """What recovery needs from the storage port (gateway.store.base.Store has it all)."""

    async def register_instance(self, instance_id: str, host: str, pid: int) -> None: ...
    async def heartbeat_instance(self, instance_id: str) -> bool: ...
    async def claim_stale_instances(self, claimer: str, timeout_s: float) -> list[str]: ...
    async def adopt_instances(self, instance_ids: Sequence[str]) -> None: ...
    async def finish_recovery(self, instance_ids: Sequence[str], claimer: str) -> None: ...
    async def retire_instance(self, instance_id: str) -> None: ...
    async def intents_without_outcome(self) -> list[LogEntry]: ...
    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]: ...


class InFlightLog:
    """The disclosure log of one instance (the pipeline's `DisclosureLog`); see the module doc.

    `in_flight` maps the id of each disclosure whose intent is durable and whose outcome
    is not appended yet to its partner; `backlog` holds the outcome and refusal entries
    whose append failed, oldest first; `unsure` maps the ids of intents whose append
    failed to the intent. :class:`Recovery` settles the last two when the store is back.
    """

    def __init__(self, log: Appender, instance_id: str) -> None:
        self._log = log
        self.instance_id = instance_id
        self.in_flight: dict[str, str] = {}
        self.backlog: deque[Mapping[str, Any]] = deque()
        self.unsure: dict[str, Mapping[str, Any]] = {}
        self._queued: set[asyncio.Future[int]] = set()

    async def append(self, entry: Mapping[str, Any]) -> int:
        """Append `entry`; its index once durable. Raises the store's error, after keeping
        what must still be written."""
        disclosure_id = str(entry["disclosure_id"])
        partner = str(entry.get("partner"))
        if entry.get("kind") == "intent":
            if INSTANCE_FIELD not in entry:
                entry = {**entry, INSTANCE_FIELD: self.instance_id}
            try:
                index = await self._log.append(entry)
            except GatewayError:
                self.unsure[disclosure_id] = entry
                raise
            self.in_flight[disclosure_id] = partner
            return index
        if entry.get("kind") == "outcome":
            self.in_flight.pop(disclosure_id, None)
        try:
            return await self._log.append(entry)
        except GatewayError:
            self._keep(entry)
            raise

    def _keep(self, entry: Mapping[str, Any]) -> None:
        # Something was sent (outcome) or decided (refusal): the entry must not be lost
        # with the connection. Its time stays the time it happened.
        self.backlog.append(dict(entry))
        log.warning(
            "%s entry kept until the log can be written again",
            entry.get("kind"),
            extra={"disclosure_id": entry.get("disclosure_id")},
        )

    def append_later(self, entry: Mapping[str, Any]) -> None:
        """Queue an outcome or refusal entry for the next commit without waiting for it.

        It records what already happened, and the caller's answer does not depend on
        it: the answer goes out while the entry waits for the next commit (the next
        intent's, or its own after ``LogWriter``'s linger). If the commit fails, the entry
        is kept in `backlog`, as `append` keeps it; if the process dies first, the
        intent has no outcome and recovery marks it `unknown`.
        """
        if entry.get("kind") == "intent":
            raise ValueError("an intent must be durable before sending: use append()")
        if entry.get("kind") == "outcome":
            self.in_flight.pop(str(entry["disclosure_id"]), None)
        future = self._log.append_later(entry)
        self._queued.add(future)
        future.add_done_callback(functools.partial(self._committed, entry))

    def _committed(self, entry: Mapping[str, Any], future: asyncio.Future[int]) -> None:
        self._queued.discard(future)
        failure = None if future.cancelled() else future.exception()
        if future.cancelled() or isinstance(failure, GatewayError):
            self._keep(entry)
        elif failure is not None:
            log.error(
                "%s entry not written: %s",
                entry.get("kind"),
                failure.__class__.__name__,
                extra={"disclosure_id": entry.get("disclosure_id")},
            )

    async def settle(self) -> None:
        """Commit every entry queued by `append_later` now, and wait for it to commit or fail."""
        await self._log.settle()
        while self._queued:
            await asyncio.wait(set(self._queued))

    @property
    def settled(self) -> bool:
        """Nothing in flight, queued or left to write."""
        return not (self.in_flight or self.backlog or self.unsure or self._queued)


class Recovery:
    """This instance's registration, heartbeat and recovery sweep; see the module doc.

    `log` is what the pipeline must append through. `start()` registers the instance
    and begins the sweep; `stop()` ends it, writes what it can, marks disclosures
    still in flight (interrupted by the stop) `unknown`, and retires the instance.
    `housekeeping`, when given, runs after each round that judged dead peers (the
    composition root passes gateway.ops.retention's prune: an instance's row is deleted
    only once its recovery is recorded); its failure is logged, not raised.
    """

    def __init__(
        self,
        store: RecoveryStore,
        log: Appender,
        *,
        timeout_s: float = 15.0,
        instance_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        housekeeping: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._store = store
        self._writer = log
        self.timeout_s = timeout_s
        self.instance_id = instance_id or new_instance_id()
        self.log = InFlightLog(log, self.instance_id)
        self._clock = clock
        self._monotonic = monotonic
        self._alive_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        # Run after each round that recovered dead instances (gateway.ops.retention's
        # prune: rows are deleted only after their instance's recovery was recorded).
        self._housekeeping = housekeeping

    @property
    def interval_s(self) -> float:
        return self.timeout_s / HEARTBEATS_PER_TIMEOUT

    async def start(self, *, background: bool = True) -> None:
        """Register this instance and start sweeping every `interval_s` (unless
        `background` is False: then the owner calls `sweep()`). Raises the store's error
        (the gateway does not start on a store it cannot register in)."""
        await self._store.register_instance(self.instance_id, socket.gethostname(), os.getpid())
        self._alive_since = self._monotonic()
        # Intents without outcome whose instance the table does not track (it was
        # recovered, or wrote them before schema 4) get a row, so a sweep claims them.
        owners = {_owner(intent) for intent in await self._intents_without_outcome()}
        await self._store.adopt_instances(sorted(owners - {self.instance_id}))
        log.info("instance %s registered", self.instance_id)
        if background:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.log.settle()
        try:
            await self._write_kept()
            interrupted = dict(self.log.in_flight)
            await self._mark_unknown(interrupted)
            for disclosure_id in interrupted:
                self.log.in_flight.pop(disclosure_id, None)
            if self.log.settled:
                await self._store.retire_instance(self.instance_id)
                return
        except GatewayError as exc:
            log.error("stopping: %s", exc.detail)
        log.error(
            "instance %s stops with entries unwritten; another instance will mark its "
            "disclosures in flight unknown",
            self.instance_id,
        )

    async def sweep(self) -> list[str]:
        """One round: heartbeat, write what is pending, recover dead instances. Returns the
        disclosure ids marked `unknown`. Raises the store's error."""
        try:
            alive = await self._store.heartbeat_instance(self.instance_id)
        except GatewayError:
            self._alive_since = None
            raise
        now = self._monotonic()
        if not alive:
            log.error(
                "instance %s was presumed dead (no heartbeat for %.1f s) and its disclosures "
                "in flight were marked unknown; registering again",
                self.instance_id,
                self.timeout_s,
            )
            await self._store.register_instance(self.instance_id, socket.gethostname(), os.getpid())
            self._alive_since = now
        elif self._alive_since is None:
            self._alive_since = now
        await self._write_kept()
        if now - self._alive_since < self.timeout_s:
            return []  # not yet alive long enough to tell a dead peer from a lost database
        recovered = await self._recover_dead()
        if self._housekeeping is not None:
            try:
                await self._housekeeping()
            except GatewayError as exc:
                # The recovery above stands; housekeeping tries again next round.
                log.warning("recovery sweep housekeeping: %s", exc.detail)
        return recovered

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except GatewayError as exc:
                log.warning("recovery sweep: %s", exc.detail)

    async def _recover_dead(self) -> list[str]:
        claimed = await self._store.claim_stale_instances(self.instance_id, self.timeout_s)
        if not claimed:
            return []
        dead = set(claimed)
        orphans: dict[str, str] = {}
        for intent in await self._intents_without_outcome():
            if _owner(intent) in dead:
                orphans[intent.disclosure_id] = str(intent.partner)
        await self._mark_unknown(orphans)
        await self._store.finish_recovery(claimed, self.instance_id)
        if orphans:
            log.warning(
                "marked %d disclosure(s) of %d silent instance(s) as outcome unknown",
                len(orphans),
                len(claimed),
            )
        return sorted(orphans)

    async def _mark_unknown(self, disclosures: Mapping[str, str]) -> None:
        now = self._clock()
        # Together, so that group commit writes them in one transaction.
        await asyncio.gather(
            *(
                self._writer.append(
                    outcome_entry(
                        disclosure_id=disclosure_id,
                        outcome="unknown",
                        at=now,
                        partner=partner,
                        problem="interrupted",
                    )
                )
                for disclosure_id, partner in disclosures.items()
            )
        )

    async def _write_kept(self) -> None:
        """Write the entries kept while the store was away, then close unsure intents."""
        backlog = self.log.backlog
        while backlog:
            entry = backlog[0]
            # A failed append may still have committed (the answer to COMMIT was lost).
            if entry["kind"] not in await self._kinds_of(str(entry["disclosure_id"])):
                await self._writer.append(entry)
            backlog.popleft()
        for disclosure_id, intent in list(self.log.unsure.items()):
            kinds = await self._kinds_of(disclosure_id)
            partner = str(intent.get("partner"))
            if "intent" not in kinds and "refused" not in kinds:
                # The intent never committed: the caller was refused with log_unavailable,
                # and that refusal is recorded like any other.
                await self._writer.append(
                    refused_for_intent(intent, "log_unavailable", "the intent could not be logged")
                )
            elif "intent" in kinds and "outcome" not in kinds:
                # The intent committed though its append failed; the pipeline sent nothing.
                await self._writer.append(
                    outcome_entry(
                        disclosure_id=disclosure_id,
                        outcome="failed",
                        at=self._clock(),
                        partner=partner,
                        problem="log_unavailable",
                        maybe_received=False,
                    )
                )
            del self.log.unsure[disclosure_id]

    async def _kinds_of(self, disclosure_id: str) -> set[str | None]:
        rows = await self._store.log_entries_for_disclosure(disclosure_id)
        return {EntryRecord.parse(index, raw).kind for index, raw in rows}

    async def _intents_without_outcome(self) -> list[EntryRecord]:
        rows = await self._store.intents_without_outcome()
        return [EntryRecord.parse(index, raw) for index, raw in rows]


def _owner(intent: EntryRecord) -> str:
    """The instance that wrote an intent (intents before schema 4 name none)."""
    return intent.instance or LEGACY_INSTANCE
