"""Sign-then-encrypt for disclosures, decryption of partner responses, partner keys (joserfc).

What leaves the gateway (CONTRACT §4.1) is a compact JWE whose plaintext is a
compact JWS (a JWT): signed with the gateway's active key for the partner's
`sign_alg` (ES256 by default, `Ed25519` — the fully specified RFC 9864 name,
which joserfc and jwcrypto both implement — or PS256), then encrypted to the
partner's public key with the partner file's `alg`/`enc`.

Sealing goes through `gateway.crypto.jose` (the same tokens on `cryptography`
directly, without joserfc's per-call overhead) for the algorithms it covers,
and through joserfc for anything else; partner responses are always opened
by joserfc. Every joserfc call gets a registry built once here with an
explicit algorithm list, never the library's defaults. joserfc and
`cryptography` errors are translated into GatewayError at this boundary;
details name partners, kids and algorithms, never a token or a payload value.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwe import JWERegistry
from joserfc.jws import JWSRegistry

from gateway.crypto import jose as jose_seal
from gateway.crypto.keyring import (
    ROTATION_MEMBERS,
    KeyPaths,
    KeyRing,
    load_key_ring,
    published_jwks,
)
from gateway.errors import (
    ConfigError,
    GatewayError,
    InternalServerError,
    PartnerKeyExpiredError,
    PartnerUnavailableError,
)
from gateway.partners.keyfile import (
    KEY_CLASSES,
    PartnerKeyError,
    PublicKey,
    last_expiry,
    parse_partner_keys,
    read_partner_key_file,
)

# Re-exported: the pipeline's key port and the tests name the sealing recipient here.
from gateway.partners.keyfile import PartnerKey as PartnerKey
from gateway.partners.model import CONTENT_ENCS, KEY_ALGS, SIGN_ALGS, Partner
from gateway.problem_catalog import KEY_RECHECK_S, PARTNER_RETRY_AFTER_S

JWT_LIFETIME: Final = timedelta(seconds=300)
RESPONSE_KEY_ALGS: Final = ("ECDH-ES+A256KW", "ECDH-ES", "RSA-OAEP-256")
RESPONSE_ENCS: Final = ("A256GCM", "A128GCM")
REGISTERED_CLAIMS: Final = frozenset(
    {"iss", "aud", "iat", "exp", "jti", "purpose", "legal_basis", "data", "nbf", "sub"}
)


class _ResponseRegistry(JWERegistry):
    """Partner responses may exceed joserfc's 64 KiB default; cap them at the request body limit."""

    max_ciphertext_length: int = 1_048_576


# -- claims -------------------------------------------------------------------


def claims_for(
    *,
    issuer: str,
    partner_id: str,
    disclosure_id: str,
    purpose: str,
    legal_basis: str,
    data: Mapping[str, Any],
    now: datetime,
    lifetime: timedelta = JWT_LIFETIME,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The disclosure JWT's claims (CONTRACT §4.1); `extra` may add, never replace, a claim."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": partner_id,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": disclosure_id,
        "purpose": purpose,
        "legal_basis": legal_basis,
        "data": dict(data),
    }
    for name, value in (extra or {}).items():
        if name in REGISTERED_CLAIMS:
            raise ValueError(f"extra claim {name!r} would replace a contract claim")
        claims[name] = value
    return claims


# -- partner keys -------------------------------------------------------------


def load_partner_key_file(path: Path, *, alg: str | None = None) -> PartnerKey:
    """The first encryption key in a JWK/JWKS file (partners.read_partner_key_file, the
    one reader, says what is refused).

    The loader of partner files checked this file at start, so a failure here
    means it changed since: a configuration problem, not the partner's.
    """
    return _read_key_file(path, alg)[0]


def _read_key_file(path: Path, alg: str | None) -> list[PartnerKey]:
    try:
        return read_partner_key_file(path, alg=alg)
    except PartnerKeyError as exc:
        raise InternalServerError(f"{exc}; run 'gateway partners validate'") from exc


def _pick(keys: list[PartnerKey], kid: str | None, now: datetime) -> PartnerKey | None:
    live = [k for k in keys if not k.expired(now)]
    if kid is not None:
        live = [k for k in live if k.kid == kid]
    return live[0] if live else None


def _no_key(
    partner: Partner,
    keys: list[PartnerKey],
    kid: str | None,
    where: str,
    recheck_s: float | None = None,
) -> GatewayError:
    """The refusal when no key fits: all expired (partner_key_expired), or no such kid.
    `recheck_s`: when the gateway looks for a new key by itself (a JWKS URL); None for a
    key file, which only an operator replaces (so no Retry-After)."""
    if kid is None and keys:
        return PartnerKeyExpiredError(
            f"every encryption key of {partner.id} in {where} has expired and an expired "
            "key is never used; the partner must provide a current key",
            retry_after_s=recheck_s,
        )
    wanted = f"with kid {kid!r}" if kid else "at all"
    return PartnerUnavailableError(
        f"no encryption key of {partner.id} {wanted} in {where}; the partner must "
        "provide a current key",
        retry_after_s=recheck_s,
    )


@dataclass
class _Fetched:
    keys: list[PartnerKey]
    fetched_at: float


class PartnerKeyCache:
    """Serves each partner's encryption key from its file (parsed once) or its JWKS URL.

    A fetched JWKS is kept `ttl` seconds; it is fetched again when stale, when
    a kid is asked for that it does not hold, or when all its keys expired —
    but not more often than every `min_refetch` seconds, so a kid the partner
    never published cannot turn into a request per disclosure.
    `clock` returns seconds since the epoch (injectable for tests).
    """

    MAX_JWKS_BYTES: Final = 64 * 1024

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        ttl: float = 3600.0,
        min_refetch: float = KEY_RECHECK_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._ttl = ttl
        self._min_refetch = min(min_refetch, ttl)
        self._clock = clock
        self._files: dict[Path, list[PartnerKey]] = {}
        self._urls: dict[str, _Fetched] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_for(self, partner: Partner, kid: str | None = None) -> PartnerKey:
        now = datetime.fromtimestamp(self._clock(), UTC)
        enc = partner.encryption
        if enc.public_key is not None:
            keys = self._files.get(enc.public_key)
            if keys is None:
                keys = _read_key_file(enc.public_key, enc.alg)
                self._files[enc.public_key] = keys
            found = _pick(keys, kid, now)
            if found is None:
                raise _no_key(partner, keys, kid, str(enc.public_key))
            return found
        if enc.public_key_url is None:
            raise InternalServerError(f"partner {partner.id} has no encryption key")
        return await self._from_url(partner, enc.public_key_url, kid, now)

    async def _from_url(
        self, partner: Partner, url: str, kid: str | None, now: datetime
    ) -> PartnerKey:
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._urls.get(url)
            age = None if cached is None else self._clock() - cached.fetched_at
            if cached is not None and age is not None and age < self._ttl:
                found = _pick(cached.keys, kid, now)
                if found is not None:
                    return found
            if cached is not None and age is not None and age < self._min_refetch:
                keys = cached.keys
            else:
                keys = await self._fetch(partner, url)
                self._urls[url] = _Fetched(keys, self._clock())
        found = _pick(keys, kid, now)
        if found is None:
            raise _no_key(partner, keys, kid, f"the JWKS at {url}", self._min_refetch)
        return found

    async def keys_expire_at(self, partner: Partner) -> datetime | None:
        """When the last of the partner's known encryption keys expires (see `last_expiry`).

        No network I/O in the common case: from the key file (parsed once) or the
        JWKS fetched last; None while a JWKS was never fetched or a file cannot be
        read (`key_for` then reports the problem). When every known key of a JWKS
        has expired it is fetched again (at most every `min_refetch` s), since the
        partner may have published a new key.
        """
        enc = partner.encryption
        if enc.public_key is not None:
            try:
                keys = self._files.get(enc.public_key) or _read_key_file(enc.public_key, enc.alg)
            except GatewayError:
                return None
            self._files[enc.public_key] = keys
            return last_expiry(keys)
        url = enc.public_key_url
        cached = self._urls.get(url) if url is not None else None
        if cached is None:
            return None
        now = datetime.fromtimestamp(self._clock(), UTC)
        if all(k.expired(now) for k in cached.keys):
            try:
                await self.key_for(partner)
            except GatewayError:
                pass  # still expired, or unreachable: what is held decides
            cached = self._urls.get(url, cached) if url is not None else cached
        return last_expiry(cached.keys)

    async def refresh(self, partner: Partner) -> None:
        """Fetch a JWKS partner's keys now (the scheduled refresh); GatewayError if it fails,
        keeping the keys held. A partner with a key file has nothing to refresh."""
        url = partner.encryption.public_key_url
        if url is None or partner.encryption.public_key is not None:
            return
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            keys = await self._fetch(partner, url)
            self._urls[url] = _Fetched(keys, self._clock())

    def forget_files(self) -> None:
        """Drop the parsed key files (after a reload: a partner file may name another)."""
        self._files.clear()

    async def _fetch(self, partner: Partner, url: str) -> list[PartnerKey]:
        why: str
        try:
            async with self._session.get(
                url,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=partner.timeout_s),
                headers={"Accept": "application/jwk-set+json, application/json"},
            ) as response:
                if response.status != 200:
                    why = f"status {response.status} (expected 200, no redirects followed)"
                else:
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(8192):
                        body += chunk
                        if len(body) > self.MAX_JWKS_BYTES:
                            raise ValueError(f"JWKS larger than {self.MAX_JWKS_BYTES} bytes")
                    where = f"the JWKS at {url}"
                    return parse_partner_keys(json.loads(body), where, alg=partner.encryption.alg)
        except TimeoutError:
            why = f"no answer within {partner.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            why = f"network error ({exc.__class__.__name__})"
        except PartnerKeyError as exc:
            why = str(exc)
        except (ValueError, RecursionError) as exc:
            why = f"bad JWKS ({exc})"
        # The next disclosure fetches again (a failed fetch is not cached).
        raise PartnerUnavailableError(
            f"could not fetch encryption keys of {partner.id}: {why}",
            retry_after_s=PARTNER_RETRY_AFTER_S,
        )


# -- the gateway's keys -------------------------------------------------------


@dataclass(frozen=True)
class _Signer:
    kid: str
    key: PublicKey  # private here
    fast: jose_seal.JwtSigner | None  # None: joserfc signs


class GatewayKeys:
    """The gateway's signing and encryption keys, parsed once at start."""

    def __init__(self, ring: KeyRing, source: Path | None = None) -> None:
        self._ring = ring
        signers: dict[str, _Signer] = {}
        for alg in SIGN_ALGS:
            stored = ring.active(alg)
            if stored is None:
                raise ConfigError(
                    str(KeyPaths(source).gateway_signing if source else "signing keys"),
                    None,
                    f"no active {alg} signing key: run 'gateway keys generate'",
                )
            key = _import(stored.jwk)
            fast = jose_seal.jwt_signer(alg, stored.kid, key.private_key)
            signers[alg] = _Signer(stored.kid, key, fast)
        self._signers = signers
        self._decryption_key = _import(ring.encryption)
        self._sign_registry = JWSRegistry(algorithms=list(SIGN_ALGS))
        self._seal_registry = JWERegistry(algorithms=[*KEY_ALGS, *CONTENT_ENCS])
        self._response_registry = _ResponseRegistry(algorithms=[*RESPONSE_KEY_ALGS, *RESPONSE_ENCS])

    @classmethod
    def load(cls, keys_dir: Path, now: datetime | None = None) -> GatewayKeys:
        """Read and parse keys_dir once; ConfigError if a key is missing or unusable.

        Which keys sign is decided by rotation state alone, so `now` is not
        needed here (kept so callers need not change if that ever changes).
        """
        del now
        return cls(load_key_ring(keys_dir), keys_dir)

    def jwks(self, now: datetime | None = None) -> dict[str, Any]:
        """The published JWKS (GET /.well-known/jwks.json), public members only."""
        return published_jwks(self._ring, now or datetime.now(UTC))

    def signing_kid(self, sign_alg: str) -> str:
        """The kid new JWTs signed with `sign_alg` carry."""
        return self._signer(sign_alg).kid

    def _signer(self, sign_alg: str) -> _Signer:
        signer = self._signers.get(sign_alg)
        if signer is None:
            raise InternalServerError(f"sign_alg {sign_alg!r} is not one of {', '.join(SIGN_ALGS)}")
        return signer

    def seal(
        self,
        claims: Mapping[str, Any],
        *,
        sign_alg: str,
        recipient: PartnerKey,
        alg: str,
        enc: str,
    ) -> str:
        """Sign `claims` as a JWT, then encrypt it to `recipient`: the compact JWE.

        Each step takes jose_seal's direct path where it covers the key and
        algorithms (every shipped combination does), joserfc's otherwise.
        """
        signer = self._signer(sign_alg)
        try:
            return self._encrypt(self._sign(signer, sign_alg, claims), recipient, alg, enc)
        except (JoseError, ValueError) as exc:
            raise InternalServerError(
                f"cannot seal with sign_alg {sign_alg}, alg {alg}, enc {enc} to a "
                f"{recipient.key.key_type} key: {exc.__class__.__name__}; check the partner's "
                f"[encryption] alg ({', '.join(KEY_ALGS)}) and enc ({', '.join(CONTENT_ENCS)})",
            ) from exc

    def _sign(self, signer: _Signer, sign_alg: str, claims: Mapping[str, Any]) -> bytes:
        if signer.fast is not None:
            return signer.fast.jwt(claims)
        header = {"alg": sign_alg, "kid": signer.kid, "typ": "JWT"}
        signed = jwt.encode(header, dict(claims), signer.key, registry=self._sign_registry)
        return signed.encode("ascii")

    def _encrypt(self, signed: bytes, recipient: PartnerKey, alg: str, enc: str) -> str:
        # The allowlist is the partner files' (KEY_ALGS, CONTENT_ENCS), not jose_seal's.
        if alg in KEY_ALGS and enc in CONTENT_ENCS:
            # joserfc parses `public_key` once per key object (a cached property).
            sealed = jose_seal.encrypt_jwt(
                signed, alg=alg, enc=enc, kid=recipient.kid, public_key=recipient.key.public_key
            )
            if sealed is not None:
                return sealed
        header: dict[str, Any] = {"alg": alg, "enc": enc, "cty": "JWT"}
        if recipient.kid is not None:
            header["kid"] = recipient.kid
        return jwe.encrypt_compact(header, signed, recipient.key, registry=self._seal_registry)

    def open_response(self, token: str | bytes) -> bytes:
        """Decrypt a partner's compact JWE addressed to the gateway's encryption key."""
        try:
            opened = jwe.decrypt_compact(
                token, self._decryption_key, registry=self._response_registry
            )
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            # ValueError covers bad base64/JSON/UTF-8; Type/KeyError a header of the wrong shape.
            raise PartnerUnavailableError(
                f"partner response is not a JWE the gateway can open ({exc.__class__.__name__}); "
                f"expected alg {' | '.join(RESPONSE_KEY_ALGS)}, enc {' | '.join(RESPONSE_ENCS)} "
                "to the 'enc' key in the gateway's JWKS",
            ) from exc
        return bytes(opened.plaintext or b"")


def _import(jwk: Mapping[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    cls = KEY_CLASSES.get(str(kty))
    if cls is None:
        raise ConfigError("keys", None, f"unsupported key type {kty!r} in the gateway's keys")
    members = {k: v for k, v in jwk.items() if k not in ROTATION_MEMBERS}
    return cls.import_key(members)
