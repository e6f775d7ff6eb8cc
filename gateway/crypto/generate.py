"""What `gateway keys generate` creates under the keys directory, and the next at-rest key.

`generate_missing` creates only what is missing and never overwrites a file: the
gateway's signing keys (one active key per algorithm), its encryption key, the log
signing key, the subject-key chain, the symmetric secrets, the first at-rest key, the
development issuer (gateway.crypto.dev_tokens) and the loopback sandbox partners'
material (gateway.crypto.sandbox_keys). Where each file lives: gateway.crypto.keyring.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc.jwk import ECKey

from gateway.crypto.at_rest import at_rest_key_files, new_key_text
from gateway.crypto.dev_tokens import new_dev_issuer_key, publish_dev_issuer
from gateway.crypto.key_files import NewFiles, create_key_file, jwk_bytes, pem_private
from gateway.crypto.keyring import ENCRYPTION_ALG, KeyPaths, ensure_signing_keys
from gateway.crypto.sandbox_keys import SandboxPartnerKeys
from gateway.crypto.subject_keys import ensure_key_file as ensure_subject_key_file


def generate_missing(
    keys_dir: Path,
    partners_dir: Path | None,
    *,
    base_dir: Path | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Create every missing key; return the paths written (empty when all were present).

    Relative paths in partner files resolve against `base_dir`, by default the
    directory above `partners_dir` (as gateway.partners.loader.load_partners does).
    """
    moment = now or datetime.now(UTC)
    paths = KeyPaths(keys_dir)
    out = NewFiles()

    if ensure_signing_keys(paths.gateway_signing, moment):
        out.paths.append(paths.gateway_signing)
    out.ensure(
        paths.gateway_encryption,
        lambda: jwk_bytes(ECKey.generate_key("P-256", private=True), use="enc", alg=ENCRYPTION_ALG),
    )
    out.ensure(paths.log_signing, lambda: pem_private(ed25519.Ed25519PrivateKey.generate()))
    if ensure_subject_key_file(keys_dir):
        out.paths.append(paths.log_subject)
    for secret_path in (paths.pseudonym_master, paths.review_session, paths.subject_lookup):
        out.ensure(secret_path, new_key_text)
    if not paths.at_rest:
        out.ensure(keys_dir / "at-rest-1.key", new_key_text)
    issuer_created = out.ensure(paths.dev_issuer, new_dev_issuer_key)
    if not paths.callers_jwks.exists() or issuer_created:
        publish_dev_issuer(paths)
        out.paths.append(paths.callers_jwks)
    if partners_dir is not None and partners_dir.is_dir():
        base = base_dir if base_dir is not None else partners_dir.resolve().parent
        for file in sorted(partners_dir.glob("*.toml")):
            SandboxPartnerKeys(file, base, paths, moment, out).generate()
    return out.paths


def add_at_rest_key(keys_dir: Path) -> Path:
    """Write the next at-rest key (``at-rest-<n+1>.key``, 0600); it seals new values from
    the next start on, and `gateway keys rotate-at-rest` re-seals stored ones with it."""
    numbers = [int(kid[2:]) for kid in at_rest_key_files(keys_dir)]
    path = keys_dir / f"at-rest-{max(numbers, default=0) + 1}.key"
    create_key_file(path, new_key_text())
    return path
