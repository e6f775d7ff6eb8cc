"""Disclosure log entries (CONTRACT §5): what is written, and nothing personal.

An entry is a flat JSON object serialized canonically (sorted keys, no spaces,
UTF-8) — those bytes are the Merkle leaf. The subject appears only as a keyed
HMAC, the payload only as a keyed digest; field names and transforms are kept
so a reviewer sees *what kind* of data went where without seeing the data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.partners import Operation, Partner
from gateway.policy import Decision
from gateway.request import DisclosureRequest

FORMAT_VERSION = 1
KINDS = ("intent", "outcome", "refused")
OUTCOMES = ("sent", "failed", "unknown")


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LogKeys:
    """Keys that make log references unlinkable to anyone without them."""

    subject_key: bytes

    def subject_ref(self, subject: str) -> str:
        mac = hmac.new(self.subject_key, b"subject\x00" + subject.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()

    def data_digest(self, minimized: Mapping[str, Any]) -> str:
        mac = hmac.new(self.subject_key, b"data\x00" + canonical_json(minimized), hashlib.sha256)
        return mac.hexdigest()


def _common(
    kind: str,
    disclosure_id: str,
    caller: str,
    request: DisclosureRequest,
    partner: Partner | None,
    at: datetime,
    keys: LogKeys,
    policy_version: str,
) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "kind": kind,
        "time": timestamp(at),
        "disclosure_id": disclosure_id,
        "caller": caller,
        "partner": request.partner,
        "partner_category": partner.category if partner else None,
        "operation": request.operation,
        "purpose": request.purpose,
        "legal_basis": request.legal_basis,
        "policy_version": policy_version,
        "subject_ref": keys.subject_ref(request.subject),
    }


def intent_entry(
    *,
    disclosure_id: str,
    caller: str,
    request: DisclosureRequest,
    partner: Partner,
    operation: Operation,
    decision: Decision,
    minimized: Mapping[str, Any],
    at: datetime,
    keys: LogKeys,
    policy_version: str,
) -> dict[str, Any]:
    entry = _common("intent", disclosure_id, caller, request, partner, at, keys, policy_version)
    entry.update(
        method=operation.method,
        consent_id=decision.consent_id,
        legal_request_id=decision.legal_request_id,
        fields=dict(decision.disclosed),
        withheld=sorted(decision.withheld),
        data_digest=keys.data_digest(minimized),
        needs_review=decision.needs_review,
        retention_days=partner.retention_days,
    )
    if decision.bound_by_policy_version:
        entry["bound_by_policy_version"] = decision.bound_by_policy_version
    return entry


def refused_entry(
    *,
    disclosure_id: str,
    caller: str,
    request: DisclosureRequest,
    partner: Partner | None,
    decision: Decision,
    at: datetime,
    keys: LogKeys,
    policy_version: str,
) -> dict[str, Any]:
    entry = _common("refused", disclosure_id, caller, request, partner, at, keys, policy_version)
    # Reasons name rules, ids and vocabulary, never values (tests/unit/test_policy.py).
    entry.update(problem=decision.problem, reasons=list(decision.reasons))
    return entry


def outcome_entry(
    *,
    disclosure_id: str,
    outcome: str,
    at: datetime,
    partner: str,
    partner_status: int | None = None,
    attempts: int = 0,
    problem: str | None = None,
    maybe_received: bool | None = None,
) -> dict[str, Any]:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} not among {OUTCOMES}")
    return {
        "v": FORMAT_VERSION,
        "kind": "outcome",
        "time": timestamp(at),
        "disclosure_id": disclosure_id,
        "partner": partner,
        "outcome": outcome,
        "partner_status": partner_status,
        "attempts": attempts,
        "problem": problem,
        # For a failure: whether any attempt may have reached the partner (a timeout
        # after sending), which a reviewer must treat as a possible disclosure.
        "maybe_received": maybe_received,
    }
