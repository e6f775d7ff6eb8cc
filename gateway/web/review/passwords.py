"""Reviewer password hashes: scrypt (standard library) in PHC string format, argon2 if installed.

The format written by `gateway reviewers add` and read from `[[reviewers]] password_hash`::

    $scrypt$ln=17,r=8,p=1$<salt>$<hash>

- ``ln``: log2 of the CPU/memory cost N (N = 2**ln); ``r`` block size; ``p`` parallelism;
- ``<salt>`` (16 random bytes) and ``<hash>`` (32 bytes of ``hashlib.scrypt``) in standard
  base64 without padding, as the PHC string format writes them.

The default (N = 2**17, r = 8, p = 1: 128 MiB, about half a second) is OWASP's minimum
recommendation for scrypt. Hashes weaker than ``MIN_LN`` or heavier than ``MAX_LN`` are
refused when the gateway starts, so a typo in the config cannot make every login cost
gigabytes, nor a weak hash pass unnoticed.

``$argon2id$…`` hashes (as made by argon2-cffi or the ``argon2`` command) are accepted only
when argon2-cffi is importable; otherwise the gateway refuses to start and says so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_LN",
    "MAX_LN",
    "MIN_LN",
    "MIN_PASSWORD_LENGTH",
    "PasswordHashError",
    "PasswordVerifier",
    "ScryptHash",
    "hash_password",
    "parse_password_hash",
]

DEFAULT_LN: Final = 17
MIN_LN: Final = 14
MAX_LN: Final = 20
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 1024

_SCRYPT = re.compile(
    r"^\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)$"
)


class PasswordHashError(ValueError):
    """A password hash the gateway cannot use; the message says what would fix it."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PasswordHashError("the salt or hash is not base64") from None


@dataclass(frozen=True)
class ScryptHash:
    """A parsed ``$scrypt$`` hash."""

    ln: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def compute(self, password: str) -> bytes:
        n = 1 << self.ln
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=n,
            r=self.r,
            p=self.p,
            # scrypt needs 128·r·N·p bytes; the default 32 MiB ceiling is too low for N=2**17.
            maxmem=256 * self.r * n * self.p,
            dklen=len(self.digest),
        )

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(self.compute(password), self.digest)

    def encode(self) -> str:
        return f"$scrypt$ln={self.ln},r={self.r},p={self.p}${_b64(self.salt)}${_b64(self.digest)}"


def check_password_strength(password: str) -> None:
    """Refuse passwords too short to resist guessing; the message names the rule."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordHashError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordHashError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, *, ln: int = DEFAULT_LN) -> str:
    """A new ``$scrypt$`` hash of `password` with a random salt."""
    if not MIN_LN <= ln <= MAX_LN:
        raise PasswordHashError(f"ln must be between {MIN_LN} and {MAX_LN}, got {ln}")
    salt = secrets.token_bytes(SALT_BYTES)
    parsed = ScryptHash(ln, SCRYPT_R, SCRYPT_P, salt, b"\x00" * HASH_BYTES)
    return ScryptHash(ln, SCRYPT_R, SCRYPT_P, salt, parsed.compute(password)).encode()


def _parse_scrypt(text: str) -> ScryptHash:
    match = _SCRYPT.match(text)
    if match is None:
        raise PasswordHashError(
            "expected $scrypt$ln=<cost>,r=<block size>,p=<parallelism>$<salt>$<hash> "
            "(base64 without padding)"
        )
    ln, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
    if not MIN_LN <= ln <= MAX_LN:
        raise PasswordHashError(
            f"scrypt cost ln={ln} is outside {MIN_LN}..{MAX_LN}; re-create the hash with "
            "'gateway reviewers add'"
        )
    if not 1 <= r <= 32 or not 1 <= p <= 16:
        raise PasswordHashError(f"scrypt r={r}, p={p} out of range (r 1..32, p 1..16)")
    salt, digest = _unb64(match["salt"]), _unb64(match["hash"])
    if len(salt) < 8 or len(digest) < 16:
        raise PasswordHashError("the salt must be at least 8 bytes and the hash at least 16")
    return ScryptHash(ln, r, p, salt, digest)


class _Argon2:
    """argon2-cffi's verifier, when the package is installed."""

    def __init__(self, text: str) -> None:
        try:
            module: Any = importlib.import_module("argon2")
        except ImportError:
            raise PasswordHashError(
                "this is an argon2 hash but argon2-cffi is not installed: install it "
                "(pip install argon2-cffi) or re-create the hash with 'gateway reviewers add' "
                "(scrypt)"
            ) from None
        self._hasher = module.PasswordHasher()
        self._mismatch: tuple[type[BaseException], ...] = (
            module.exceptions.VerificationError,
            module.exceptions.InvalidHashError,
        )
        self._text = text
        try:
            module.extract_parameters(text)
        except (module.exceptions.InvalidHashError, ValueError):
            raise PasswordHashError("not a valid argon2 hash") from None

    def matches(self, password: str) -> bool:
        try:
            return bool(self._hasher.verify(self._text, password))
        except self._mismatch:
            return False


@dataclass(frozen=True)
class PasswordVerifier:
    """A configured hash, parsed once at start; `matches` runs in constant time."""

    scheme: str
    _impl: ScryptHash | _Argon2

    def matches(self, password: str) -> bool:
        """True when `password` hashes to the stored hash (CPU-heavy: run off the loop)."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        return self._impl.matches(password)

    def decoy(self) -> PasswordVerifier:
        """A verifier of equal cost that matches nothing, for ids that are not configured."""
        if isinstance(self._impl, ScryptHash):
            impl = self._impl
            fake = ScryptHash(impl.ln, impl.r, impl.p, secrets.token_bytes(SALT_BYTES), impl.digest)
            return PasswordVerifier("scrypt", fake)
        return self


def parse_password_hash(text: str) -> PasswordVerifier:
    """Parse a configured hash; PasswordHashError says why it cannot be used."""
    if text.startswith("$scrypt$"):
        return PasswordVerifier("scrypt", _parse_scrypt(text))
    if text.startswith("$argon2"):
        return PasswordVerifier("argon2", _Argon2(text))
    raise PasswordHashError("expected a $scrypt$… or $argon2…$ hash; never a plaintext password")
