"""The gateway's key files: where each lives (`KeyPaths`), its signing keys and their rotation,
the encryption key, and the JWKS it publishes.

Files under the keys directory (private ones 0600, all git-ignored):

- `gateway-signing.private.jwks.json`: the keys that sign disclosure JWTs, one
  active key per JWS algorithm family (ES256 on P-256, Ed25519, PS256 on
  RSA-2048). Each member is a private JWK with `kid` (RFC 7638 thumbprint),
  `alg`, `use: "sig"` and rotation metadata kept as custom members, as
  NumericDate integers (seconds since the epoch, like JWT claims):
  `iat` (created), and once rotated out `retired_at` (no longer signs) and
  `publish_until` (end of the grace period: until then verifiers still find the
  public half in the published JWKS, so tokens signed just before a rotation
  stay verifiable). Rotation metadata never leaves this file.
- `gateway-encryption.private.jwk.json`: P-256 key partners encrypt their JWE
  responses to (published with `use: "enc"`, `alg: "ECDH-ES+A256KW"`).
- `log-signing.private.pem` (Ed25519, PKCS#8), after a rotation also
  `log-signing.next.pem` (until the switch) and `log-signing.previous/` (the retired keys,
  gateway.log.key_history); `log-subject.key`,
  `pseudonym-master.key` and `review-session.key` (signs the review page's session
  cookies): 32 random bytes each, base64 on one line.
- `dev-issuer.private.jwk.json` and the public `callers.jwks.json`: the local
  development issuer of caller tokens (gateway.crypto.dev_tokens).
- `sandbox/`: material for partners whose base_url is on loopback
  (gateway.crypto.sandbox_keys).

`gateway keys generate` creates what is missing (gateway.crypto.generate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.crypto.at_rest import at_rest_key_files, lookup_key_file
from gateway.crypto.key_files import Jwk, json_bytes, read_json_key
from gateway.crypto.subject_keys import key_file as subject_key_file
from gateway.errors import ConfigError
from gateway.files import write_atomically
from gateway.partners.model import SIGN_ALGS

DEFAULT_GRACE: Final = timedelta(days=7)
RSA_BITS: Final = 2048
ENCRYPTION_ALG: Final = "ECDH-ES+A256KW"
# The only members a published JWK may carry: a whitelist, so a private member
# or internal metadata can never leak through a new key type or a custom field.
PUBLIC_MEMBERS: Final = frozenset({"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"})
# Rotation metadata: kept in the signing key file only, never in a parsed or published key.
ROTATION_MEMBERS: Final = ("iat", "retired_at", "publish_until")


class _KeyFile:
    """A `KeyPaths` attribute: the file (or folder) `name` under the keys directory."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, paths: KeyPaths, owner: type[KeyPaths] | None = None) -> Path:
        return paths.root / self.name


@dataclass(frozen=True)
class KeyPaths:
    """Where each key lives under the keys directory: one line a file, so the layout reads
    as a table; a file whose name another module owns is a property that asks it."""

    root: Path

    gateway_signing = _KeyFile("gateway-signing.private.jwks.json")
    gateway_encryption = _KeyFile("gateway-encryption.private.jwk.json")
    log_signing = _KeyFile("log-signing.private.pem")
    # A log key rotation (gateway.log.key_history): the next key, made before the switch so
    # witnesses can be told its vkey, and the retired keys with their switch records.
    log_signing_next = _KeyFile("log-signing.next.pem")
    log_signing_previous = _KeyFile("log-signing.previous")
    pseudonym_master = _KeyFile("pseudonym-master.key")
    # HMAC key of the review page's session cookies (shared by every instance).
    review_session = _KeyFile("review-session.key")
    dev_issuer = _KeyFile("dev-issuer.private.jwk.json")
    callers_jwks = _KeyFile("callers.jwks.json")
    sandbox = _KeyFile("sandbox")
    sandbox_ca_cert = _KeyFile("sandbox/ca.pem")
    sandbox_ca_key = _KeyFile("sandbox/ca.key.pem")

    @property
    def log_subject(self) -> Path:
        """The period-key chain of subject references (see gateway.crypto.subject_keys)."""
        return subject_key_file(self.root)

    @property
    def subject_lookup(self) -> Path:
        """HMAC key of the keyed subject references the store keeps (gateway.crypto.at_rest)."""
        return lookup_key_file(self.root)

    @property
    def at_rest(self) -> list[Path]:
        """The keys sealing free text at rest, oldest first (the newest seals new values)."""
        return list(at_rest_key_files(self.root).values())

    def sandbox_partner(self, partner_id: str) -> Path:
        """The sandbox partner's private encryption key (it decrypts what the gateway sends)."""
        return self.sandbox / f"{partner_id}.private.jwk.json"

    def sandbox_acknowledgement(self, partner_id: str) -> Path:
        """The sandbox partner's private signing key for its acknowledgements (its public
        half is at the partner file's `acknowledgement_key`)."""
        return self.sandbox / f"{partner_id}.ack.private.jwk.json"

    def sandbox_client_jwk(self, partner_id: str) -> Path:
        """Public half of the private_key_jwt client key, for the sandbox token endpoint."""
        return self.sandbox / f"{partner_id}.client.jwk.json"

    def sandbox_server_cert(self, partner_id: str) -> Path:
        return self.sandbox / f"{partner_id}.server.crt.pem"

    def sandbox_server_key(self, partner_id: str) -> Path:
        return self.sandbox / f"{partner_id}.server.key.pem"


# -- signing keys and rotation ------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """One gateway signing key as stored, with its rotation state."""

    jwk: Mapping[str, Any]  # the private JWK, rotation members included
    kid: str
    alg: str
    issued_at: datetime
    retired_at: datetime | None = None
    publish_until: datetime | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def published_at(self, now: datetime) -> bool:
        """Active keys, and retired ones until their grace period ends."""
        return self.publish_until is None or now < self.publish_until

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.jwk)

    def stored(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.jwk.items() if k not in ROTATION_MEMBERS}
        doc["iat"] = _numeric(self.issued_at)
        if self.retired_at is not None:
            doc["retired_at"] = _numeric(self.retired_at)
        if self.publish_until is not None:
            doc["publish_until"] = _numeric(self.publish_until)
        return doc


@dataclass(frozen=True)
class KeyRing:
    """The gateway's own JOSE keys as stored: signing keys (all states) and the encryption key."""

    signing: tuple[SigningKey, ...]
    encryption: Mapping[str, Any]  # private JWK

    def active(self, alg: str) -> SigningKey | None:
        """The newest active key for `alg`, if any."""
        keys = [k for k in self.signing if k.active and k.alg == alg]
        return max(keys, key=lambda k: k.issued_at) if keys else None


def public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """Only the public members of a JWK (whitelist; see PUBLIC_MEMBERS)."""
    return {k: v for k, v in jwk.items() if k in PUBLIC_MEMBERS}


def _numeric(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(value: object, path: Path, member: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(str(path), None, f"'{member}' must be seconds since the epoch (integer)")
    return datetime.fromtimestamp(value, UTC)


def new_signing_key(alg: str, now: datetime) -> SigningKey:
    """A fresh private key for one JWS algorithm, kid = RFC 7638 thumbprint."""
    key: Jwk
    if alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    elif alg == "Ed25519":
        key = OKPKey.generate_key("Ed25519", private=True)
    elif alg == "PS256":
        key = RSAKey.generate_key(RSA_BITS, private=True)
    else:
        raise ValueError(f"no signing key type for alg {alg!r}; known: {', '.join(SIGN_ALGS)}")
    key.ensure_kid()
    jwk = dict(key.as_dict(private=True, use="sig", alg=alg))
    return SigningKey(jwk=jwk, kid=str(jwk["kid"]), alg=alg, issued_at=_whole_seconds(now))


def _whole_seconds(moment: datetime) -> datetime:
    # Stored as NumericDate: drop sub-seconds so a loaded key equals the one made.
    return datetime.fromtimestamp(_numeric(moment), UTC)


def load_signing_keys(path: Path) -> tuple[SigningKey, ...]:
    """Parse the private signing JWKS; refuse anything that would sign with an unknown alg."""
    doc = read_json_key(
        path, missing="signing keys not found: run 'gateway keys generate'", what="JWKS"
    )
    members = doc.get("keys")
    if not isinstance(members, list):
        raise ConfigError(str(path), None, 'expected a JWKS object {"keys": [...]}')
    keys: list[SigningKey] = []
    for index, jwk in enumerate(members):
        where = f"keys[{index}]"
        if not isinstance(jwk, dict):
            raise ConfigError(str(path), None, f"{where} is not a JWK object")
        alg, kid = jwk.get("alg"), jwk.get("kid")
        if alg not in SIGN_ALGS:
            raise ConfigError(
                str(path), None, f"{where}: alg {alg!r} is not one of {', '.join(SIGN_ALGS)}"
            )
        if not isinstance(kid, str) or not kid:
            raise ConfigError(str(path), None, f"{where}: missing 'kid'")
        if jwk.get("use") != "sig" or "d" not in jwk:
            raise ConfigError(str(path), None, f"{where}: expected a private key with use 'sig'")
        retired = jwk.get("retired_at")
        until = jwk.get("publish_until")
        keys.append(
            SigningKey(
                jwk=jwk,
                kid=kid,
                alg=str(alg),
                issued_at=_moment(jwk.get("iat"), path, "iat"),
                retired_at=None if retired is None else _moment(retired, path, "retired_at"),
                publish_until=None if until is None else _moment(until, path, "publish_until"),
            )
        )
    return tuple(keys)


def _store_signing_keys(path: Path, keys: Sequence[SigningKey]) -> None:
    doc = {"keys": [k.stored() for k in keys]}
    write_atomically(path, json_bytes(doc))


def load_key_ring(keys_dir: Path) -> KeyRing:
    """Read the gateway's signing and encryption keys (as stored, not yet parsed for use)."""
    paths = KeyPaths(keys_dir)
    encryption = read_json_key(
        paths.gateway_encryption, missing="encryption key not found: run 'gateway keys generate'"
    )
    if "d" not in encryption:
        raise ConfigError(str(paths.gateway_encryption), None, "expected a private JWK")
    return KeyRing(signing=load_signing_keys(paths.gateway_signing), encryption=encryption)


def published_jwks(source: Path | KeyRing, now: datetime) -> dict[str, Any]:
    """The public JWKS: active signing keys, retired ones still in grace, the encryption key.

    `source` is a keys directory or an already loaded KeyRing. Only public
    members are ever copied out.
    """
    ring = load_key_ring(source) if isinstance(source, Path) else source
    order = {alg: i for i, alg in enumerate(SIGN_ALGS)}
    shown = sorted(
        (k for k in ring.signing if k.published_at(now)),
        key=lambda k: (not k.active, order.get(k.alg, len(order)), -_numeric(k.issued_at)),
    )
    encryption = public_jwk(ring.encryption)
    encryption.update(use="enc", alg=str(ring.encryption.get("alg", ENCRYPTION_ALG)))
    return {"keys": [k.public_jwk() for k in shown] + [encryption]}


def rotate_signing_keys(
    keys_dir: Path, now: datetime, grace: timedelta = DEFAULT_GRACE
) -> list[SigningKey]:
    """Retire every active signing key at `now` and create a new one per algorithm.

    Retired keys stay published for `grace` (it must outlive the longest JWT
    lifetime, so tokens signed just before rotation still verify); keys whose
    grace already ended are dropped from the file. Returns the new keys.
    A running gateway keeps the keys it loaded: restart it to sign with the new ones.
    """
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    path = KeyPaths(keys_dir).gateway_signing
    existing = load_signing_keys(path) if path.exists() else ()
    moment = _whole_seconds(now)
    kept = [
        replace(k, retired_at=moment, publish_until=moment + grace) if k.active else k
        for k in existing
        if k.published_at(moment)
    ]
    fresh = [new_signing_key(alg, moment) for alg in SIGN_ALGS]
    _store_signing_keys(path, fresh + kept)
    return fresh


def ensure_signing_keys(path: Path, now: datetime) -> bool:
    """Add an active key for every algorithm that has none; True when the file changed."""
    existing = load_signing_keys(path) if path.exists() else ()
    ring = KeyRing(signing=existing, encryption={})
    missing = [alg for alg in SIGN_ALGS if ring.active(alg) is None]
    if not missing:
        return False
    _store_signing_keys(path, [*existing, *(new_signing_key(alg, now) for alg in missing)])
    return True
