"""The body of `POST /v1/disclosures` and `/v1/decisions` (CONTRACT §4.1) → DisclosureRequest.

Parsing checks shapes and closed vocabularies; whether the disclosure is
allowed is `policy.decide()`'s question.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from types import MappingProxyType
from typing import Any

from gateway import vocabulary as v
from gateway.errors import InvalidRequestError
from gateway.policy.facts import invalid, parse_date
from gateway.subject_id import check_subject_id

BODY_KEYS = ("partner", "operation", "purpose", "legal_basis", "subject", "data", "legal_request")
MAX_ID = 200
MAX_FIELD_NAME = 64
"""Longest field name accepted in `data` (the vocabulary's longest is 21 characters)."""
FIELD_NAME_PATTERN = "^[a-z][a-z0-9_]*$"
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class DisclosureRequest:
    partner: str
    operation: str
    purpose: str
    legal_basis: str
    subject: str
    data: Mapping[str, Any]
    legal_request: str | None = None
    # A keyed reference already in the log, written instead of one computed from `subject`:
    # a consent-withdrawal notice is about disclosures whose subject id the gateway does
    # not hold (gateway.rights.withdrawal), so it names their subject by their reference.
    subject_ref: str | None = None

    @cached_property  # read by the age rules and minimize: parsed once per request
    def date_of_birth(self) -> date | None:
        value = self.data.get("date_of_birth")
        return None if value is None else parse_date(value, "data.date_of_birth")


def _identifier(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise invalid(f"'{key}' must be a non-empty string of at most {MAX_ID} characters")
    return value


def _choice(body: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = body.get(key)
    if value not in choices:
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else "value"
        raise invalid(f"'{key}' {shown} is not one of: {', '.join(choices)}")
    return str(value)


def check_data(data: object) -> dict[str, Any]:
    """`data` of a disclosure or a rights notice: field names to scalars; payment_records
    an object, or a list of objects, of scalars."""
    if not isinstance(data, dict):
        raise invalid("'data' must be a JSON object of field names to values")
    for key, value in data.items():
        if key == "payment_records":
            records = value if isinstance(value, list) else [value]
            if not all(isinstance(r, dict) for r in records):
                raise invalid("'data.payment_records' must be an object or a list of objects")
            if any(
                isinstance(x, dict | list)
                for r in records
                for k, x in r.items()
                if k in v.PAYMENT_RECORD_KEYS
            ):
                raise invalid(
                    "'data.payment_records' values must be strings, numbers, booleans or null"
                )
        elif isinstance(value, dict | list) and key in v.FIELDS:
            raise invalid(f"'data.{key}' must be a string, number, boolean or null")
    if data.get("date_of_birth") is not None:
        parse_date(data["date_of_birth"], "data.date_of_birth")
    return data


def parse_disclosure_request(
    body: object, *, extra_keys: tuple[str, ...] = ()
) -> DisclosureRequest:
    """Validate the JSON body; errors name the key, never the value of a data field."""
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    unknown = sorted(set(body) - set(BODY_KEYS) - set(extra_keys))
    if unknown:
        raise invalid(f"unknown key {unknown[0][:40]!r}; valid keys: {', '.join(BODY_KEYS)}")
    data = check_data(body.get("data"))
    legal_request = body.get("legal_request")
    if legal_request is not None and (not isinstance(legal_request, str) or not legal_request):
        raise invalid("'legal_request' must be the id of a lawful request (a string)")
    request = DisclosureRequest(
        partner=_identifier(body, "partner"),
        operation=_identifier(body, "operation"),
        purpose=_choice(body, "purpose", v.PURPOSES),
        legal_basis=_choice(body, "legal_basis", v.LEGAL_BASES),
        subject=check_subject_id(body.get("subject")),
        data=MappingProxyType(dict(data)),
        legal_request=legal_request,
    )
    request.date_of_birth  # noqa: B018 - a malformed date of birth is a 400, not a crash later
    return request


class FieldNamesRefused(InvalidRequestError):
    """`data` holds field names no vocabulary could have: refused before anything is
    decided, and logged as a count (the names themselves may be personal data)."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"{count} field name(s) in 'data' (or in a 'payment_records' object) are not "
            f"lower_snake_case of at most {MAX_FIELD_NAME} characters (a lowercase letter, "
            "then lowercase letters, digits or '_'), as every field of the vocabulary is; "
            "send only vocabulary field names",
        )
        self.count = count


def check_field_names(data: Mapping[str, Any]) -> None:
    """FieldNamesRefused unless every name in `data` and in its `payment_records` objects
    is well formed. Well formed is not known: an unknown name is withheld, not refused."""
    names: list[object] = list(data)
    records = data.get("payment_records")
    for record in records if isinstance(records, list) else [records]:
        if isinstance(record, Mapping):
            names += list(record)
    malformed = sum(
        1
        for name in names
        if not (
            isinstance(name, str)
            and len(name) <= MAX_FIELD_NAME
            and _FIELD_NAME.fullmatch(name) is not None
        )
    )
    if malformed:
        raise FieldNamesRefused(malformed)
