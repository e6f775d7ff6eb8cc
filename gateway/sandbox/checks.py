"""What a careful partner checks on a disclosure that arrives, and how it seals its answer.

`Envelope` opens the compact JWE with the partner's own key and exactly the algorithms
of its partner file, then verifies the gateway's JWS inside against the gateway's
published JWKS (fetched lazily from a URL, refetched once for an unknown kid);
`check_claims` holds the claims to what the partner agreed: audience, issuer, expiry,
purpose, legal basis, the agreed fields and the path placeholders. Every failure is a
`Refusal` whose detail says what was expected. `Envelope.seal` encrypts an answer to
the gateway's "enc" key when the sandbox answers encrypted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiohttp import web
from joserfc import jwe, jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwe import JWERegistry
from joserfc.jwk import Key, import_key

from gateway.errors import ConfigError
from gateway.partners.model import Operation, PartnerEncryption
from gateway.sandbox.refusal import Refusal

__all__ = ["JOSE", "LEEWAY_S", "Envelope", "check_claims", "jose_reason", "number", "sign_algs"]

JOSE: Final = "application/jose"
# Seconds of clock difference tolerated on exp/iat, as most partners allow.
LEEWAY_S: Final = 30.0
# How the sandbox answers encrypted: key-management algorithm for the gateway's key type.
RESPONSE_KEY_ALG: Final[Mapping[str, str]] = {
    "EC": "ECDH-ES+A256KW",
    "OKP": "ECDH-ES+A256KW",
    "RSA": "RSA-OAEP-256",
}
RESPONSE_ENC: Final = "A256GCM"
# aiohttp's default request body limit; joserfc's own default (64 KiB) would refuse
# a large but legitimate disclosure before aiohttp does.
MAX_BODY_BYTES: Final = 1024**2
CLAIMS: Final = ("iss", "aud", "iat", "exp", "jti", "purpose", "legal_basis", "data")


@dataclass
class _Jwks:
    """The gateway's published keys, by kid; fetched lazily when given as a URL."""

    url: str | None
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    imported: dict[str, Key] = field(default_factory=dict)  # parsed once: benchmarks reuse them
    fetches: int = 0


class _DisclosureRegistry(JWERegistry):
    max_ciphertext_length = MAX_BODY_BYTES


class Envelope:
    """The sealed disclosure as one partner opens it: its key, its algorithms, the gateway's
    JWKS (a document, or a URL fetched on first use). Close it to end the JWKS session."""

    def __init__(
        self,
        encryption: PartnerEncryption,
        private_key: Mapping[str, Any],
        gateway_jwks: str | Mapping[str, Any],
    ) -> None:
        self._encryption = encryption
        self._private_key = import_key(dict(private_key))
        self._registry = _DisclosureRegistry(algorithms=[encryption.alg, encryption.enc])
        self._jwks = _parse_jwks(gateway_jwks)
        self._jwks_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def open(self, request: web.Request) -> dict[str, Any]:
        """Decrypt the JWE, verify the JWS inside it, return the JWT claims."""
        content_type = request.content_type
        if content_type != JOSE:
            raise Refusal(415, "unsupported_media_type", f"expected {JOSE}, got {content_type}")
        body = (await request.read()).strip()
        enc = self._encryption
        try:
            opened = jwe.decrypt_compact(body, self._private_key, registry=self._registry)
        except (JoseError, ValueError) as exc:
            raise Refusal(
                400,
                "invalid_jwe",
                f"cannot decrypt: {jose_reason(exc)}; expected a compact JWE with "
                f"alg {enc.alg} and enc {enc.enc} to our key",
            ) from exc
        token = (opened.plaintext or b"").strip()
        header = _compact_header(token)
        alg = header.get("alg")
        allowed = sign_algs(enc.sign_alg)
        if alg not in allowed:
            raise Refusal(
                400, "invalid_signature", f"JWS alg {alg!r} not allowed; expected {allowed[0]}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Refusal(
                400, "invalid_signature", "JWS header has no kid naming a key of the gateway's JWKS"
            )
        key = await self._gateway_key(kid)
        try:
            # EdDSA is RFC 9864's deprecated name for Ed25519; it stays accepted here
            # without failing test runs on its SecurityWarning.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)
                verified = jws.deserialize_compact(token, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise Refusal(
                400,
                "invalid_signature",
                f"JWS does not verify with kid {kid!r}: {jose_reason(exc)}",
            ) from exc
        try:
            claims = json.loads(verified.payload or b"")
        except ValueError as exc:
            raise Refusal(400, "invalid_claims", "JWS payload is not JSON") from exc
        if not isinstance(claims, dict):
            raise Refusal(400, "invalid_claims", "JWS payload is not a JSON object of claims")
        return claims

    def seal(self, plain: bytes) -> str:
        """`plain` as a compact JWE to the gateway's encryption key (the "enc" key of its JWKS)."""
        candidates = [k for k in self._jwks.keys.values() if k.get("use") == "enc"]
        if not candidates:
            raise Refusal(500, "no_gateway_enc_key", "the gateway's JWKS has no key with use 'enc'")
        jwk = candidates[0]
        alg = jwk.get("alg") if jwk.get("alg") in RESPONSE_KEY_ALG.values() else None
        alg = alg or RESPONSE_KEY_ALG.get(str(jwk.get("kty")), "")
        header: dict[str, Any] = {"alg": alg, "enc": RESPONSE_ENC, "cty": "application/json"}
        if "kid" in jwk:
            header["kid"] = jwk["kid"]
        return jwe.encrypt_compact(header, plain, import_key(jwk), algorithms=[alg, RESPONSE_ENC])

    async def _gateway_key(self, kid: str) -> Key:
        """The gateway's signing key `kid`, refetching the JWKS once when it is unknown."""
        jwk = self._jwks.keys.get(kid)
        if jwk is None and self._jwks.url is not None:
            await self._refresh_jwks()
            jwk = self._jwks.keys.get(kid)
        if jwk is None or jwk.get("use", "sig") != "sig":
            raise Refusal(
                400, "unknown_kid", f"kid {kid!r} is not a signing key in the gateway's JWKS"
            )
        cached = self._jwks.imported.get(kid)
        if cached is not None:
            return cached
        try:
            key = import_key(jwk)
        except (JoseError, ValueError) as exc:
            raise Refusal(
                400, "unknown_kid", f"kid {kid!r} in the gateway's JWKS is not a usable key"
            ) from exc
        self._jwks.imported[kid] = key
        return key

    async def _refresh_jwks(self) -> None:
        """Fetch the JWKS; requests that waited on a fetch in flight share its result."""
        url = self._jwks.url
        assert url is not None
        seen = self._jwks.fetches
        async with self._jwks_lock:
            if self._jwks.fetches != seen:
                return
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            try:
                async with self._session.get(url) as response:
                    response.raise_for_status()
                    keys = _keys_by_kid(await response.json(content_type=None))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                # 503 so the gateway retries: like a partner whose key cache is down.
                raise Refusal(
                    503,
                    "jwks_unavailable",
                    f"cannot fetch the gateway's JWKS from {url} ({type(exc).__name__})",
                ) from exc
            self._jwks.keys = keys
            self._jwks.imported.clear()
            self._jwks.fetches += 1


def check_claims(
    claims: Mapping[str, Any],
    request: web.Request,
    op: Operation,
    *,
    partner_id: str,
    expected_issuer: str | None,
    now: float,
) -> None:
    """Refuse claims that are not what `partner_id` agreed for `op`, checked at `now`."""
    missing = [c for c in CLAIMS if c not in claims]
    if missing:
        raise Refusal(400, "invalid_claims", f"missing claims {missing}")
    if expected_issuer is not None and claims["iss"] != expected_issuer:
        raise Refusal(400, "invalid_claims", f"iss {claims['iss']!r}; expected {expected_issuer!r}")
    aud = claims["aud"]
    if not (aud == partner_id or (isinstance(aud, list) and partner_id in aud)):
        raise Refusal(400, "invalid_audience", f"aud {aud!r}; expected {partner_id!r}")
    exp, iat = number(claims["exp"]), number(claims["iat"])
    if exp is None or iat is None:
        raise Refusal(400, "invalid_claims", "exp and iat must be NumericDate numbers")
    if exp < now - LEEWAY_S:
        raise Refusal(400, "expired", f"JWT expired {now - exp:.0f} s ago")
    if iat > now + LEEWAY_S:
        raise Refusal(400, "invalid_claims", f"iat is {iat - now:.0f} s in the future")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise Refusal(400, "invalid_claims", "jti must be the disclosure id (a non-empty string)")
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and idem != jti:
        raise Refusal(400, "idempotency_key_mismatch", "Idempotency-Key must equal the JWT's jti")
    if claims["purpose"] not in op.purposes:
        raise Refusal(
            400,
            "purpose_not_agreed",
            f"purpose {claims['purpose']!r} not among {sorted(op.purposes)}",
        )
    if claims["legal_basis"] not in op.legal_bases:
        raise Refusal(
            400,
            "legal_basis_not_agreed",
            f"legal_basis {claims['legal_basis']!r} not among {sorted(op.legal_bases)}",
        )
    data = claims["data"]
    if not isinstance(data, dict):
        raise Refusal(400, "invalid_claims", "data must be a JSON object of fields")
    agreed = {name for name, transform in op.fields.items() if transform != "drop"}
    extra = sorted(set(data) - agreed)
    if extra:
        raise Refusal(
            400,
            "field_not_agreed",
            f"fields {extra} are not agreed for {op.name}; agreed: {sorted(agreed)}",
        )
    check_withdrawal_notice(claims)
    for name, segment in request.match_info.items():
        value = data.get(name)
        shown = value if isinstance(value, str) else json.dumps(value)
        if value is None or shown != segment:
            raise Refusal(
                400,
                "path_mismatch",
                f"path placeholder {{{name}}} does not match data field '{name}'",
            )


def sign_algs(sign_alg: str) -> tuple[str, ...]:
    """The JWS algorithm names that mean `sign_alg`."""
    # RFC 9864 renamed EdDSA-with-Ed25519 to "Ed25519"; gateways may still send the old name.
    return (sign_alg, "EdDSA") if sign_alg == "Ed25519" else (sign_alg,)


def jose_reason(exc: Exception) -> str:
    """A joserfc failure as a refusal's detail: its error code and description."""
    code = getattr(exc, "error", None)
    description = getattr(exc, "description", None) or str(exc)
    return f"{code}: {description}" if code else description


def number(value: object) -> float | None:
    """A JSON number as float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _parse_jwks(source: str | Mapping[str, Any]) -> _Jwks:
    if isinstance(source, str):
        return _Jwks(url=source)
    try:
        return _Jwks(url=None, keys=_keys_by_kid(source))
    except ValueError as exc:
        raise ConfigError("gateway JWKS", None, str(exc)) from exc


def _keys_by_kid(doc: object) -> dict[str, dict[str, Any]]:
    keys = doc.get("keys") if isinstance(doc, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError('the gateway\'s JWKS is not a {"keys": [...]} document')
    return {str(k["kid"]): dict(k) for k in keys if isinstance(k, Mapping) and "kid" in k}


def _compact_header(token: bytes) -> dict[str, Any]:
    segments = token.split(b".")
    if len(segments) != 3:
        raise Refusal(
            400, "invalid_signature", "JWE plaintext is not a compact JWS (three segments)"
        )
    try:
        raw = base64.urlsafe_b64decode(segments[0] + b"=" * (-len(segments[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise Refusal(
            400, "invalid_signature", "JWS protected header is not base64url JSON"
        ) from exc
    if not isinstance(header, dict):
        raise Refusal(400, "invalid_signature", "JWS protected header is not a JSON object")
    return header


def check_withdrawal_notice(claims: Mapping[str, Any]) -> None:
    """A consent-withdrawal notice names what the partner received (CONTRACT §4.4): the
    consent's id and the partner's own disclosure ids under it."""
    if claims.get("notice") != "consent_withdrawn":
        return
    ids = claims.get("disclosure_ids")
    if not isinstance(claims.get("consent_id"), str) or not claims["consent_id"]:
        raise Refusal(400, "invalid_claims", "a consent_withdrawn notice names its consent_id")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise Refusal(
            400,
            "invalid_claims",
            "a consent_withdrawn notice names the disclosure_ids it is about (strings)",
        )
