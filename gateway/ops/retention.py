"""Retention: the rows that would otherwise only grow, pruned by the recovery sweep.

Each rule is a promise of the README (operations: retention) and CONTRACT §4.1:

- **instances**: a gateway process leaves a row in ``instances`` at every start. Once it
  stopped cleanly (retired) or was recovered by another instance (its interrupted
  disclosures marked `unknown`), the row only records that it existed; it is deleted
  ``[retention] instances_days`` after that (7 by default). A row with no
  ``recovered_at`` — an instance alive, or dead but not recovered yet — is never deleted,
  whatever its age. The row the schema-4 migration adds for intents older than instance
  ids is one like the others: recovered by the first sweep, then deleted in its turn (an
  intent of it still without outcome would give it a row again: `adopt_instances`).
- **idempotency keys**: a completed key is deleted ``[retention] idempotency_hours`` (24 by
  default) after its first request, the window in which a repeat gets the first answer.
  A key in progress is never deleted (one a crash left in progress keeps refusing a
  retry with 409: the partner may have the data, and only a new key sends again).
- **review sessions**: a session's row (schema 15) is deleted once its cookie has expired,
  ended or not: an expired cookie opens nothing whether its row is there or not.
- **sent notices**: a notice a partner accepted is deleted from the outbox ``[retention]
  sent_notices_days`` (30 by default) after its delivery. Its intent and outcome stay in the
  log; the row only served its retries. A pending or failed notice is never deleted.
- **checkpoints** and the **disclosure log** are kept forever: they are the evidence.

The sweep runs in :class:`~gateway.log.recovery.Recovery`'s periodic sweep, after the
recovery of dead instances, at most every :data:`PRUNE_EVERY_S`; every instance runs it
(the deletes are idempotent, so two at once only find less to delete). What it deleted
is counted in ``gateway_retention_pruned_rows_total{table}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from gateway.clock import utc_now
from gateway.config.model import RetentionConfig

__all__ = ["PRUNE_EVERY_S", "Pruned", "Retention", "RetentionStore"]

log = logging.getLogger("gateway.ops.retention")

# Rows become prunable after days or hours: looking every ten minutes is plenty, and
# costs an instance two small deletes.
PRUNE_EVERY_S: Final = 600.0


class RetentionStore(Protocol):
    """What the sweep deletes through (the store's instance, idempotency, session and
    outbox ports)."""

    async def prune_instances(self, recovered_before: datetime) -> int: ...
    async def prune_idempotency_keys(self, claimed_before: datetime) -> int: ...
    async def prune_expired_review_sessions(self, now: datetime) -> int: ...
    async def prune_sent_notices(self, done_before: datetime) -> int: ...


class PrunedCounter(Protocol):
    """Where the counts go (gateway.observe.metrics.Metrics.pruned)."""

    def pruned(self, table: str, rows: int) -> None: ...


@dataclass(frozen=True)
class Pruned:
    """The rows one sweep deleted, by table."""

    instances: int
    idempotency_keys: int
    review_sessions: int = 0
    sent_notices: int = 0


class Retention:
    """The retention rules of one instance; :meth:`prune_if_due` is the sweep's hook."""

    def __init__(
        self,
        store: RetentionStore,
        rules: RetentionConfig,
        *,
        counter: PrunedCounter | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        every_s: float = PRUNE_EVERY_S,
    ) -> None:
        self._store = store
        self.rules = rules
        self._counter = counter
        self._clock = clock
        self._monotonic = monotonic
        self._every_s = every_s
        self._last: float | None = None

    async def prune(self) -> Pruned:
        """Delete what the rules no longer keep, now. Raises the store's error."""
        now = self._clock()
        pruned = Pruned(
            instances=await self._store.prune_instances(now - self.rules.instances),
            idempotency_keys=await self._store.prune_idempotency_keys(
                now - self.rules.idempotency_keys
            ),
            review_sessions=await self._store.prune_expired_review_sessions(now),
            sent_notices=await self._store.prune_sent_notices(now - self.rules.sent_notices),
        )
        counts = {
            "instances": pruned.instances,
            "idempotency_keys": pruned.idempotency_keys,
            "review_sessions": pruned.review_sessions,
            "sent_notices": pruned.sent_notices,
        }
        if self._counter is not None:
            for table, rows in counts.items():
                self._counter.pruned(table, rows)
        if any(counts.values()):
            log.info(
                "retention: deleted %s",
                ", ".join(f"{rows} {table}" for table, rows in counts.items() if rows),
            )
        return pruned

    async def prune_if_due(self) -> Pruned | None:
        """`prune()` when the last one is `every_s` old (or there was none); else None.

        A failed prune is tried again at the next call."""
        now = self._monotonic()
        if self._last is not None and now - self._last < self._every_s:
            return None
        pruned = await self.prune()
        self._last = now
        return pruned
