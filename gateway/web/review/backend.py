"""What the review page needs beyond the store: the `ReviewBackend` port and its records.

The page reads the disclosure log and the lawful requests straight from
:class:`gateway.store.base.Store`. Four things live elsewhere and reach it through this
port, which the composition root implements and puts under :data:`REVIEW_BACKEND`:

- turning a subject id typed by a reviewer into the log's subject references (keyed
  HMACs; several when the log key changes by period);
- checking one entry's inclusion proof against the latest signed checkpoint;
- the log's integrity status (latest checkpoint, when it was verified, the result);
- the emergency queue: ``vital_interest``/``public_interest`` disclosures that stay
  ``needs_review`` until a reviewer records a justification.

Each method may raise :class:`gateway.errors.GatewayError` (``not_found``, ``conflict``,
``invalid_request``, ``log_unavailable``); the page shows its detail to the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from aiohttp import web

from gateway.log.record import EntryRecord
from gateway.log.service import EntryCheck

__all__ = [
    "OVERDUE_AFTER",
    "REVIEW_BACKEND",
    "IntegrityStatus",
    "Justification",
    "QueueItem",
    "ReviewBackend",
]

OVERDUE_AFTER: Final = timedelta(hours=72)
"""An emergency disclosure still without justification after this long is overdue."""


@dataclass(frozen=True)
class IntegrityStatus:
    """The log's integrity as last verified (`gateway log verify` or a periodic check)."""

    log_size: int
    checkpoint_size: int | None
    checkpoint_at: datetime | None
    root_hash: str | None  # base64, as in the checkpoint
    checkpoint_note: str | None  # the signed note, for checking offline with the log key
    verified_at: datetime | None  # None: never verified
    ok: bool | None  # None: never verified
    detail: str  # e.g. "recomputed 1 204 leaves and 17 checkpoints" or the first bad index


@dataclass(frozen=True)
class Justification:
    """A reviewer's recorded reason for an emergency disclosure."""

    disclosure_id: str
    reviewer_id: str
    text: str
    at: datetime


@dataclass(frozen=True)
class QueueItem:
    """One emergency disclosure awaiting a justification."""

    disclosure_id: str
    index: int  # of its intent entry
    time: datetime
    caller: str
    partner: str
    partner_category: str | None
    operation: str
    purpose: str
    legal_basis: str

    @classmethod
    def from_intent(cls, entry: EntryRecord) -> QueueItem:
        """The item for an intent entry."""
        return cls(
            disclosure_id=entry.disclosure_id,
            index=entry.index,
            time=entry.at,
            caller=str(entry.caller),
            partner=str(entry.partner),
            partner_category=entry.partner_category,
            operation=str(entry.operation),
            purpose=str(entry.purpose),
            legal_basis=str(entry.legal_basis),
        )

    def overdue(self, now: datetime) -> bool:
        return now - self.time > OVERDUE_AFTER


class ReviewBackend(Protocol):
    """The review page's port to the log keys, the proofs and the emergency queue."""

    async def subject_refs(self, subject: str) -> list[str]:
        """Every subject reference the log may hold for `subject` (one per key period)."""

    async def verify_entry(self, index: int) -> EntryCheck:
        """Check entry `index`'s inclusion proof against the latest signed checkpoint."""

    async def integrity(self) -> IntegrityStatus:
        """The latest checkpoint and the result of the last full verification."""

    async def review_queue(self) -> list[QueueItem]:
        """Emergency disclosures still awaiting a justification, oldest first."""

    async def justification(self, disclosure_id: str) -> Justification | None:
        """The justification recorded for a disclosure, if any."""

    async def justify(
        self, disclosure_id: str, reviewer_id: str, text: str, credential: str = ""
    ) -> Justification:
        """Record a justification; GatewayError not_found (not in the queue) or conflict
        (already justified). The act is first a `justify` entry of the log (by
        `reviewer_id`, proven by `credential`, the text as its keyed hash); if that entry
        cannot be written nothing is recorded (log_unavailable)."""


REVIEW_BACKEND: Final = web.AppKey("review_backend", ReviewBackend)
"""Where the composition root puts its ReviewBackend (root app or the review sub-app)."""
