"""The witness's Ed25519 key file: created when missing, refused when others may read it.

A PKCS#8 PEM file like the log's own key, made by ``key_files.create_key_file`` (mode 0600
from its first byte, never overwritten). Its name in cosignature lines is ``--name`` or,
by default, one derived from the key, so the same key file gives the same vkey in
``gateway witness vkey`` and ``gateway witness serve``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from gateway.crypto.key_files import create_key_file, exposed_private_files, pem_private
from gateway.errors import ConfigError, ConfigErrors


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``, created (0600) when the file does not exist."""
    if not path.exists():
        try:
            create_key_file(path, pem_private(Ed25519PrivateKey.generate()))
        except FileExistsError:
            pass  # another process made it first: use theirs
    exposed = exposed_private_files([path])
    if exposed:
        raise ConfigErrors(exposed)
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            str(path), None, f"not a readable PKCS#8 PEM private key ({type(exc).__name__})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(str(path), None, "expected an Ed25519 private key (PKCS#8 PEM)")
    return key


def default_name(key: Ed25519PrivateKey) -> str:
    """``witness-<8 hex digits of SHA-256 of the public key>``: stable for one key file."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"witness-{hashlib.sha256(raw).hexdigest()[:8]}"
