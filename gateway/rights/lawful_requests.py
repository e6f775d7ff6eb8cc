"""Lawful requests of authorities (policy III.1(b), III.3; CONTRACT §4.5).

Registering and approving are the legal team's acts; the four-eyes rule
(two distinct reviewers, neither the registrant) is `store.records.legal_request_status`,
applied by the store in the approving transaction. This module parses and
checks what a person typed, and renders records as JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.errors import ConflictError, ForbiddenError, NotFoundError
from gateway.log.actions import ActionLog, Person, target
from gateway.policy.facts import invalid, parse_time
from gateway.store.ports import LawfulRequestStore
from gateway.store.records import LegalRequestRecord
from gateway.subject_id import check_subject_id

FIELDS = ("authority", "reference", "instrument", "subjects", "partners", "received_at")
MAX_TEXT = 500
MAX_SUBJECTS = 10_000


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
    record = await store.get_legal_request(request_id)
    if record is None:
        raise NotFoundError("no lawful request with this id")
    if record.registered_by == reviewer_id:
        raise ForbiddenError(
            f"{reviewer_id} registered {record.id} and cannot also "
            "approve it: two other reviewers must",
        )
    if any(a.reviewer_id == reviewer_id for a in record.approvals):
        raise ConflictError(
            f"{reviewer_id} already approved {record.id}; a second, "
            "different reviewer must approve it",
        )
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
    if with_subjects:
        doc["subjects"] = sorted(record.subjects)
    return doc
