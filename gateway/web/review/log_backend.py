"""The review page's port implemented over the store and the disclosure log.

Subject lookups go through the log's period keys; entry checks through the
log's inclusion proofs and signed checkpoints; the integrity status is the
result of the last full audit, run in the background at start and then
periodically; the emergency queue is the vital/public-interest intents
without a justification (policy III.3), the justifications kept in the store.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from datetime import datetime

from gateway import vocabulary as v
from gateway.crypto.subject_keys import LogKeys
from gateway.errors import ConflictError, GatewayError, NotFoundError
from gateway.log import search
from gateway.log.actions import ActionLog, Person, check_action_texts, target
from gateway.log.audit import SERVING_READ_CHUNK, audit_in_worker, audit_store
from gateway.log.audit_pool import PARALLEL_FROM, Opener
from gateway.log.columns import checked_disclosure, checked_search
from gateway.log.service import EntryCheck, LogService
from gateway.store.base import Store
from gateway.store.records import MAX_SEARCH_LIMIT, JustificationRecord, LogQuery
from gateway.web.review.backend import (
    IntegrityStatus,
    Justification,
    QueueItem,
)

log = logging.getLogger("gateway.review")

AUDIT_EVERY_S = 900.0


class LogReviewBackend:
    def __init__(
        self,
        store: Store,
        log_service: LogService,
        log_keys: LogKeys,
        clock: Callable[[], datetime],
        actions: ActionLog | None = None,
        opener: Opener | None = None,
    ) -> None:
        self._store = store
        # Opens the same store in a worker process, which audits a long log.
        self._opener = opener
        self._log = log_service
        self._keys = log_keys
        self._clock = clock
        self._actions = actions or ActionLog(log_service.append, log_keys, clock)
        self._verified_at: datetime | None = None
        self._ok: bool | None = None
        self._detail = "not verified yet since this instance started"

    async def subject_refs(self, subject: str) -> list[str]:
        return await search.subject_refs(self._store, self._keys, subject, until=self._clock())

    async def verify_entry(self, index: int) -> EntryCheck:
        return await self._log.check_entry(index)

    async def audit(self) -> None:
        """Recompute the whole log and every checkpoint; remember the result."""
        signer = self._log.signer
        # This runs beside the requests this process serves: a long log is audited in a
        # process of its own; a short one here, in small pages (starting the worker costs
        # more than it saves).
        if self._opener is not None and await self._store.log_size() >= PARALLEL_FROM:
            report = await audit_in_worker(self._opener, signer.verifier_keys, signer.name)
        else:
            report = await audit_store(
                self._store, signer.verifier_keys, signer.name, chunk=SERVING_READ_CHUNK
            )
        # The tables' free text against the hashes in their action entries, as `log verify`.
        texts = await check_action_texts(self._store, self._keys)
        self._verified_at = self._clock()
        self._ok = report.ok and not texts.problems
        first = report.first_bad
        if first is not None:
            self._detail = f"{first.message} (from index {first.start})"
        elif texts.problems:
            self._detail = texts.problems[0][1]
        else:
            self._detail = (
                f"recomputed {report.entries} entries and {report.checkpoints} checkpoints; "
                f"{texts.summary()}"
            )
        if not report.ok:
            log.error("log audit failed: %s", self._detail)

    async def audit_periodically(self, every_s: float = AUDIT_EVERY_S) -> None:
        while True:
            try:
                await self.audit()
            except GatewayError as exc:
                self._detail = f"the last verification could not run: {exc.detail}"
            await asyncio.sleep(every_s)

    async def integrity(self) -> IntegrityStatus:
        size = await self._store.log_size()
        latest = await self._store.latest_checkpoint()
        root = None
        if latest is not None:
            try:
                root = base64.b64encode(self._log.signer.open(latest.note).root).decode()
            except ValueError as exc:
                return IntegrityStatus(
                    size,
                    latest.size,
                    latest.at,
                    None,
                    latest.note,
                    self._clock(),
                    False,
                    f"the latest checkpoint does not verify: {exc}",
                )
        return IntegrityStatus(
            log_size=size,
            checkpoint_size=latest.size if latest else None,
            checkpoint_at=latest.at if latest else None,
            root_hash=root,
            checkpoint_note=latest.note if latest else None,
            verified_at=self._verified_at,
            ok=self._ok,
            detail=self._detail,
        )

    async def _emergency_intents(self) -> list[QueueItem]:
        items: list[QueueItem] = []
        for basis in sorted(v.BASES_NEEDING_REVIEW):
            query = LogQuery(kind="intent", legal_basis=basis, limit=MAX_SEARCH_LIMIT)
            while rows := await checked_search(self._store, query):
                items.extend(QueueItem.from_intent(entry) for entry in rows if entry.needs_review)
                query = query.after(rows[-1].index)
        return sorted(items, key=lambda item: item.index)

    async def review_queue(self) -> list[QueueItem]:
        items = await self._emergency_intents()
        done = await self._store.justified([item.disclosure_id for item in items])
        return [item for item in items if item.disclosure_id not in done]

    async def justification(self, disclosure_id: str) -> Justification | None:
        record = await self._store.get_justification(disclosure_id)
        if record is None:
            return None
        return Justification(record.disclosure_id, record.reviewer_id, record.text, record.at)

    async def justify(
        self, disclosure_id: str, reviewer_id: str, text: str, credential: str = ""
    ) -> Justification:
        rows = await checked_disclosure(self._store, disclosure_id)
        if not any(e.kind == "intent" and e.needs_review for e in rows):
            raise NotFoundError("no emergency disclosure with this id awaits review")
        if await self._store.get_justification(disclosure_id) is not None:
            raise ConflictError("this disclosure has already been justified")
        record = JustificationRecord(disclosure_id, reviewer_id, text, self._clock())
        # The log first (gateway.log.actions): a justification never exists without its entry.
        await self._actions.record(
            Person(reviewer_id, credential or f"password:{reviewer_id}"),
            "justify",
            at=record.at,
            target=target("disclosure", disclosure_id),
            disclosure_id=disclosure_id,
            text=text,
        )
        if not await self._store.add_justification(record):
            raise ConflictError("this disclosure has already been justified")
        log.info("emergency disclosure justified", extra={"disclosure_id": disclosure_id})
        return Justification(disclosure_id, reviewer_id, text, record.at)
