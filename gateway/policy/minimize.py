"""Field minimization (CONTRACT §2 transforms): pure functions, no I/O.

`plan_fields` says which payload fields an operation may receive and how each
is transformed; `minimize` applies that plan. Anything the plan does not name
is withheld — the output can only shrink, never grow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway import vocabulary as v
from gateway.errors import InvalidRequestError

NESTED = "payment_records"
AGE_BANDS = ((0, 13), (14, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64))


@dataclass(frozen=True)
class FieldPlan:
    """What an operation receives: `disclosed` maps a field (or `payment_records.<key>`)
    to its transform; `withheld` maps every other payload field to why it stays."""

    disclosed: Mapping[str, str]
    withheld: Mapping[str, str]


def plan_fields(data: Mapping[str, Any], fields: Mapping[str, str], where: str) -> FieldPlan:
    """Decide per payload field: send (with which transform) or withhold (and why)."""
    disclosed: dict[str, str] = {}
    withheld: dict[str, str] = {}
    for name, value in data.items():
        if name in v.NEVER_DISCLOSED:
            withheld[name] = f"'{name}' is never disclosed"  # policy: I.1
        elif name not in v.FIELDS:
            withheld[name] = "not a field of the policy's collection table"
        elif name not in fields:
            withheld[name] = f"not among the fields {where} may receive"
        elif fields[name] == "drop":
            withheld[name] = f"dropped by {where}"
        else:
            disclosed[name] = fields[name]
            if name == NESTED:
                _plan_nested(value, fields, where, disclosed, withheld)
    return FieldPlan(disclosed, withheld)


def _records(value: object) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Mapping)]


def _plan_nested(
    value: object,
    fields: Mapping[str, str],
    where: str,
    disclosed: dict[str, str],
    withheld: dict[str, str],
) -> None:
    for record in _records(value):
        for key in record:
            dotted = f"{NESTED}.{key}"
            if dotted in disclosed or dotted in withheld:
                continue
            if key not in v.PAYMENT_RECORD_KEYS:
                withheld[dotted] = "not a payment record field"
            elif fields.get(key, "drop") == "drop":
                withheld[dotted] = f"not among the fields {where} may receive"
            else:
                disclosed[dotted] = fields[key]


def minimize(
    data: Mapping[str, Any], plan: FieldPlan, *, pseudonym_key: bytes, today: date
) -> dict[str, Any]:
    """The payload a partner receives: only planned fields, each transformed."""
    out: dict[str, Any] = {}
    for name, transform in plan.disclosed.items():
        if "." in name:
            continue
        value = data[name]
        if name == NESTED:
            out[name] = _minimize_nested(value, plan, pseudonym_key, today)
        else:
            out[name] = apply_transform(name, transform, value, pseudonym_key, today)
    return out


def _minimize_nested(value: object, plan: FieldPlan, key: bytes, today: date) -> object:
    def one(record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: apply_transform(k, plan.disclosed[f"{NESTED}.{k}"], val, key, today)
            for k, val in record.items()
            if f"{NESTED}.{k}" in plan.disclosed
        }

    if isinstance(value, list):
        return [one(r) for r in _records(value)]
    return one(value) if isinstance(value, Mapping) else None


def apply_transform(
    name: str, transform: str, value: object, pseudonym_key: bytes, today: date
) -> object:
    if value is None or transform == "keep":
        return value
    if transform == "pseudonym":
        return pseudonym(pseudonym_key, value)
    if transform == "mask":
        return mask(str(value))
    if transform == "year":
        return _as_date(name, transform, value).year
    if transform == "age_band":
        return age_band(_as_date(name, transform, value), today)
    if transform == "truncate_ip":
        return truncate_ip(name, value)
    raise InvalidRequestError(f"transform {transform!r} cannot apply to '{name}'")


def derive_pseudonym_key(master_key: bytes, partner_id: str) -> bytes:
    """Per-partner key: pseudonyms are stable for one partner, unlinkable across partners."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"disclosure-gateway/pseudonym/v1",
        info=partner_id.encode("utf-8"),
    ).derive(master_key)


def pseudonym(key: bytes, value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def mask(text: str) -> str:
    """All but the last 4 characters become '*'; a value of 4 or fewer is masked whole,
    since showing "all but nothing" would disclose it."""
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]


def _as_date(name: str, transform: str, value: object) -> date:
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value).date()
        except ValueError:
            pass
    raise InvalidRequestError(
        f"'data.{name}' must be an ISO date (YYYY-MM-DD) for transform '{transform}'",
    )


def age_in_years(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def age_band(born: date, today: date) -> str:
    age = age_in_years(born, today)
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "65+"


def truncate_ip(name: str, value: object) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidRequestError(f"'data.{name}' must be an IPv4 or IPv6 address") from None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
