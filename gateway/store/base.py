"""The storage port: :class:`Store`, the union of the narrow ports, and its records.

Everything durable — consents, restrictions and dates of birth, lawful requests and
their approvals, idempotency keys, partner suspensions and their history, the
disclosure log's rows and its checkpoints — goes through :class:`Store`. One adapter
per backend implements it (``gateway.store.sqlite``, ``gateway.store.postgres``). A
consumer that needs one concern names its narrow port (``gateway.store.ports``); the
records and their rules live in ``gateway.store.records`` and are re-exported here, so
the rest of the gateway and its tests import the port from one place. Storage never
hashes: the Merkle tree and the checkpoint signatures are computed elsewhere and stored
here as opaque bytes and text.
"""

from __future__ import annotations

from typing import Protocol

from gateway.partners.model import SuspensionEvent
from gateway.store.ports import (
    CheckpointStore,
    IdempotencyStore,
    InstanceStore,
    JustificationStore,
    LawfulRequestStore,
    LogAuditStore,
    LogRowStore,
    ProtectedValueStore,
    StoreLifecycle,
    SubjectStore,
    SuspensionStore,
    TreeNodeStore,
)
from gateway.store.records import (
    DEFAULT_SEARCH_LIMIT,
    LEAF_HASH_SIZE,
    LEGACY_INSTANCE,
    LEGAL_REQUEST_STATUSES,
    MAX_SEARCH_LIMIT,
    PROTECTED_COLUMNS,
    REQUIRED_APPROVALS,
    Approval,
    IdempotencyClaim,
    InstanceRecord,
    JustificationRecord,
    LegalRequestRecord,
    LogColumns,
    LogEntry,
    LogQuery,
    LogRecord,
    LogRow,
    Migration,
    StoredCheckpoint,
    StoredLogRow,
    StoredResponse,
    StoreUnavailable,
    TreeHash,
    check_search_limit,
    facts_of,
    legal_request_status,
    protected_column,
    require_aware,
)

__all__ = [
    "DEFAULT_SEARCH_LIMIT",
    "LEAF_HASH_SIZE",
    "LEGACY_INSTANCE",
    "LEGAL_REQUEST_STATUSES",
    "MAX_SEARCH_LIMIT",
    "PROTECTED_COLUMNS",
    "REQUIRED_APPROVALS",
    "Approval",
    "IdempotencyClaim",
    "InstanceRecord",
    "JustificationRecord",
    "LegalRequestRecord",
    "LogColumns",
    "LogEntry",
    "LogQuery",
    "LogRecord",
    "LogRow",
    "Migration",
    "Store",
    "StoreUnavailable",
    "StoredCheckpoint",
    "StoredLogRow",
    "StoredResponse",
    "SuspensionEvent",
    "TreeHash",
    "check_search_limit",
    "facts_of",
    "legal_request_status",
    "protected_column",
    "require_aware",
]


class Store(
    StoreLifecycle,
    SubjectStore,
    ProtectedValueStore,
    LawfulRequestStore,
    JustificationStore,
    SuspensionStore,
    IdempotencyStore,
    LogRowStore,
    LogAuditStore,
    TreeNodeStore,
    CheckpointStore,
    InstanceStore,
    Protocol,
):
    """The whole storage port, every concern's: what an adapter implements."""
