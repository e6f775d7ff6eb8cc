"""Lawful requests of authorities (policy III.1(b), III.3; CONTRACT §4.5).

Registering, approving and rejecting are the legal team's acts; the four-eyes rule
(two distinct reviewers, neither the registrant) is `store.records.legal_request_status`,
applied by the store in the approving transaction. This module parses and
checks what a person typed, and renders records as JSON.

A rejection is the request's own state (schema 11): a `reject_lawful_request` action
entry of the log (with the reason's keyed hash), then the rejection's row, sealed at rest.
Approving and rejecting are each one transaction of the store that locks the request's
row and checks `store.records.review_conflict` against it as committed, so of two
reviewers racing (an approval and a rejection, or one approval too many) the second is
refused with a 409 — its action entry then records an attempt, as ``log verify`` counts it.
A rejected request never authorizes a disclosure and can be neither approved nor rejected
again.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError
from gateway.log.actions import ActionLog, Person, target
from gateway.policy.facts import invalid, parse_time
from gateway.store.ports import LawfulRequestStore
from gateway.store.records import (
    LEGAL_REQUEST_STATUSES,
    LegalRequestRecord,
    Rejection,
    review_conflict,
)
from gateway.subject_id import check_subject_id

FIELDS = ("authority", "reference", "instrument", "subjects", "partners", "received_at")
MAX_TEXT = 500
MAX_SUBJECTS = 10_000
MAX_REASON = 2000
STATUSES = LEGAL_REQUEST_STATUSES


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise invalid(f"'{key}' must be a non-empty string of at most {MAX_TEXT} characters")
    return value.strip()


def _ids(body: Mapping[str, Any], key: str) -> frozenset[str]:
    values = body.get(key)
    if (
        not isinstance(values, list)
        or not values
        or len(values) > MAX_SUBJECTS
        or not all(isinstance(x, str) and x for x in values)
    ):
        raise invalid(f"'{key}' must be a non-empty list of ids")
    return frozenset(values)


def _subjects(body: Mapping[str, Any]) -> frozenset[str]:
    subjects = _ids(body, "subjects")
    for position, subject in enumerate(body["subjects"]):
        check_subject_id(subject, f"'subjects[{position}]'")
    return subjects


def parse_legal_request(
    body: object, *, registered_by: str, known_partners: Collection[str], now: datetime
) -> LegalRequestRecord:
    if not isinstance(body, dict):
        raise invalid("a lawful request must be a JSON object with: " + ", ".join(FIELDS))
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(f"unknown key {unknown[0][:40]!r}; valid: {', '.join(FIELDS)}")
    partners = _ids(body, "partners")
    for position, partner in enumerate(body["partners"]):
        if partner not in known_partners:
            raise invalid(
                f"'partners[{position}]' names a partner that is not onboarded; known: "
                f"{', '.join(sorted(known_partners))}"
            )
    received = parse_time(body.get("received_at", now.isoformat()), "received_at")
    return LegalRequestRecord(
        id=f"LR-{uuid.uuid4().hex[:12]}",
        authority=_text(body, "authority"),
        reference=_text(body, "reference"),
        instrument=_text(body, "instrument"),
        subjects=_subjects(body),
        partners=partners,
        received_at=received,
        registered_by=registered_by,
    )


async def _reviewable(
    store: LawfulRequestStore,
    request_id: str,
    reviewer_id: str,
    act: Literal["approve", "reject"],
) -> LegalRequestRecord:
    """The request `reviewer_id` may `act` on, before its action entry is written: the
    registrant never may (four eyes), nor anyone once `review_conflict` says so. The store
    checks the conflict again under its lock, for a reviewer who acted in between."""
    record = await store.get_legal_request(request_id)
    if record is None:
        raise NotFoundError("no lawful request with this id")
    if record.registered_by == reviewer_id:
        raise ForbiddenError(
            f"{reviewer_id} registered {record.id} and cannot also {act} it: "
            "two other reviewers approve it, or another reviewer rejects it",
        )
    if (conflict := review_conflict(record, reviewer_id, act)) is not None:
        raise ConflictError(conflict)
    return record


async def approve(
    store: LawfulRequestStore,
    request_id: str,
    reviewer_id: str,
    now: datetime,
    *,
    actions: ActionLog | None = None,
    credential: str = "",
) -> LegalRequestRecord:
    """Record `reviewer_id`'s approval; the registrant and repeat approvals are refused.
    With `actions`, the approval is first an `approve_lawful_request` entry of the log
    (proven by `credential`): if it cannot be written, nothing is approved."""
    record = await _reviewable(store, request_id, reviewer_id, "approve")
    if actions is not None:
        await actions.record(
            Person(reviewer_id, credential),
            "approve_lawful_request",
            at=now,
            target=target("lawful_request", record.id),
            legal_request_id=record.id,
        )
    approved = await store.approve_legal_request(request_id, reviewer_id, now)
    if approved is None:
        raise NotFoundError("no lawful request with this id")
    return approved


def check_reason(reason: object) -> str:
    """A rejection's reason as typed: a string of 1 to MAX_REASON characters (kept as
    typed, without surrounding blanks when anything else is left)."""
    if not isinstance(reason, str) or not 1 <= len(reason) <= MAX_REASON:
        raise InvalidRequestError(
            f"'reason' must say in 1 to {MAX_REASON} characters why the request is rejected "
            "(no personal data values)"
        )
    return reason.strip() or reason


async def reject(
    store: LawfulRequestStore,
    request_id: str,
    reviewer_id: str,
    reason: object,
    now: datetime,
    *,
    actions: ActionLog,
    credential: str,
) -> LegalRequestRecord:
    """Record `reviewer_id`'s rejection of a pending request, with its reason: first a
    `reject_lawful_request` entry of the log (the reason as its keyed hash), then the
    rejection's row. The registrant cannot reject their own request (four eyes, as for an
    approval); an approved or already rejected request cannot be rejected."""
    text = check_reason(reason)
    record = await _reviewable(store, request_id, reviewer_id, "reject")
    await actions.record(
        Person(reviewer_id, credential),
        "reject_lawful_request",
        at=now,
        target=target("lawful_request", record.id),
        legal_request_id=record.id,
        text=text,
    )
    rejected = await store.reject_legal_request(record.id, Rejection(reviewer_id, text, now))
    if rejected is None:
        raise NotFoundError("no lawful request with this id")
    return rejected


async def list_requests(
    store: LawfulRequestStore, status: str | None = None
) -> list[LegalRequestRecord]:
    """Lawful requests of one status (or all, `STATUSES`), newest received first."""
    if status not in (None, *STATUSES):
        raise InvalidRequestError("status must be one of: " + ", ".join(STATUSES))
    records = await store.list_legal_requests(status)
    return sorted(records, key=lambda r: (r.received_at, r.id), reverse=True)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def legal_request_json(record: LegalRequestRecord, *, with_subjects: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": record.id,
        "authority": record.authority,
        "reference": record.reference,
        "instrument": record.instrument,
        "partners": sorted(record.partners),
        "subject_count": len(record.subjects),
        "received_at": _when(record.received_at),
        "registered_by": record.registered_by,
        "status": record.status,
        "approvals": [{"reviewer": a.reviewer_id, "at": _when(a.at)} for a in record.approvals],
    }
    if record.rejection is not None:
        doc["rejection"] = {
            "reviewer": record.rejection.reviewer_id,
            "at": _when(record.rejection.at),
            "reason": record.rejection.reason,
        }
    if with_subjects:
        doc["subjects"] = sorted(record.subjects)
    return doc
