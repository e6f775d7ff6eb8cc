"""The storage port: :class:`Store`, the union of the narrow ports.

Everything durable — consents, restrictions and dates of birth, lawful requests and
their approvals, idempotency keys, partner suspensions and their history, the
disclosure log's rows and its checkpoints — goes through :class:`Store`. One adapter
per backend implements it (``gateway.store.sqlite``, ``gateway.store.postgres``). A
consumer that needs one concern names its narrow port (``gateway.store.ports``); the
records and their rules live in ``gateway.store.records``, where their users import
them from. Storage never hashes: the Merkle tree and the checkpoint signatures are
computed elsewhere and stored here as opaque bytes and text.
"""

from __future__ import annotations

from typing import Protocol

from gateway.store.ports import (
    CheckpointStore,
    ConsentLapseStore,
    ExposureStore,
    IdempotencyStore,
    InstanceStore,
    JustificationStore,
    LawfulRequestStore,
    LogAuditStore,
    LogRollupStore,
    LogRowStore,
    LogSummaryStore,
    NoticeOutboxStore,
    PersonalTokenStore,
    ProtectedValueStore,
    ReviewSessionStore,
    RopaStore,
    StoreLifecycle,
    SubjectStore,
    SuspensionStore,
    TreeNodeStore,
    WitnessStateStore,
)

__all__ = ["Store"]


class Store(
    StoreLifecycle,
    SubjectStore,
    ConsentLapseStore,
    ProtectedValueStore,
    LawfulRequestStore,
    JustificationStore,
    SuspensionStore,
    IdempotencyStore,
    LogRowStore,
    LogSummaryStore,
    LogRollupStore,
    LogAuditStore,
    ExposureStore,
    RopaStore,
    TreeNodeStore,
    CheckpointStore,
    WitnessStateStore,
    InstanceStore,
    NoticeOutboxStore,
    PersonalTokenStore,
    ReviewSessionStore,
    Protocol,
):
    """The whole storage port, every concern's: what an adapter implements."""
