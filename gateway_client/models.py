"""The values the SDK answers with, as the gateway's JSON carries them (CONTRACT §4).

The SDK's own wire types: it imports nothing of the server, so `Consent` and `Decision`
here are not the server's value types but carry the same attribute names (a service
moving from one to the other changes nothing but the import).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway_client.errors import UnexpectedResponse


@dataclass(frozen=True)
class DisclosureResponse:
    """The partner's answer as the gateway relays it (CONTRACT §4.1).

    `status` is the partner's: a partner's own 4xx answer (not retried) arrives here
    too, with `ok` False — the disclosure did happen. `fields` are the field names
    that were sent; `replayed` is True when an Idempotency-Key repeat returned the
    first answer and nothing was sent again. `acknowledgement`, for a partner that signs
    receipts: "valid", "missing" or "invalid; reason=<code>" (None for the others).
    """

    status: int
    disclosure_id: str
    fields: tuple[str, ...]
    body: bytes
    content_type: str
    replayed: bool = False
    request_id: str | None = None
    acknowledgement: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The partner's body as JSON (ValueError if it is not JSON)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class ErasureReport:
    """`POST /v1/subjects/{id}/erasure`: the notices sent, and partners to follow up by hand."""

    kind: str
    reference: str
    notices: tuple[Mapping[str, Any], ...]
    manual_follow_up: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Consent:
    """A recorded consent (`POST /v1/consents`, `GET /v1/subjects/{id}/consents`)."""

    id: str
    subject: str
    purposes: frozenset[str]
    partners: frozenset[str]
    partner_categories: frozenset[str]
    special_categories: frozenset[str]
    policy_version: str
    obtained_at: datetime
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    method: str = ""
    evidence: str = ""


@dataclass(frozen=True)
class Decision:
    """`POST /v1/decisions`: what a disclosure would do (CONTRACT §4.2). A refusal has
    `allowed` False and `problem` its code; `reasons` say every rule it breaks."""

    allowed: bool
    problem: str | None
    reasons: tuple[str, ...]
    disclosed: Mapping[str, str]
    withheld: tuple[str, ...]
    needs_review: bool
    withheld_reasons: Mapping[str, str] = field(default_factory=dict)
    consent_id: str | None = None
    legal_request_id: str | None = None
    bound_by_policy_version: str | None = None

    @property
    def detail(self) -> str:
        """The refusal detail: every broken rule, so the caller can tell the customer."""
        return "; ".join(self.reasons)


# -- from the gateway's JSON --------------------------------------------------------------


def json_object(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object; else the gateway sent something no client can read."""
    if not isinstance(value, dict):
        raise UnexpectedResponse(
            f"the gateway sent a {what} that is not a JSON object",
            status=200,
            content_type="application/json",
        )
    return value


def opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value)


def consent_from_json(value: Any) -> Consent:
    doc = json_object(value, "consent")
    obtained = _time(doc.get("obtained_at"))
    if obtained is None:
        raise UnexpectedResponse(
            "the gateway sent a consent without obtained_at",
            status=200,
            content_type="application/json",
        )
    return Consent(
        id=str(doc.get("id", "")),
        subject=str(doc.get("subject", "")),
        purposes=frozenset(doc.get("purposes") or ()),
        partners=frozenset(doc.get("partners") or ()),
        partner_categories=frozenset(doc.get("partner_categories") or ()),
        special_categories=frozenset(doc.get("special_categories") or ()),
        policy_version=str(doc.get("policy_version", "")),
        obtained_at=obtained,
        expires_at=_time(doc.get("expires_at")),
        withdrawn_at=_time(doc.get("withdrawn_at")),
        method=str(doc.get("method") or ""),
        evidence=str(doc.get("evidence") or ""),
    )


def decision_from_json(value: Any) -> Decision:
    doc = json_object(value, "decision")
    return Decision(
        allowed=bool(doc.get("allowed")),
        problem=opt_str(doc.get("problem")),
        reasons=tuple(str(r) for r in doc.get("reasons") or ()),
        disclosed={str(k): str(v) for k, v in (doc.get("disclosed") or {}).items()},
        withheld=tuple(str(w) for w in doc.get("withheld") or ()),
        needs_review=bool(doc.get("needs_review")),
        withheld_reasons={str(k): str(v) for k, v in (doc.get("withheld_reasons") or {}).items()},
        consent_id=opt_str(doc.get("consent_id")),
        legal_request_id=opt_str(doc.get("legal_request_id")),
        bound_by_policy_version=opt_str(doc.get("bound_by_policy_version")),
    )


def erasure_from_json(value: Any, kind: str) -> ErasureReport:
    doc = json_object(value, "erasure result")
    return ErasureReport(
        kind=str(doc.get("kind", kind)),
        reference=str(doc.get("reference", "")),
        notices=tuple(doc.get("notices") or ()),
        manual_follow_up=tuple(doc.get("manual_follow_up") or ()),
    )
