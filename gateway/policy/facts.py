"""What the gateway knows about a subject when it decides: consents, restriction,
date of birth, lawful requests.

These are plain values. The stores produce them; `gateway decide` builds them
from a `facts` object in a file; `policy.decide()` only reads them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway import vocabulary as v
from gateway.errors import GatewayError, InvalidRequestError
from gateway.subject_id import check_subject_id

POLICY_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TEXT = 2000
# How far ahead of the gateway's clock a consent's `obtained_at` may be when it is
# recorded: the app that obtained it has its own clock. Beyond that it is not yet given.
CLOCK_SKEW = timedelta(minutes=5)


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


# A consent's members as written (CONTRACT §4.3; `id` and `withdrawn_at` only in a facts
# file) and as answered (the OpenAPI `Consent` schema requires all but `subject`).
CONSENT_MEMBERS = (
    "id",
    "subject",
    "purposes",
    "partners",
    "partner_categories",
    "special_categories",
    "policy_version",
    "obtained_at",
    "expires_at",
    "withdrawn_at",
    "method",
    "evidence",
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
    # What an erasure leaves of a child's date of birth: the day the child turns
    # MINIMUM_AGE. Until then the age rule refuses as it did on the date itself.
    under_age_until: date | None = None
    # The stored profile while it is still sealed (gateway.crypto.at_rest opens it into the two
    # dates above); a store read without keys leaves it here rather than guess.
    sealed_profile: str | None = None


def invalid(detail: str) -> GatewayError:
    return InvalidRequestError(detail)


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
        for position, value in enumerate(values):
            if value not in allowed:
                # The position, not the value: an answer never repeats what was sent.
                raise invalid(f"'{name}[{position}]' is not one of: {', '.join(allowed)}")
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
    extra = sorted(set(body) - set(CONSENT_MEMBERS))
    if extra:
        valid = ", ".join(sorted(CONSENT_MEMBERS))
        raise invalid(f"unknown consent key {extra[0]!r}; valid: {valid}")
    partners = _strings(body, "partners")
    categories = _strings(body, "partner_categories", v.PARTNER_CATEGORIES)
    if not partners and not categories:
        raise invalid("a consent must name 'partners' or 'partner_categories'")
    version = _text(body, "policy_version")
    if not POLICY_VERSION.match(version) or not _is_date(version):
        raise invalid("'policy_version' must be the policy's update date, YYYY-MM-DD")
    withdrawn = body.get("withdrawn_at")
    expires = body.get("expires_at")
    return Consent(
        id=consent_id,
        subject=check_subject_id(body.get("subject")),
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


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def check_consent_to_record(
    consent: Consent,
    *,
    known_partners: Collection[str],
    policy_version: str,
    now: datetime,
) -> Consent:
    """Refuse a consent no one can have given, before it is recorded (POST /v1/consents,
    `gateway consent grant`): a partner that is not onboarded, a policy version later
    than the one in force (a consent cannot be given under a policy not yet published),
    an expiry not after the time obtained, a time obtained still in the future.

    A version older than `policy.min_consent_version` is recorded (it is the evidence of
    what the subject agreed to) and refused at every decision, as policy VIII says.
    """
    strangers = [p for p in consent.partners if p not in known_partners]
    if strangers:
        raise invalid(
            f"'partners' names {len(strangers)} partner id(s) that are not onboarded; "
            f"onboarded partners: {', '.join(sorted(known_partners))}"
        )
    if consent.policy_version > policy_version:
        raise invalid(
            f"'policy_version' is later than the policy in force ({policy_version}): a "
            f"consent is given under the version in force, {policy_version}, or an earlier one"
        )
    if consent.expires_at is not None and consent.expires_at <= consent.obtained_at:
        raise invalid("'expires_at' must be later than 'obtained_at' (or left out)")
    if consent.obtained_at > now + CLOCK_SKEW:
        raise invalid(
            "'obtained_at' is in the future: send the time the subject gave the consent "
            "(or leave it out for now)"
        )
    return consent


def parse_legal_request_fact(body: object) -> LegalRequest:
    """The `facts` form of a lawful request: {id, status, subjects, partners}."""
    if not isinstance(body, dict):
        raise invalid("a legal request fact must be a JSON object")
    status = body.get("status")
    if status not in ("approved", "pending"):
        raise invalid('legal request \'status\' must be "approved" or "pending"')
    subjects = _strings(body, "subjects")
    for position, subject in enumerate(body.get("subjects", [])):
        check_subject_id(subject, f"legal request 'subjects[{position}]'")
    return LegalRequest(
        id=_text(body, "id"),
        status=status,
        subjects=subjects,
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


# -- the stored profile ---------------------------------------------------------------
#
# One short text per subject, sealed at rest: ``date_of_birth:YYYY-MM-DD`` or, after an
# erasure, ``under_age_until:YYYY-MM-DD``. A bare ``YYYY-MM-DD`` is a date of birth
# stored before profiles were sealed (schema 5 and earlier).

PROFILE_BIRTH = "date_of_birth:"
PROFILE_UNDER_AGE = "under_age_until:"


def profile_of_birth(date_of_birth: date) -> str:
    return PROFILE_BIRTH + date_of_birth.isoformat()


def profile_under_age(until: date) -> str:
    return PROFILE_UNDER_AGE + until.isoformat()


def read_profile(text: str | None) -> tuple[date | None, date | None]:
    """``(date_of_birth, under_age_until)`` of a clear profile text; (None, None) if empty."""
    if not text:
        return None, None
    if text.startswith(PROFILE_UNDER_AGE):
        return None, date.fromisoformat(text.removeprefix(PROFILE_UNDER_AGE))
    return date.fromisoformat(text.removeprefix(PROFILE_BIRTH)), None
