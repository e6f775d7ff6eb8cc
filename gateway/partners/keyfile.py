"""The one reader of a partner's public encryption keys (a JWK or JWKS file, or a fetched
JWKS), whoever asks: the loader (a refusal at the partner file's `public_key` line), the
key cache that seals (internal_error) and partner standing (key expiry; None when
unreadable, since the loader reports it). The same document is accepted or refused the
same way by all three; a fetched JWKS (`public_key_url`) goes through the same parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode

from gateway.partners.model import KTY_FOR_ALG

PublicKey = ECKey | OKPKey | RSAKey
KEY_CLASSES: Final[dict[str, type[PublicKey]]] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
MIN_RSA_BITS: Final = 2048
# Members only a private or symmetric JWK has: a partner publishes public halves only.
_SECRET_MEMBERS: Final = ("d", "p", "k")


class PartnerKeyError(ValueError):
    """A partner key document the gateway cannot encrypt to. The message names the
    document and says what is wrong and what would fix it; it never quotes key material."""


@dataclass(frozen=True)
class PartnerKey:
    """A partner's public encryption key, parsed once."""

    key: PublicKey
    kid: str | None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def read_partner_key_file(
    path: Path, *, alg: str | None = None, shown: str | None = None
) -> list[PartnerKey]:
    """Every usable encryption key in the JWK or JWKS file at `path` (see
    `parse_partner_keys` for what is refused); PartnerKeyError otherwise. `shown`: the
    path as the partner file writes it, used in messages (the resolved path when absent)."""
    where = f"public key file {shown or str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        resolved = f" (resolved to {path})" if shown and shown != str(path) else ""
        raise PartnerKeyError(
            f"{where} not found{resolved}; put the partner's public JWK there, or run "
            "'gateway keys generate' for a sandbox partner on loopback"
        ) from exc
    except OSError as exc:
        raise PartnerKeyError(
            f"{where} cannot be read ({exc.__class__.__name__}); check it is a readable file"
        ) from exc
    except ValueError as exc:  # not UTF-8
        raise PartnerKeyError(f"{where} is not a JSON JWK/JWKS ({exc.__class__.__name__})") from exc
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PartnerKeyError(f"{where} is not a JSON JWK/JWKS ({exc.__class__.__name__})") from exc
    return parse_partner_keys(doc, where, alg=alg)


def _public_members(doc: object, where: str) -> list[dict[str, Any]]:
    """The JWK objects of a JWK or JWKS document, refused (PartnerKeyError) when it holds
    none or any private or symmetric key member: a partner key document must only ever
    hold public halves."""
    members = doc.get("keys") if isinstance(doc, dict) and "keys" in doc else [doc]
    if (
        not isinstance(members, list)
        or not members
        or not all(isinstance(m, dict) for m in members)
    ):
        raise PartnerKeyError(
            f'{where} holds no JWK: expected a JWK object or a JWKS {{"keys": [...]}}'
        )
    if any(name in m for m in members for name in _SECRET_MEMBERS):
        raise PartnerKeyError(
            f"{where} holds a PRIVATE key: a partner publishes only the public half of its "
            f"key (no private or symmetric key members {', '.join(_SECRET_MEMBERS)})"
        )
    return members


def parse_partner_keys(doc: object, where: str, *, alg: str | None = None) -> list[PartnerKey]:
    """Every usable encryption key in a JWK or JWKS document (`where` names it in messages).

    Keys for another use, or of a type that does not fit `alg`, are skipped: a JWKS may
    carry them. PartnerKeyError for a document holding a private or symmetric key — a
    partner key document must only ever hold public halves — or no usable key.
    """
    members = _public_members(doc, where)
    kinds = KTY_FOR_ALG.get(alg, ("EC", "OKP", "RSA")) if alg else ("EC", "OKP", "RSA")
    for_encryption = [m for m in members if m.get("use", "enc") == "enc"]
    if not for_encryption:
        raise PartnerKeyError(
            f"{where} holds no encryption key: give the partner's encryption key use 'enc' "
            "(or no use)"
        )
    fitting = [m for m in for_encryption if m.get("kty") in kinds]
    if not fitting:
        found = ", ".join(sorted({_short(m.get("kty")) for m in for_encryption}))
        fits = f"does not fit alg {alg}" if alg else "cannot encrypt"
        raise PartnerKeyError(
            f"{where}: key type {found} {fits}; expected kty {' or '.join(kinds)}"
        )
    return [_parse_member(member, where) for member in fitting]


def _short(value: object, limit: int = 20) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_member(member: Mapping[str, Any], where: str) -> PartnerKey:
    kty = str(member["kty"])
    try:
        if kty == "RSA":
            # Checked before import: joserfc only warns about a short modulus.
            bits = int.from_bytes(
                urlsafe_b64decode(str(member.get("n", "")).encode("ascii"))
            ).bit_length()
            if bits < MIN_RSA_BITS:
                raise ValueError(f"RSA key of {bits} bits; need >= {MIN_RSA_BITS}")
        key = KEY_CLASSES[kty].import_key(dict(member))
    except (JoseError, ValueError, TypeError) as exc:
        raise PartnerKeyError(f"{where}: bad {kty} key ({exc})") from exc
    if isinstance(key, OKPKey) and key.curve_name not in ("X25519", "X448"):
        raise PartnerKeyError(f"{where}: OKP curve {key.curve_name} cannot encrypt; use X25519")
    exp = member.get("exp")
    expires = None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        expires = datetime.fromtimestamp(exp, UTC)
    kid = member.get("kid")
    return PartnerKey(key=key, kid=kid if isinstance(kid, str) else None, expires_at=expires)


def last_expiry(keys: list[PartnerKey]) -> datetime | None:
    """When the last of `keys` expires; None when one of them never does."""
    ends = [k.expires_at for k in keys]
    if not ends or any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)


# -- the partner's signing keys (acknowledgements) ---------------------------------

# The JWS algorithms an acknowledgement may be signed with, by the key's type and curve:
# explicit, never a library's default. "EdDSA" is RFC 8037's name for Ed25519 (RFC 9864
# deprecates it in favour of "Ed25519"); libraries still write it, so both are accepted.
ACK_ALGS_FOR_KEY: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("OKP", "Ed25519"): ("Ed25519", "EdDSA"),
    ("EC", "P-256"): ("ES256",),
}


@dataclass(frozen=True)
class AcknowledgementKey:
    """A partner's public signing key, which its acknowledgements verify with."""

    key: ECKey | OKPKey
    kid: str | None
    algs: tuple[str, ...]  # the JWS algs this key may verify (ACK_ALGS_FOR_KEY)


def read_acknowledgement_key_file(
    path: Path, *, shown: str | None = None
) -> list[AcknowledgementKey]:
    """Every usable signing key in the JWK or JWKS file at `path` (the partner file's
    `acknowledgement_key`); PartnerKeyError saying what is wrong otherwise."""
    where = f"acknowledgement key file {shown or str(path)!r}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PartnerKeyError(
            f"{where} not found; put the partner's public signing JWK there, or run "
            "'gateway keys generate' for a sandbox partner on loopback"
        ) from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise PartnerKeyError(
            f"{where} cannot be read as a JSON JWK/JWKS ({exc.__class__.__name__})"
        ) from exc
    return parse_acknowledgement_keys(doc, where)


def parse_acknowledgement_keys(doc: object, where: str) -> list[AcknowledgementKey]:
    """Every usable signing key of a JWK or JWKS document: `use` "sig" (or none), an Ed25519
    or P-256 public key. Keys for another use or of another type are skipped; a private
    member anywhere, or no usable key at all, is a PartnerKeyError."""
    members = _public_members(doc, where)
    usable = [
        m
        for m in members
        if m.get("use", "sig") == "sig" and (m.get("kty"), m.get("crv")) in ACK_ALGS_FOR_KEY
    ]
    if not usable:
        raise PartnerKeyError(
            f"{where} holds no signing key the gateway verifies acknowledgements with: "
            'expected a public JWK with kty "OKP" crv "Ed25519", or kty "EC" crv "P-256", '
            'and use "sig" (or no use)'
        )
    keys = []
    for member in usable:
        kty, crv = str(member["kty"]), str(member["crv"])
        try:
            key = KEY_CLASSES[kty].import_key(dict(member))
        except (JoseError, ValueError, TypeError) as exc:
            raise PartnerKeyError(f"{where}: bad {kty} {crv} key ({exc})") from exc
        assert isinstance(key, ECKey | OKPKey)
        kid = member.get("kid")
        keys.append(
            AcknowledgementKey(
                key, kid if isinstance(kid, str) else None, ACK_ALGS_FOR_KEY[(kty, crv)]
            )
        )
    return keys
