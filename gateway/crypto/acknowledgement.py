"""Two-sided receipts: a partner's signed acknowledgement of what it received (CONTRACT §2).

A partner whose file says `acknowledgement = "jws"` answers every disclosure with a
response header `Disclosure-Acknowledgement: <compact JWS>`, signed with its own key
(Ed25519, or ES256 with a P-256 key), whose payload is the canonical JSON

    {"disclosure_id": "d-…", "received_at": "2026-12-07T15:00:00Z",
     "received_sha256": base64url(SHA-256 of the exact request body: the compact JWE)}

The gateway checks it after the delivery (`check_acknowledgement`) and writes the token
itself into the outcome entry (`ack`), so anyone holding the partner's public key can
check it offline (`verify_acknowledgement`, `gateway ack verify`): the partner cannot
deny what it received, nor the gateway what it sent. The token is written to the log
only when it holds exactly those three members, each of the expected form, and a header
of `alg`, `kid` and `typ` only: a disclosure id, a time and a hash — nothing personal.
A missing or invalid one is recorded as `ack` "missing" or "invalid" with `ack_reason`
(one of `REASONS`), never the token a partner sent wrong.

`sign_acknowledgement` is the partner's side (the sandbox partners, and the example in
CONTRACT §2). joserfc errors are translated here; every algorithm list is explicit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey

from gateway.canonical import timestamp
from gateway.partners.keyfile import (
    AcknowledgementKey,
    PartnerKeyError,
    parse_acknowledgement_keys,
)

__all__ = [
    "ACK_HEADER",
    "ACK_STATUS_HEADER",
    "REASONS",
    "Acknowledgement",
    "AcknowledgementInvalid",
    "check_acknowledgement",
    "received_sha256",
    "sign_acknowledgement",
    "verify_acknowledgement",
]

# The partner's response header that carries the token (a header, so that neither a
# partner's body nor its encrypted replies change).
ACK_HEADER: Final = "Disclosure-Acknowledgement"
# The gateway's answer header telling the caller what became of it: "valid", "missing"
# or "invalid; reason=<code>".
ACK_STATUS_HEADER: Final = "Disclosure-Acknowledgement-Status"
# What the outcome entry's `ack` holds when there is no valid token.
MISSING: Final = "missing"
INVALID: Final = "invalid"

PAYLOAD_MEMBERS: Final = frozenset({"disclosure_id", "received_at", "received_sha256"})
HEADER_MEMBERS: Final = frozenset({"alg", "kid", "typ"})
TYP: Final = "disclosure-ack+jwt"
# A real token is about 300 characters; anything much longer is not one and is not logged.
MAX_TOKEN_CHARS: Final = 2048
MAX_KID_CHARS: Final = 128
_SHA256_B64URL: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)
_DISCLOSURE_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REASONS: Final[Mapping[str, str]] = {
    "missing": f"the partner's answer carried no {ACK_HEADER} header",
    "malformed": "not a compact JWS whose header and payload are the contract's JSON",
    "alg_not_allowed": "signed with an algorithm the partner's key does not allow",
    "unknown_key": "its kid names no key of the partner's acknowledgement_key",
    "bad_signature": "the signature does not verify with the partner's key",
    "wrong_disclosure": "it acknowledges another disclosure id",
    "wrong_hash": "its received_sha256 is not the hash of what the gateway sent",
    "no_key": "the gateway holds no acknowledgement key of this partner",
}


class AcknowledgementInvalid(ValueError):
    """An acknowledgement that does not prove receipt: `reason` is a code of REASONS, the
    message says what was expected. Never quotes the token."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or REASONS[reason])
        self.reason = reason


@dataclass(frozen=True)
class Acknowledgement:
    """A verified acknowledgement: the token as the partner signed it, and what it says."""

    token: str
    disclosure_id: str
    received_sha256: str
    received_at: str
    kid: str | None
    alg: str


def received_sha256(body: bytes) -> str:
    """base64url (no padding) of SHA-256 of the exact bytes received."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode("ascii")


def sign_acknowledgement(
    private_key: ECKey | OKPKey,
    *,
    disclosure_id: str,
    received: bytes,
    received_at: datetime,
    kid: str | None = None,
) -> str:
    """The partner's side: the compact JWS acknowledging `received` (the request body as it
    arrived) for `disclosure_id`; Ed25519 for an OKP key, ES256 for a P-256 key."""
    alg = "Ed25519" if isinstance(private_key, OKPKey) else "ES256"
    header: dict[str, Any] = {"alg": alg, "typ": TYP}
    if kid is not None:
        header["kid"] = kid
    payload = {
        "disclosure_id": disclosure_id,
        "received_at": timestamp(received_at.astimezone(UTC)),
        "received_sha256": received_sha256(received),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return jws.serialize_compact(header, text, private_key, algorithms=[alg])


def check_acknowledgement(
    token: str | None,
    *,
    disclosure_id: str,
    sent_sha256: str | None,
    keys: Sequence[AcknowledgementKey],
) -> Acknowledgement:
    """The acknowledgement `token` verified: signed by one of the partner's `keys`, for
    `disclosure_id`, over the hash of what was sent (`sent_sha256`; None: not checked, for
    an offline check without the sent bytes). AcknowledgementInvalid says why not."""
    if token is None or not token.strip():
        raise AcknowledgementInvalid("missing")
    if not keys:
        raise AcknowledgementInvalid("no_key")
    header, payload_bytes = _parts(token)
    alg, kid = header.get("alg"), header.get("kid")
    candidates = [k for k in keys if kid is None or k.kid is None or k.kid == kid]
    if not candidates:
        raise AcknowledgementInvalid(
            "unknown_key", f"kid {_short(kid)} names no key of the partner"
        )
    fitting = [k for k in candidates if alg in k.algs]
    if not fitting:
        allowed = sorted({a for k in candidates for a in k.algs})
        raise AcknowledgementInvalid(
            "alg_not_allowed",
            f"alg {_short(alg)} not allowed; the partner's key signs with {allowed}",
        )
    if not any(_verifies(token, k, str(alg)) for k in fitting):
        raise AcknowledgementInvalid("bad_signature")
    payload = _payload(payload_bytes)
    if payload["disclosure_id"] != disclosure_id:
        raise AcknowledgementInvalid(
            "wrong_disclosure", f"it acknowledges another disclosure than {disclosure_id}"
        )
    if sent_sha256 is not None and payload["received_sha256"] != sent_sha256:
        raise AcknowledgementInvalid(
            "wrong_hash",
            f"its received_sha256 is not {sent_sha256}, the hash of what the gateway sent",
        )
    return Acknowledgement(
        token=token.strip(),
        disclosure_id=payload["disclosure_id"],
        received_sha256=payload["received_sha256"],
        received_at=payload["received_at"],
        kid=kid if isinstance(kid, str) else None,
        alg=str(alg),
    )


def verify_acknowledgement(
    outcome_entry_json: str | bytes | Mapping[str, Any],
    partner_public_jwk: str | bytes | Mapping[str, Any],
    sent_hash: str | None = None,
) -> Acknowledgement:
    """Offline: the acknowledgement an outcome entry records, checked with the partner's
    public JWK (or JWKS) and, when given, against `sent_hash` (base64url SHA-256 of the
    JWE sent). Takes the entry itself or the answer of `GET /v1/log/entries/{index}`.
    AcknowledgementInvalid (reason "malformed" for an entry that is not one) otherwise."""
    entry = _json_object(outcome_entry_json, "the outcome entry")
    if isinstance(entry.get("entry"), dict):
        entry = entry["entry"]  # GET /v1/log/entries/{index} wraps it
    if entry.get("kind") != "outcome":
        raise AcknowledgementInvalid(
            "malformed", "not an outcome entry (its kind is not 'outcome')"
        )
    disclosure_id = entry.get("disclosure_id")
    ack = entry.get("ack")
    if not isinstance(disclosure_id, str):
        raise AcknowledgementInvalid("malformed", "the outcome entry has no disclosure_id")
    if ack is None:
        raise AcknowledgementInvalid(
            "missing", f"outcome of {disclosure_id} records no acknowledgement (no 'ack' member)"
        )
    if ack in (MISSING, INVALID):
        reason = entry.get("ack_reason")
        code = reason if isinstance(reason, str) and reason in REASONS else ack
        raise AcknowledgementInvalid(
            code, f"the gateway recorded the acknowledgement of {disclosure_id} as {ack} ({code})"
        )
    if not isinstance(ack, str):
        raise AcknowledgementInvalid("malformed", "the entry's 'ack' is not a string")
    doc = _json_object(partner_public_jwk, "the partner key")
    try:
        keys = parse_acknowledgement_keys(doc, "the partner key")
    except PartnerKeyError as exc:
        raise AcknowledgementInvalid("no_key", str(exc)) from exc
    return check_acknowledgement(ack, disclosure_id=disclosure_id, sent_sha256=sent_hash, keys=keys)


# -- parsing, strictly: what passes may be written to the log ---------------------------


def _parts(token: str) -> tuple[dict[str, Any], bytes]:
    text = token.strip()
    if len(text) > MAX_TOKEN_CHARS or not text.isascii():
        raise AcknowledgementInvalid(
            "malformed", f"not a compact JWS of at most {MAX_TOKEN_CHARS} ASCII characters"
        )
    parts = text.split(".")
    if len(parts) != 3:
        raise AcknowledgementInvalid("malformed", "a compact JWS has three parts joined by '.'")
    header = _json_object(_b64decode(parts[0]), "the JWS header")
    extra = set(header) - HEADER_MEMBERS
    if extra:
        raise AcknowledgementInvalid(
            "malformed",
            f"JWS header members {sorted(extra)} not allowed; only {sorted(HEADER_MEMBERS)}",
        )
    kid, typ = header.get("kid"), header.get("typ")
    if kid is not None and not (isinstance(kid, str) and 0 < len(kid) <= MAX_KID_CHARS):
        raise AcknowledgementInvalid(
            "malformed", f"kid must be a string of 1-{MAX_KID_CHARS} chars"
        )
    if typ is not None and typ != TYP:
        raise AcknowledgementInvalid("malformed", f'typ must be "{TYP}" (or absent)')
    return header, _b64decode(parts[1])


def _payload(payload_bytes: bytes) -> dict[str, str]:
    payload = _json_object(payload_bytes, "the JWS payload")
    if set(payload) != PAYLOAD_MEMBERS:
        raise AcknowledgementInvalid(
            "malformed", f"payload members must be exactly {sorted(PAYLOAD_MEMBERS)}"
        )
    checks = {
        "disclosure_id": _DISCLOSURE_ID,
        "received_sha256": _SHA256_B64URL,
        "received_at": _RFC3339,
    }
    for name, form in checks.items():
        value = payload[name]
        if not isinstance(value, str) or not form.match(value):
            raise AcknowledgementInvalid("malformed", f"payload member {name} is not of its form")
    return payload


def _verifies(token: str, key: AcknowledgementKey, alg: str) -> bool:
    try:
        # EdDSA is RFC 9864's deprecated name of Ed25519, accepted without its warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            jws.deserialize_compact(token.strip(), key.key, algorithms=[alg])
    except (JoseError, ValueError):
        return False
    return True


def _b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise AcknowledgementInvalid("malformed", "a JWS part is not base64url") from exc


def _json_object(raw: str | bytes | Mapping[str, Any], what: str) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise AcknowledgementInvalid("malformed", f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise AcknowledgementInvalid("malformed", f"{what} is not a JSON object")
    return value


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
