"""Key material in keys/: what `gateway keys generate` creates and where it lives.

Private keys and secrets are written 0600 and git-ignored; only what is
missing is created, so running it twice changes nothing. Sandbox partners
(those whose base_url is on loopback) get key pairs too, so a fresh clone can
run the demo and the tests without any real partner.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.partners import is_loopback_host


@dataclass(frozen=True)
class KeyPaths:
    """Where each key lives under the keys directory."""

    root: Path

    @property
    def gateway_signing(self) -> Path:
        return self.root / "gateway-signing.private.jwk.json"

    @property
    def gateway_encryption(self) -> Path:
        return self.root / "gateway-encryption.private.jwk.json"

    @property
    def log_signing(self) -> Path:
        return self.root / "log-signing.private.pem"

    @property
    def log_subject(self) -> Path:
        return self.root / "log-subject.key"

    @property
    def pseudonym_master(self) -> Path:
        return self.root / "pseudonym-master.key"

    @property
    def dev_issuer(self) -> Path:
        return self.root / "dev-issuer.private.jwk.json"

    @property
    def callers_jwks(self) -> Path:
        return self.root / "callers.jwks.json"

    def sandbox_partner(self, partner_id: str) -> Path:
        return self.root / "sandbox" / f"{partner_id}.private.jwk.json"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _jwk_bytes(key: ECKey | OKPKey | RSAKey, **params: Any) -> bytes:
    key.ensure_kid()
    return json.dumps(key.as_dict(private=True, **params), indent=2).encode("utf-8") + b"\n"


def read_secret_key(path: Path) -> bytes:
    """A 32-byte symmetric key stored base64 on one line."""
    raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    if len(raw) < 32:
        raise ValueError(f"{path}: key shorter than 32 bytes")
    return raw


def new_partner_key(alg: str) -> ECKey | OKPKey | RSAKey:
    if alg == "RSA-OAEP-256":
        return RSAKey.generate_key(2048, private=True)
    if alg.startswith("ECDH-ES"):
        return OKPKey.generate_key("X25519", private=True)
    raise ValueError(f"no sandbox key type for alg {alg!r}")


def generate_missing(keys_dir: Path, partners_dir: Path | None) -> list[Path]:
    """Create every missing key; return the paths written."""
    paths = KeyPaths(keys_dir)
    created: list[Path] = []

    def ensure(path: Path, make: Any) -> None:
        if not path.exists():
            _write_private(path, make())
            created.append(path)

    ensure(
        paths.gateway_signing,
        lambda: _jwk_bytes(ECKey.generate_key("P-256", private=True), use="sig", alg="ES256"),
    )
    ensure(
        paths.gateway_encryption,
        lambda: _jwk_bytes(
            ECKey.generate_key("P-256", private=True), use="enc", alg="ECDH-ES+A256KW"
        ),
    )
    ensure(
        paths.log_signing,
        lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    for secret_path in (paths.log_subject, paths.pseudonym_master):
        ensure(secret_path, lambda: base64.b64encode(secrets.token_bytes(32)) + b"\n")
    ensure(
        paths.dev_issuer,
        lambda: _jwk_bytes(ECKey.generate_key("P-256", private=True), use="sig", alg="ES256"),
    )
    if not paths.callers_jwks.exists() or paths.dev_issuer in created:
        issuer = ECKey.import_key(json.loads(paths.dev_issuer.read_text(encoding="utf-8")))
        existing: list[dict[str, Any]] = []
        if paths.callers_jwks.exists():
            existing = json.loads(paths.callers_jwks.read_text(encoding="utf-8")).get("keys", [])
        public = issuer.as_dict(private=False, use="sig", alg="ES256")
        keys = [k for k in existing if k.get("kid") != public["kid"]] + [public]
        _write_public(paths.callers_jwks, {"keys": keys})
        created.append(paths.callers_jwks)
    if partners_dir is not None and partners_dir.is_dir():
        created += _sandbox_partner_keys(paths, partners_dir)
    return created


def _sandbox_partner_keys(paths: KeyPaths, partners_dir: Path) -> list[Path]:
    """Key pairs for partners on loopback: the private half plays the partner in the demo."""
    created: list[Path] = []
    root = partners_dir.resolve().parent
    for file in sorted(partners_dir.glob("*.toml")):
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue  # `gateway partners validate` reports it with its line
        host = urlsplit(str(data.get("base_url", ""))).hostname or ""
        encryption = data.get("encryption", {})
        public_ref = encryption.get("public_key") if isinstance(encryption, dict) else None
        if not is_loopback_host(host) or not isinstance(public_ref, str):
            continue
        public_path = Path(public_ref) if Path(public_ref).is_absolute() else root / public_ref
        private_path = paths.sandbox_partner(file.stem)
        if public_path.exists() and private_path.exists():
            continue
        try:
            key = new_partner_key(str(encryption.get("alg", "")))
        except ValueError:
            continue
        if private_path.exists():
            private_path.unlink()
        _write_private(private_path, _jwk_bytes(key, use="enc"))
        _write_public(public_path, key.as_dict(private=False, use="enc"))
        created += [private_path, public_path]
    return created
