"""The notice outbox: notices a partner did not accept within the delivery retries, tried
again on a growing schedule for days, across restarts and instances (schema 8).

Every notice (erasure, rectification, consent withdrawal) is first sent before the API
answers, as a disclosure of its own (gateway.rights.subjects). One that fails is kept here
(:meth:`NoticeOutbox.keep`) and attempted again by whichever instance claims it first: a
claim is a lease in the store (`claim_outbox_notice`), so two instances never attempt the
same notice at once, and an instance that dies mid-attempt only delays it by the lease.
Each attempt is again a disclosure with its own log entries, under the same reference, so
the partner can tell a repeat (CONTRACT §4.4). None is dropped: after the last attempt
of the schedule a notice stays `failed`, listed by `gateway notices list`, the review
page /review/notices and the `gateway_notices{status="failed"}` metric, until a person
retries it (`gateway notices retry`).

The schedule is pure (:func:`next_attempt_at`); the clock is injected, so a test moves
time instead of waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from gateway.log.actions import ActionLog, Person, target
from gateway.store.ports import NoticeOutboxStore
from gateway.store.records import OutboxNotice

log = logging.getLogger(__name__)

# Seconds from one failed attempt to the next: 1 min, 5 min, 30 min, 2 h, 6 h, then every
# 12 h (the last step repeats) until MAX_AGE after the first attempt.
DEFAULT_SCHEDULE_S: Final = (60, 300, 1800, 7200, 21600, 43200)
DEFAULT_MAX_AGE: Final = timedelta(days=7)
# How long an instance holds a claimed notice: longer than one send with its retries.
DEFAULT_LEASE: Final = timedelta(minutes=5)


def next_attempt_at(
    created_at: datetime,
    attempts: int,
    now: datetime,
    schedule_s: Sequence[float] = DEFAULT_SCHEDULE_S,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> datetime | None:
    """When the attempt after `attempts` failed ones is due (the delay grows with each,
    its last step repeating); None when that would be later than `max_age` after
    `created_at`: the notice is given up (`failed`, still shown)."""
    if attempts < 1 or not schedule_s:
        raise ValueError("attempts counts failed attempts (at least 1); the schedule needs a step")
    delay = schedule_s[min(attempts, len(schedule_s)) - 1]
    due = now + timedelta(seconds=delay)
    return None if due > created_at + max_age else due


@dataclass(frozen=True)
class Attempted:
    """What one attempt became: accepted by the partner, or why not (a problem code or the
    partner's status, never a personal value)."""

    ok: bool
    disclosure_id: str | None = None
    error: str = ""


class PayloadSealer(Protocol):
    """The at-rest sealing of a payload (gateway.store.protected.PayloadSealing)."""

    def seal_payload(self, text: str) -> str: ...
    def open_payload(self, text: str) -> str: ...


# One attempt of a kept notice: its row and its opened payload → what became of it.
Send = Callable[[OutboxNotice, Mapping[str, Any]], Awaitable[Attempted]]


@dataclass
class NoticeOutbox:
    """The notices kept for later attempts, and the attempts themselves."""

    store: NoticeOutboxStore
    sealer: PayloadSealer  # gateway.store.protected.payload_sealing: payloads sealed at rest
    clock: Callable[[], datetime]
    send: Send | None = None  # set by the composition root once the gateway is built
    schedule_s: Sequence[float] = DEFAULT_SCHEDULE_S
    max_age: timedelta = DEFAULT_MAX_AGE
    lease: timedelta = DEFAULT_LEASE
    owner: str = field(default_factory=lambda: f"outbox-{uuid.uuid4().hex[:12]}")
    # Told the counts per status after each round (the `gateway_notices` gauge).
    report: Callable[[Mapping[str, int]], None] | None = None

    async def keep(
        self,
        *,
        kind: str,
        partner: str,
        operation: str,
        reference: str,
        payload: Mapping[str, Any],
        first: Attempted,
        notice_id: str | None = None,
    ) -> OutboxNotice:
        """Store a notice whose first attempt (made before the API answered) failed.
        `notice_id`: one derived from what the notice is about (a second keep of it is a
        ConflictError), else a new one."""
        now = self.clock()
        due = next_attempt_at(now, 1, now, self.schedule_s, self.max_age)
        notice = OutboxNotice(
            id=notice_id or f"n-{uuid.uuid4()}",
            kind=kind,
            partner=partner,
            operation=operation,
            reference=reference,
            payload=self.sealer.seal_payload(json.dumps(dict(payload), sort_keys=True)),
            status="pending" if due is not None else "failed",
            attempts=1,
            created_at=now,
            next_at=due or now,
            last_error=first.error[:200],
            disclosure_id=first.disclosure_id or "",
            done_at=None if due is not None else now,
        )
        await self.store.add_outbox_notice(notice)
        log.warning(
            "notice %s to partner %s kept in the outbox (%s)", notice.id, partner, notice.last_error
        )
        return notice

    async def queue(
        self,
        *,
        notice_id: str,
        kind: str,
        partner: str,
        operation: str,
        reference: str,
        payload: Mapping[str, Any],
    ) -> OutboxNotice:
        """Store a notice not attempted yet, due now: the next round sends it (a lapse at
        start-up queues its notices so that start-up never waits on a partner). A second
        queue of `notice_id` is a ConflictError: queued once, across instances."""
        now = self.clock()
        notice = OutboxNotice(
            id=notice_id,
            kind=kind,
            partner=partner,
            operation=operation,
            reference=reference,
            payload=self.sealer.seal_payload(json.dumps(dict(payload), sort_keys=True)),
            status="pending",
            attempts=0,
            created_at=now,
            next_at=now,
            last_error="",
            disclosure_id="",
            done_at=None,
        )
        await self.store.add_outbox_notice(notice)
        return notice

    async def run_due(self) -> list[OutboxNotice]:
        """Attempt every pending notice that is due and not leased by another instance."""
        now = self.clock()
        pending = await self.store.outbox_notices(("pending",))
        return await self._attempt_all(n.id for n in pending if n.next_at <= now)

    async def retry(self, ids: Iterable[str] | None = None) -> list[OutboxNotice]:
        """Attempt now, due or not, the notices `ids` (None: every pending and failed one);
        a failed one is pending again first. What became of each."""
        if ids is None:
            ids = [n.id for n in await self.store.outbox_notices(("pending", "failed"))]
        return await self._attempt_all(ids, due_only=False)

    async def _attempt_all(
        self, ids: Iterable[str], *, due_only: bool = True
    ) -> list[OutboxNotice]:
        done: list[OutboxNotice] = []
        for notice_id in ids:
            result = await self._attempt_one(notice_id, due_only=due_only)
            if result is not None:
                done.append(result)
        return done

    async def _attempt_one(self, notice_id: str, *, due_only: bool) -> OutboxNotice | None:
        now = self.clock()
        if not due_only:
            await self._reopen(notice_id)
        claimed = await self.store.claim_outbox_notice(
            notice_id, self.owner, now, now + self.lease, due_only=due_only
        )
        if claimed is None:  # another instance has it, or it is not pending (or not due)
            return None
        if self.send is None:
            raise RuntimeError("the outbox has no sender: the gateway is not built yet")
        try:
            # Inside: a payload that no longer opens (its key deleted) is a failed
            # attempt of this notice, kept and shown, not a stop of the whole round.
            payload = json.loads(self.sealer.open_payload(claimed.payload))
            attempted = await self.send(claimed, payload)
        except Exception as exc:  # an attempt that broke is a failed attempt, kept
            log.exception("outbox notice %s: the attempt failed", claimed.id)
            attempted = Attempted(False, error=type(exc).__name__)
        finished = self._after(claimed, attempted, self.clock())
        if not await self.store.finish_outbox_attempt(finished, self.owner):
            log.warning("outbox notice %s: lease lost before its result was stored", claimed.id)
        return finished

    async def _reopen(self, notice_id: str) -> None:
        """A person's retry of a `failed` notice makes it pending again (it keeps its
        attempts; its schedule restarts from now)."""
        notice = await self.store.outbox_notice(notice_id)
        if notice is None or notice.status != "failed":
            return
        # A failed notice holds no lease (its owner is ""): the write needs none.
        reopened = replace(notice, status="pending", next_at=self.clock(), done_at=None)
        await self.store.finish_outbox_attempt(reopened, notice.lease_owner)

    def _after(self, claimed: OutboxNotice, attempted: Attempted, now: datetime) -> OutboxNotice:
        attempts = claimed.attempts + 1
        disclosure_id = attempted.disclosure_id or claimed.disclosure_id
        if attempted.ok:
            return replace(
                claimed,
                status="sent",
                attempts=attempts,
                disclosure_id=disclosure_id,
                last_error="",
                done_at=now,
            )
        due = next_attempt_at(claimed.created_at, attempts, now, self.schedule_s, self.max_age)
        return replace(
            claimed,
            status="pending" if due is not None else "failed",
            attempts=attempts,
            next_at=due or now,
            disclosure_id=disclosure_id,
            last_error=attempted.error[:200],
            done_at=None if due is not None else now,
        )

    async def run_periodically(self, interval_s: float = 30.0) -> None:
        """The background loop of `gateway serve`: due notices every `interval_s`."""
        while True:
            # Waits first: an instance started for one command (`gateway notices retry`)
            # sends only what the command asks.
            await asyncio.sleep(interval_s)
            try:
                await self.run_due()
                if self.report is not None:
                    self.report(await self.counts())
            except Exception:  # the store away: try again next round, nothing is lost
                log.exception("the notice outbox could not be run")

    async def counts(self) -> dict[str, int]:
        """Notices per status (the metrics and the review page)."""
        found: dict[str, int] = {"pending": 0, "sent": 0, "failed": 0}
        for notice in await self.store.outbox_notices():
            found[notice.status] = found.get(notice.status, 0) + 1
        return found


async def retry_as(
    outbox: NoticeOutbox, actions: ActionLog, who: Person, notices: Iterable[OutboxNotice]
) -> list[OutboxNotice]:
    """A person's retry (`gateway notices retry`, the review page's Retry buttons): each
    notice not accepted yet is first an `action` entry `retry_notice` by `who`, then sent
    now. What became of each (a notice another instance is sending now is left out)."""
    waiting = [n for n in notices if n.status != "sent"]
    for notice in waiting:
        await actions.record(
            who, "retry_notice", target=target("notice", notice.id), partner=notice.partner
        )
    return await outbox.retry([n.id for n in waiting])


# The members of outbox_json a listing shows, in order: `gateway notices list`'s columns and
# the review site's notices CSV.
LISTED_MEMBERS = (
    "id",
    "kind",
    "partner",
    "operation",
    "reference",
    "status",
    "attempts",
    "age_s",
    "next_at",
    "last_error",
)


def outbox_json(notice: OutboxNotice, now: datetime) -> dict[str, Any]:
    """A notice as `gateway notices list` and the review page show it: no payload."""
    return {
        "id": notice.id,
        "kind": notice.kind,
        "partner": notice.partner,
        "operation": notice.operation,
        "reference": notice.reference,
        "status": notice.status,
        "attempts": notice.attempts,
        "created_at": notice.created_at.isoformat(),
        "age_s": int((now - notice.created_at).total_seconds()),
        "next_at": notice.next_at.isoformat() if notice.status == "pending" else None,
        "last_error": notice.last_error,
        "disclosure_id": notice.disclosure_id,
    }
