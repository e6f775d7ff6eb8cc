"""What the gateway knows about a subject when it decides: consents, restriction,
date of birth, lawful requests.

These are plain values. The stores produce them; `gateway decide` builds them
from a `facts` object in a file; `policy.decide()` only reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from gateway import vocabulary as v
from gateway.errors import GatewayError

POLICY_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TEXT = 2000


@dataclass(frozen=True)
class Consent:
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

    def covers(self, subject: str, purpose: str, partner_id: str, partner_category: str) -> bool:
        return (
            self.subject == subject
            and purpose in self.purposes
            and (partner_id in self.partners or partner_category in self.partner_categories)
        )


@dataclass(frozen=True)
class LegalRequest:
    id: str
    status: str  # "pending" | "approved"
    subjects: frozenset[str]
    partners: frozenset[str]

    def covers(self, subject: str, partner_id: str) -> bool:
        return (
            self.status == "approved" and subject in self.subjects and partner_id in self.partners
        )


@dataclass(frozen=True)
class SubjectFacts:
    consents: tuple[Consent, ...] = ()
    restricted: bool = False
    date_of_birth: date | None = None
    legal_requests: Mapping[str, LegalRequest] = field(default_factory=dict)


def invalid(detail: str) -> GatewayError:
    return GatewayError("invalid_request", detail)


def parse_time(value: object, name: str) -> datetime:
    """An RFC 3339 time with a zone, or a date (taken as midnight UTC)."""
    if not isinstance(value, str):
        raise invalid(f"'{name}' must be an RFC 3339 time string such as 2026-01-31T09:00:00Z")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{name}' is not an RFC 3339 time (e.g. 2026-01-31T09:00:00Z)") from None
    if parsed.tzinfo is None:
        raise invalid(f"'{name}' needs a time zone (e.g. a trailing Z)")
    return parsed


def parse_date(value: object, name: str) -> date:
    if not isinstance(value, str):
        raise invalid(f"'{name}' must be a date string YYYY-MM-DD")
    try:
        return date.fromisoformat(value[:10]) if len(value) >= 10 else date.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{name}' is not a date YYYY-MM-DD") from None


def _strings(
    body: Mapping[str, Any],
    name: str,
    allowed: tuple[str, ...] | None = None,
    *,
    required: bool = False,
) -> frozenset[str]:
    values = body.get(name, [])
    if not isinstance(values, list) or not all(isinstance(x, str) for x in values):
        raise invalid(f"'{name}' must be a list of strings")
    if required and not values:
        raise invalid(f"'{name}' must name at least one value")
    if allowed is not None:
        unknown = [x for x in values if x not in allowed]
        if unknown:
            raise invalid(
                f"'{name}' holds unknown value {unknown[0]!r}; valid: {', '.join(allowed)}"
            )
    return frozenset(values)


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise invalid(f"'{name}' must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def parse_consent(body: object, *, consent_id: str, now: datetime) -> Consent:
    """A CONTRACT §4.3 consent body (plus `id`/`withdrawn_at` in `facts`) → Consent."""
    if not isinstance(body, dict):
        raise invalid("a consent must be a JSON object")
    known = {
        "id",
        "subject",
        "purposes",
        "partners",
        "partner_categories",
        "special_categories",
        "policy_version",
        "obtained_at",
        "expires_at",
        "method",
        "evidence",
        "withdrawn_at",
    }
    extra = sorted(set(body) - known)
    if extra:
        raise invalid(f"unknown consent key {extra[0]!r}; valid: {', '.join(sorted(known))}")
    partners = _strings(body, "partners")
    categories = _strings(body, "partner_categories", v.PARTNER_CATEGORIES)
    if not partners and not categories:
        raise invalid("a consent must name 'partners' or 'partner_categories'")
    version = _text(body, "policy_version")
    if not POLICY_VERSION.match(version):
        raise invalid("'policy_version' must be the policy's update date, YYYY-MM-DD")
    withdrawn = body.get("withdrawn_at")
    expires = body.get("expires_at")
    return Consent(
        id=consent_id,
        subject=_text(body, "subject"),
        purposes=_strings(body, "purposes", v.PURPOSES, required=True),
        partners=partners,
        partner_categories=categories,
        special_categories=_strings(body, "special_categories", tuple(sorted(v.SPECIAL_FIELDS))),
        policy_version=version,
        obtained_at=parse_time(body.get("obtained_at", now.isoformat()), "obtained_at"),
        expires_at=None if expires is None else parse_time(expires, "expires_at"),
        withdrawn_at=None if withdrawn is None else parse_time(withdrawn, "withdrawn_at"),
        method=_text(body, "method", required=False),
        evidence=_text(body, "evidence", required=False),
    )


def parse_legal_request_fact(body: object) -> LegalRequest:
    """The `facts` form of a lawful request: {id, status, subjects, partners}."""
    if not isinstance(body, dict):
        raise invalid("a legal request fact must be a JSON object")
    status = body.get("status")
    if status not in ("approved", "pending"):
        raise invalid('legal request \'status\' must be "approved" or "pending"')
    return LegalRequest(
        id=_text(body, "id"),
        status=status,
        subjects=_strings(body, "subjects"),
        partners=_strings(body, "partners"),
    )


def parse_facts(body: object, *, now: datetime) -> SubjectFacts:
    """The `facts` object of `gateway decide FILE.json` (CONTRACT §6)."""
    if not isinstance(body, dict):
        raise invalid("'facts' must be a JSON object")
    known = {"consents", "restricted", "date_of_birth", "legal_requests"}
    extra = sorted(set(body) - known)
    if extra:
        raise invalid(f"unknown facts key {extra[0]!r}; valid: {', '.join(sorted(known))}")
    consents = body.get("consents", [])
    requests = body.get("legal_requests", [])
    if not isinstance(consents, list) or not isinstance(requests, list):
        raise invalid("'consents' and 'legal_requests' must be lists")
    restricted = body.get("restricted", False)
    if not isinstance(restricted, bool):
        raise invalid("'restricted' must be true or false")
    dob = body.get("date_of_birth")
    parsed_requests = [parse_legal_request_fact(r) for r in requests]
    return SubjectFacts(
        consents=tuple(
            parse_consent(c, consent_id=str(c.get("id") or f"facts-{i}"), now=now)
            if isinstance(c, dict)
            else parse_consent(c, consent_id="", now=now)
            for i, c in enumerate(consents)
        ),
        restricted=restricted,
        date_of_birth=None if dob is None else parse_date(dob, "date_of_birth"),
        legal_requests={r.id: r for r in parsed_requests},
    )
