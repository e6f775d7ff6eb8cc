"""Personal data at rest: keyed subject references and sealed free text (pure functions).

The store never holds a subject id or a free-text value in clear (issue item 5):

- a subject id becomes a keyed reference, ``sref:`` + HMAC-SHA-256 under the subject
  lookup key (``keys/subject-lookup.key``). It is not the log's monthly subject key,
  which ``gateway log forget-before`` destroys: a restriction or a child's profile must
  stay findable for as long as it is kept.
- free text (consent evidence, restriction and suspension reasons, justifications, a
  lawful request's instrument and subject list, a profile, a stored idempotent answer)
  is sealed with AES-256-GCM: ``sealed:<key id>:<base64url(nonce | ciphertext)>``.
  The key id beside each ciphertext lets the keys rotate: new values use the newest key,
  older ones open with theirs until ``gateway keys rotate-at-rest`` re-sealed them. The
  field a value belongs to is the associated data, so a ciphertext copied into another
  column does not open there.

Keys live in ``keys/at-rest-<n>.key`` (32 random bytes, base64, mode 0600); the highest
``n`` is the newest. Nothing here does I/O except `AtRestKeys.load`.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import InternalServerError

__all__ = [
    "REF_PREFIX",
    "SEALED_PREFIX",
    "AtRestError",
    "AtRestKeys",
    "at_rest_key_files",
    "is_ref",
    "is_sealed",
    "lookup_key_file",
    "new_key_text",
    "sealed_key_id",
]

REF_PREFIX: Final = "sref:"
SEALED_PREFIX: Final = "sealed:"
_SEALED_BYTES: Final = SEALED_PREFIX.encode("ascii")
_NONCE: Final = 12
_KEY_FILE: Final = re.compile(r"^at-rest-([1-9][0-9]{0,5})\.key$")
_REF: Final = re.compile(r"^sref:[0-9a-f]{64}$")
# Strict, so that a clear text of an older gateway that merely starts with "sealed:" is
# taken for the clear text it is (and sealed), not for a value that does not open.
_SEALED: Final = re.compile(r"^sealed:(ar[1-9][0-9]{0,5}):[A-Za-z0-9_-]{38,}={0,2}$")
LOOKUP_KEY_NAME: Final = "subject-lookup.key"


class AtRestError(InternalServerError):
    """A sealed value that does not open: its key is missing, or it was altered."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


def lookup_key_file(keys_dir: Path) -> Path:
    return keys_dir / LOOKUP_KEY_NAME


def at_rest_key_files(keys_dir: Path) -> dict[str, Path]:
    """The at-rest key files present, by key id (``ar<n>``), oldest first."""
    found: list[tuple[int, Path]] = []
    if keys_dir.is_dir():
        for path in keys_dir.iterdir():
            match = _KEY_FILE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return {f"ar{n}": path for n, path in sorted(found)}


def new_key_text() -> bytes:
    """A fresh 32-byte key as stored in a key file (base64 on one line)."""
    return base64.b64encode(secrets.token_bytes(32)) + b"\n"


def _read_key(path: Path) -> bytes:
    raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    if len(raw) != 32:
        raise ValueError(f"{path}: expected a 32-byte key, got {len(raw)} bytes")
    return raw


def is_ref(value: str) -> bool:
    return bool(_REF.match(value))


def sealed_key_id(value: str | bytes) -> str | None:
    """The key id of a sealed value (None for a value that is not sealed)."""
    if isinstance(value, bytes):
        if not value.startswith(_SEALED_BYTES):
            return None
        value = value.decode("ascii", "replace")
    match = _SEALED.match(value)
    return match.group(1) if match else None


def is_sealed(value: str | bytes) -> bool:
    return sealed_key_id(value) is not None


@dataclass(frozen=True)
class AtRestKeys:
    """The subject lookup key and the at-rest sealing keys (newest last)."""

    lookup: bytes
    sealing: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if len(self.lookup) < 32:
            raise ValueError("the subject lookup key must have at least 32 bytes")
        if not self.sealing:
            raise ValueError("at least one at-rest key is needed")

    @classmethod
    def load(cls, keys_dir: Path) -> AtRestKeys:
        """Read the keys; FileNotFoundError naming what is missing, ValueError if unusable."""
        lookup_path = lookup_key_file(keys_dir)
        if not lookup_path.exists():
            raise FileNotFoundError(errno.ENOENT, "not found", str(lookup_path))
        files = at_rest_key_files(keys_dir)
        if not files:
            raise FileNotFoundError(errno.ENOENT, "not found", str(keys_dir / "at-rest-1.key"))
        return cls(_read_key(lookup_path), {kid: _read_key(p) for kid, p in files.items()})

    @classmethod
    def generate(cls) -> AtRestKeys:
        """Throwaway keys (tests, dry runs)."""
        return cls(secrets.token_bytes(32), {"ar1": secrets.token_bytes(32)})

    @property
    def newest(self) -> str:
        return max(self.sealing, key=lambda kid: int(kid[2:]))

    # -- keyed references ----------------------------------------------------------------

    def ref(self, subject: str) -> str:
        """The subject's keyed reference as stored (the same for every call)."""
        digest = hmac.new(self.lookup, subject.encode("utf-8"), hashlib.sha256).hexdigest()
        return REF_PREFIX + digest

    # -- sealing ---------------------------------------------------------------------------

    def seal_bytes(self, plain: bytes, field: str) -> bytes:
        kid = self.newest
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self.sealing[kid]).encrypt(nonce, plain, field.encode("utf-8"))
        return f"{SEALED_PREFIX}{kid}:".encode("ascii") + base64.urlsafe_b64encode(nonce + sealed)

    def open_bytes(self, value: bytes, field: str) -> bytes:
        kid = sealed_key_id(value)
        key = self.sealing.get(kid or "")
        if kid is None or key is None:
            raise AtRestError(
                f"a sealed {field} names at-rest key {kid!r}, which is not in the keys "
                "directory: restore that key file (keys/at-rest-<n>.key)"
            )
        try:
            blob = base64.urlsafe_b64decode(value[len(SEALED_PREFIX) + len(kid) + 1 :])
            return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], field.encode("utf-8"))
        except (InvalidTag, binascii.Error, ValueError):
            raise AtRestError(f"a sealed {field} does not open: it was altered") from None

    def seal(self, plain: str, field: str) -> str:
        return self.seal_bytes(plain.encode("utf-8"), field).decode("ascii")

    def open(self, value: str, field: str) -> str:
        """The clear text of a sealed value; a value stored before sealing is returned as is."""
        if not is_sealed(value):
            return value
        return self.open_bytes(value.encode("ascii"), field).decode("utf-8")

    def reseal(self, value: str, field: str) -> str:
        """`value` sealed with the newest key (sealing it when it is still clear)."""
        if sealed_key_id(value) == self.newest:
            return value
        return self.seal(self.open(value, field), field)
