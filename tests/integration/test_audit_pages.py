"""The audit in pages of any size finds the same (gateway.log.audit): the review site's
periodic audit runs beside the requests of its process, in small pages, and `gateway log
verify` in large ones (`make soak` saw a 20,000-row page stall requests for seconds)."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.log import sent_rows

from gateway.log.audit import READ_CHUNK, SERVING_READ_CHUNK, audit_store
from gateway.log.service import LogService, LogSigner
from gateway.store import Store
from gateway.store.records import StoredLogRow

ORIGIN = "gateway.test/disclosures"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SIGNER = LogSigner(ORIGIN, Ed25519PrivateKey.generate())


class Pages:
    """The store, recording the size of each page the audit asks for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.limits: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def read_log_rows(self, start: int, limit: int) -> list[StoredLogRow]:
        self.limits.append(limit)
        return await self.store.read_log_rows(start, limit)


async def test_small_pages_and_large_ones_give_the_same_report(store: Store) -> None:
    service = LogService(store, SIGNER, clock=lambda: T0)
    try:
        await service.append_rows(sent_rows(0, 300, T0))
        await service.checkpoint()
        await service.append_rows(sent_rows(300, 700, T0))
        await service.checkpoint()
    finally:
        await service.stop(final_checkpoint=False)

    large, small = Pages(store), Pages(store)
    whole = await audit_store(large, SIGNER.verifier_key, ORIGIN)  # type: ignore[arg-type]
    paged = await audit_store(small, SIGNER.verifier_key, ORIGIN, chunk=64)  # type: ignore[arg-type]
    assert whole.ok and paged.ok, (whole.problems, paged.problems)
    assert (paged.entries, paged.checkpoints, paged.root) == (700, 2, whole.root)
    assert set(large.limits) == {READ_CHUNK}
    assert set(small.limits) == {64} and len(small.limits) == 12  # 11 pages and the empty one
    assert SERVING_READ_CHUNK < READ_CHUNK
