"""Key material in keys/: what `gateway keys generate` creates, rotation, and the published JWKS.

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
- `log-signing.private.pem` (Ed25519, PKCS#8); `log-subject.key`,
  `pseudonym-master.key` and `review-session.key` (signs the review page's session
  cookies): 32 random bytes each, base64 on one line.
- `dev-issuer.private.jwk.json` and the public `callers.jwks.json`: the local
  development issuer of caller tokens; `issue_dev_token` (`gateway token CALLER_ID`)
  signs with it. It lives here, with its key, rather than in `auth` (which only
  verifies and sits in a layer below key material).
- `sandbox/`: material for partners whose base_url is on loopback, so a fresh
  clone runs the demo and the tests with no real partner: per partner its
  encryption private key (`<id>.private.jwk.json`, public half at the partner
  file's `[encryption] public_key`), secrets named by `[auth] *_file`, a
  private_key_jwt client key pair (private at `private_key_file`, PEM when the
  name ends in `.pem`, JWK otherwise; public JWK at `<id>.client.jwk.json`),
  and for mTLS partners a development CA (`ca.pem`, `ca.key.pem`), the client
  certificate and key at `cert_file`/`cert_key_file` and a server certificate
  for 127.0.0.1/::1/localhost (`<id>.server.crt.pem`, `<id>.server.key.pem`).

`generate_missing` creates only what is missing and never overwrites a file; a
half pair it cannot complete (a public key whose private half is gone) is left
alone: delete it to get a fresh pair. Partner files are read with plain
tomllib, not the validating loader, because that loader refuses a partner
whose key file does not exist yet.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import stat
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.callers.tokens import parse_jwks
from gateway.config.model import AuthConfig
from gateway.crypto.at_rest import at_rest_key_files, lookup_key_file, new_key_text
from gateway.crypto.subject_keys import ensure_key_file as ensure_subject_key_file
from gateway.crypto.subject_keys import key_file as subject_key_file
from gateway.errors import ConfigError
from gateway.files import write_atomically
from gateway.net import is_loopback_host
from gateway.partners.model import AUTH_KEYS, SIGN_ALGS

DEFAULT_GRACE: Final = timedelta(days=7)
RSA_BITS: Final = 2048
ENCRYPTION_ALG: Final = "ECDH-ES+A256KW"
DEV_ISSUER_ALG: Final = "ES256"
# The only members a published JWK may carry: a whitelist, so a private member
# or internal metadata can never leak through a new key type or a custom field.
PUBLIC_MEMBERS: Final = frozenset({"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"})
# [auth] *_file keys that name a secret token (the others hold keys/certificates).
SECRET_FILE_KEYS: Final = frozenset(k for k in AUTH_KEYS if k.endswith("_file")) - {
    "private_key_file",
    "cert_file",
    "cert_key_file",
}
CA_LIFETIME: Final = timedelta(days=5 * 365)
LEAF_LIFETIME: Final = timedelta(days=2 * 365)
MTLS_CLIENT_NAME: Final = "disclosure-gateway"

Jwk = ECKey | OKPKey | RSAKey


@dataclass(frozen=True)
class KeyPaths:
    """Where each key lives under the keys directory."""

    root: Path

    @property
    def gateway_signing(self) -> Path:
        return self.root / "gateway-signing.private.jwks.json"

    @property
    def gateway_encryption(self) -> Path:
        return self.root / "gateway-encryption.private.jwk.json"

    @property
    def log_signing(self) -> Path:
        return self.root / "log-signing.private.pem"

    @property
    def log_subject(self) -> Path:
        """The period-key chain of subject references (see gateway.crypto.subject_keys)."""
        return subject_key_file(self.root)

    @property
    def pseudonym_master(self) -> Path:
        return self.root / "pseudonym-master.key"

    @property
    def subject_lookup(self) -> Path:
        """HMAC key of the keyed subject references the store keeps (gateway.crypto.at_rest)."""
        return lookup_key_file(self.root)

    @property
    def at_rest(self) -> list[Path]:
        """The keys sealing free text at rest, oldest first (the newest seals new values)."""
        return list(at_rest_key_files(self.root).values())

    @property
    def review_session(self) -> Path:
        """HMAC key of the review page's session cookies (shared by every instance)."""
        return self.root / "review-session.key"

    @property
    def dev_issuer(self) -> Path:
        return self.root / "dev-issuer.private.jwk.json"

    @property
    def callers_jwks(self) -> Path:
        return self.root / "callers.jwks.json"

    @property
    def sandbox(self) -> Path:
        return self.root / "sandbox"

    def sandbox_partner(self, partner_id: str) -> Path:
        """The sandbox partner's private encryption key (it decrypts what the gateway sends)."""
        return self.sandbox / f"{partner_id}.private.jwk.json"

    def sandbox_client_jwk(self, partner_id: str) -> Path:
        """Public half of the private_key_jwt client key, for the sandbox token endpoint."""
        return self.sandbox / f"{partner_id}.client.jwk.json"

    @property
    def sandbox_ca_cert(self) -> Path:
        return self.sandbox / "ca.pem"

    @property
    def sandbox_ca_key(self) -> Path:
        return self.sandbox / "ca.key.pem"

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
        doc = {k: v for k, v in self.jwk.items() if k not in ("iat", "retired_at", "publish_until")}
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
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            str(path), None, "signing keys not found: run 'gateway keys generate'"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), None, f"not a JSON JWKS ({exc.__class__.__name__})") from exc
    members = doc.get("keys") if isinstance(doc, dict) else None
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
    write_atomically(path, json.dumps(doc, indent=2).encode("utf-8") + b"\n")


def load_key_ring(keys_dir: Path) -> KeyRing:
    """Read the gateway's signing and encryption keys (as stored, not yet parsed for use)."""
    paths = KeyPaths(keys_dir)
    try:
        encryption = json.loads(paths.gateway_encryption.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            str(paths.gateway_encryption),
            None,
            "encryption key not found: run 'gateway keys generate'",
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(
            str(paths.gateway_encryption), None, f"not a JSON JWK ({exc.__class__.__name__})"
        ) from exc
    if not isinstance(encryption, dict) or "d" not in encryption:
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


def _ensure_signing_keys(path: Path, now: datetime) -> bool:
    """Add an active key for every algorithm that has none; True when the file changed."""
    existing = load_signing_keys(path) if path.exists() else ()
    ring = KeyRing(signing=existing, encryption={})
    missing = [alg for alg in SIGN_ALGS if ring.active(alg) is None]
    if not missing:
        return False
    _store_signing_keys(path, [*existing, *(new_signing_key(alg, now) for alg in missing)])
    return True


# -- file writing -------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Create a 0600 file; fail rather than overwrite (O_EXCL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def _jwk_bytes(key: Jwk, **params: Any) -> bytes:
    key.ensure_kid()
    return _json_bytes(key.as_dict(private=True, **params))


def _pem_private(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def read_secret_key(path: Path) -> bytes:
    """A 32-byte symmetric key stored base64 on one line."""
    raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    if len(raw) < 32:
        raise ValueError(f"{path}: key shorter than 32 bytes")
    return raw


def add_at_rest_key(keys_dir: Path) -> Path:
    """Write the next at-rest key (``at-rest-<n+1>.key``, 0600); it seals new values from
    the next start on, and `gateway keys rotate-at-rest` re-seals stored ones with it."""
    numbers = [int(kid[2:]) for kid in at_rest_key_files(keys_dir)]
    path = keys_dir / f"at-rest-{max(numbers, default=0) + 1}.key"
    _write_private(path, new_key_text())
    return path


def new_partner_key(alg: str) -> Jwk:
    """A sandbox partner's encryption key pair for the JWE key-management `alg`."""
    if alg == "RSA-OAEP-256":
        return RSAKey.generate_key(RSA_BITS, private=True)
    if alg.startswith("ECDH-ES"):
        return OKPKey.generate_key("X25519", private=True)
    raise ValueError(f"no sandbox key type for alg {alg!r}")


# -- generate -----------------------------------------------------------------


class _Created:
    """Collects the paths written; `ensure` writes a private file only when missing."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def ensure(self, path: Path, make: Callable[[], bytes], *, private: bool = True) -> bool:
        if path.exists():
            return False
        (_write_private if private else _write_public)(path, make())
        self.paths.append(path)
        return True


def generate_missing(
    keys_dir: Path,
    partners_dir: Path | None,
    *,
    base_dir: Path | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Create every missing key; return the paths written (empty when all were present).

    Relative paths in partner files resolve against `base_dir`, by default the
    directory above `partners_dir` (as gateway.partners.model.load_partners does).
    """
    moment = now or datetime.now(UTC)
    paths = KeyPaths(keys_dir)
    out = _Created()

    if _ensure_signing_keys(paths.gateway_signing, moment):
        out.paths.append(paths.gateway_signing)
    out.ensure(
        paths.gateway_encryption,
        lambda: _jwk_bytes(
            ECKey.generate_key("P-256", private=True), use="enc", alg=ENCRYPTION_ALG
        ),
    )
    out.ensure(paths.log_signing, lambda: _pem_private(ed25519.Ed25519PrivateKey.generate()))
    if ensure_subject_key_file(keys_dir):
        out.paths.append(paths.log_subject)
    for secret_path in (paths.pseudonym_master, paths.review_session, paths.subject_lookup):
        out.ensure(secret_path, lambda: base64.b64encode(secrets.token_bytes(32)) + b"\n")
    if not paths.at_rest:
        out.ensure(keys_dir / "at-rest-1.key", new_key_text)
    issuer_created = out.ensure(
        paths.dev_issuer,
        lambda: _jwk_bytes(
            ECKey.generate_key("P-256", private=True), use="sig", alg=DEV_ISSUER_ALG
        ),
    )
    if not paths.callers_jwks.exists() or issuer_created:
        _publish_dev_issuer(paths)
        out.paths.append(paths.callers_jwks)
    if partners_dir is not None and partners_dir.is_dir():
        base = base_dir if base_dir is not None else partners_dir.resolve().parent
        for file in sorted(partners_dir.glob("*.toml")):
            _SandboxPartner(file, base, paths, moment, out).generate()
    return out.paths


def _publish_dev_issuer(paths: KeyPaths) -> None:
    """Add the dev issuer's public key to callers.jwks.json, keeping any other key listed."""
    issuer = ECKey.import_key(json.loads(paths.dev_issuer.read_text(encoding="utf-8")))
    issuer.ensure_kid()
    existing: list[dict[str, Any]] = []
    if paths.callers_jwks.exists():
        existing = json.loads(paths.callers_jwks.read_text(encoding="utf-8")).get("keys", [])
    public = public_jwk(issuer.as_dict(private=False, use="sig", alg=DEV_ISSUER_ALG))
    keys = [k for k in existing if k.get("kid") != public["kid"]] + [public]
    paths.callers_jwks.parent.mkdir(parents=True, exist_ok=True)
    paths.callers_jwks.write_text(json.dumps({"keys": keys}, indent=2) + "\n", encoding="utf-8")


def issue_dev_token(
    keys_dir: Path,
    auth: AuthConfig,
    caller_id: str,
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    """An RFC 9068 access token for `caller_id`, signed by the development issuer key.

    Raises ConfigError when the key is missing or when `auth` would not trust
    it, so `gateway token` never prints a token the gateway will refuse.
    """
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    if not caller_id:
        raise ValueError("caller_id must not be empty")
    path = KeyPaths(keys_dir).dev_issuer
    try:
        key = ECKey.import_key(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ConfigError(
            str(path), None, "no development issuer key; run `gateway keys generate`"
        ) from exc
    except (OSError, ValueError, JoseError) as exc:
        raise ConfigError(str(path), None, f"not a usable EC private JWK: {exc}") from exc
    if not key.is_private or key.kid is None:
        raise ConfigError(str(path), None, "the development issuer JWK needs 'd' and 'kid'")
    if auth.jwks is None:
        raise ConfigError(
            "config.toml",
            None,
            "auth.jwks_url points at an identity provider, which would refuse development "
            "tokens; get a token from it, or set auth.jwks = 'keys/callers.jwks.json'",
        )
    try:
        trusted, _ = parse_jwks(json.loads(auth.jwks.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(auth.jwks), None, f"cannot read the caller JWKS: {exc}") from exc
    if key.kid not in trusted:
        raise ConfigError(
            str(auth.jwks),
            None,
            f"the development issuer key {key.kid!r} is not in this JWKS; "
            "run `gateway keys generate` to add it",
        )
    issued = int(time.time() if now is None else now)
    header = {"typ": "at+jwt", "alg": DEV_ISSUER_ALG, "kid": key.kid}
    claims = {
        "iss": auth.issuer,
        "aud": auth.audience,
        "sub": caller_id,
        "client_id": caller_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(header, claims, key, algorithms=[DEV_ISSUER_ALG])


class _SandboxPartner:
    """Everything a loopback partner needs to play its part in the demo and the tests."""

    def __init__(
        self, file: Path, base: Path, paths: KeyPaths, now: datetime, out: _Created
    ) -> None:
        self.file = file
        self.id = file.stem
        self.base = base
        self.paths = paths
        self.now = now
        self.out = out

    def resolve(self, value: object) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else self.base / path

    def generate(self) -> None:
        try:
            data = tomllib.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return  # `gateway partners validate` reports it with its line
        host = urlsplit(str(data.get("base_url", ""))).hostname or ""
        if not is_loopback_host(host):
            return  # a real partner: its keys come from the partner, never from here
        encryption, auth = data.get("encryption"), data.get("auth")
        if isinstance(encryption, dict):
            self._encryption_pair(encryption)
        if isinstance(auth, dict):
            self._auth_material(auth)

    def _encryption_pair(self, encryption: Mapping[str, Any]) -> None:
        public_path = self.resolve(encryption.get("public_key"))
        if public_path is None:
            return  # public_key_url: the sandbox serves its JWKS itself
        private_path = self.paths.sandbox_partner(self.id)
        if private_path.exists():
            if not public_path.exists():
                key = _import_private_jwk(private_path)
                self.out.ensure(
                    public_path, lambda: _json_bytes(public_jwk(key.as_dict())), private=False
                )
            return
        if public_path.exists():
            return  # its private half is gone and cannot be rebuilt; see module docstring
        try:
            key = new_partner_key(str(encryption.get("alg", "")))
        except ValueError:
            return  # unknown alg: the validating loader names it
        self.out.ensure(private_path, lambda: _jwk_bytes(key, use="enc"))
        self.out.ensure(
            public_path,
            lambda: _json_bytes(public_jwk(key.as_dict(private=False, use="enc"))),
            private=False,
        )

    def _auth_material(self, auth: Mapping[str, Any]) -> None:
        for name in sorted(SECRET_FILE_KEYS & auth.keys()):
            path = self.resolve(auth[name])
            if path is not None:
                self.out.ensure(path, lambda: secrets.token_urlsafe(32).encode("ascii") + b"\n")
        if auth.get("token_endpoint_auth_method") == "private_key_jwt":
            self._client_key(self.resolve(auth.get("private_key_file")))
        if auth.get("type") == "mtls":
            cert, key = self.resolve(auth.get("cert_file")), self.resolve(auth.get("cert_key_file"))
            if cert is not None and key is not None:
                self._mtls(cert, key)

    def _client_key(self, private_path: Path | None) -> None:
        if private_path is None:
            return
        public_path = self.paths.sandbox_client_jwk(self.id)
        if private_path.exists():
            if not public_path.exists():
                key = _import_private_key_file(private_path)
                public = public_jwk(key.as_dict(use="sig", alg="ES256"))
                self.out.ensure(public_path, lambda: _json_bytes(public), private=False)
            return
        if public_path.exists():
            return
        key = ECKey.generate_key("P-256", private=True, auto_kid=True)
        if private_path.suffix == ".pem":
            self.out.ensure(private_path, lambda: key.as_pem(private=True))
        else:
            self.out.ensure(private_path, lambda: _jwk_bytes(key, use="sig", alg="ES256"))
        public = public_jwk(key.as_dict(use="sig", alg="ES256"))
        self.out.ensure(public_path, lambda: _json_bytes(public), private=False)

    def _mtls(self, client_cert: Path, client_key: Path) -> None:
        ca = self._ca()
        if ca is None:
            return
        self._leaf(client_cert, client_key, ca, server=False)
        self._leaf(
            self.paths.sandbox_server_cert(self.id),
            self.paths.sandbox_server_key(self.id),
            ca,
            server=True,
        )

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        cert_path, key_path = self.paths.sandbox_ca_cert, self.paths.sandbox_ca_key
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                return None
            return cert, key
        if cert_path.exists() or key_path.exists():
            return None  # half a CA: leave it; see module docstring
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Disclosure Gateway sandbox CA")])
        cert = (
            _builder(name, name, key.public_key(), self.now, CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self.out.ensure(key_path, lambda: _pem_private(key))
        self.out.ensure(
            cert_path, lambda: cert.public_bytes(serialization.Encoding.PEM), private=False
        )
        return cert, key

    def _leaf(
        self,
        cert_path: Path,
        key_path: Path,
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        *,
        server: bool,
    ) -> None:
        if cert_path.exists() or key_path.exists():
            return  # present, or half a pair that only a person should remove
        ca_cert, ca_key = ca
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = f"{self.id} sandbox" if server else MTLS_CLIENT_NAME
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(subject, ca_cert.subject, key.public_key(), self.now, LEAF_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        self.out.ensure(key_path, lambda: _pem_private(key))
        self.out.ensure(
            cert_path, lambda: cert.public_bytes(serialization.Encoding.PEM), private=False
        )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    # Backdated an hour so a machine whose clock lags a little still accepts it.
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _import_private_jwk(path: Path) -> Jwk:
    doc = json.loads(path.read_text(encoding="utf-8"))
    kty = doc.get("kty") if isinstance(doc, dict) else None
    key: Jwk
    if kty == "RSA":
        key = RSAKey.import_key(doc)
    elif kty == "EC":
        key = ECKey.import_key(doc)
    elif kty == "OKP":
        key = OKPKey.import_key(doc)
    else:
        raise ConfigError(str(path), None, f"unsupported key type {kty!r}")
    key.ensure_kid()
    return key


def _import_private_key_file(path: Path) -> Jwk:
    if path.suffix == ".pem":
        key = ECKey.import_key(path.read_bytes())
        key.ensure_kid()
        return key
    return _import_private_jwk(path)


def exposed_private_files(paths: Iterable[Path]) -> list[ConfigError]:
    """A problem for each existing private file that group or others may read or write.

    The gateway refuses to start with such a file: a key readable by another account on
    the machine can sign disclosures, decrypt partner answers or unmask the log.
    """
    problems: list[ConfigError] = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            problems.append(
                ConfigError(
                    str(path),
                    None,
                    f"private key or secret is accessible to group/others (mode "
                    f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
                )
            )
    return problems
