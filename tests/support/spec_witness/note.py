"""Signed notes (c2sp.org/signed-note): parsing, verifier keys, Ed25519 signing and opening.

Written from the spec text alone. A verifier is anything with a key name, a key ID and a
``verify(text, signature)``; ``Ed25519Verifier`` is signature type 0x01 and
``spec_witness.cosignature`` adds type 0x04, so one ``open_note`` checks log signatures and
witness cosignatures alike, with the spec's rules: signatures from unknown keys are ignored,
a known key whose signature fails rejects the whole note, and so does no known signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"
# The spec asks verifiers to accept at least 16 signatures and to cap the count.
MAX_SIGNATURES = 100
_HEX8 = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, key or signature that does not follow the spec, or does not verify."""


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def b64decode(text: str) -> bytes:
    """Standard base64 (RFC 4648 §4), refusing anything but its one canonical spelling."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{text[:40]!r} is not base64") from exc
    if b64encode(raw) != text:
        raise NoteError(f"{text[:40]!r} is not canonical base64")
    return raw


def check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces or '+'."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} is empty or holds a space or '+'")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    """A parsed vkey: ``<name>+hex(key ID)+base64(signature type || public key)``."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes

    def __str__(self) -> str:
        material = b64encode(bytes([self.sig_type]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{material}"


def make_vkey(name: str, sig_type: int, public_key: bytes) -> VerifierKey:
    check_key_name(name)
    return VerifierKey(name, key_id(name, sig_type, public_key), sig_type, public_key)


def parse_vkey(text: str) -> VerifierKey:
    """Parse an Ed25519 vkey (type 0x01 or 0x04), checking its key ID is the recommended one."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"vkey {text[:60]!r} does not have a name, a key ID and a key")
    name, id_hex, material_b64 = parts
    check_key_name(name)
    if not _HEX8.fullmatch(id_hex):
        raise NoteError(f"vkey key ID {id_hex!r} is not 8 lowercase hex digits")
    material = b64decode(material_b64)
    if len(material) != 33 or material[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("vkey is not an Ed25519 key of signature type 0x01 or 0x04")
    vkey = make_vkey(name, material[0], material[1:])
    if vkey.key_id.hex() != id_hex:
        raise NoteError(f"vkey key ID {id_hex} does not match its name and key")
    return vkey


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        encoded = b64encode(self.key_id + self.signature)
        return f"{EM_DASH} {self.name} {encoded}\n"


def parse_signature_line(line: str) -> Signature:
    """Parse ``— <key name> base64(key ID || signature)`` (no newline)."""
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise NoteError(f"signature line {line[:40]!r} does not start with an em dash and space")
    name, sep, encoded = line[len(prefix) :].partition(" ")
    if not sep:
        raise NoteError(f"signature line {line[:40]!r} has no signature")
    check_key_name(name)
    raw = b64decode(encoded)
    if len(raw) < 5:
        raise NoteError(f"signature of {name} is shorter than a key ID and one byte")
    return Signature(name, raw[:4], raw[4:])


@dataclass(frozen=True)
class Note:
    """A note split into its text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[Signature, ...]


def parse_note(note: str) -> Note:
    """Split a signed note at its last blank line, enforcing the spec's syntax."""
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise NoteError("note holds an ASCII control character other than newline")
    if not note.endswith("\n"):
        raise NoteError("note does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    lines = sig_block[:-1].split("\n") if sig_block else []
    if not lines:
        raise NoteError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return Note(text, tuple(parse_signature_line(line) for line in lines))


def check_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("note is not valid UTF-8") from exc


class Verifier(Protocol):
    """A trusted key: its name and key ID select its signature lines, ``verify`` checks one."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: str, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Ed25519Verifier:
    """Signature type 0x01: Ed25519 over the note text."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: VerifierKey | str) -> Ed25519Verifier:
        parsed = parse_vkey(vkey) if isinstance(vkey, str) else vkey
        if parsed.sig_type != ED25519:
            raise NoteError(f"vkey of {parsed.name} is type {parsed.sig_type:#04x}, not 0x01")
        return cls(parsed.name, parsed.key_id, parsed.public_key)

    def verify(self, text: str, signature: bytes) -> bool:
        return ed25519_verify(self.public_key, signature, text.encode())


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_ed25519(text: str, name: str, private_key: Ed25519PrivateKey) -> Signature:
    """A type 0x01 signature of ``text`` by ``name``."""
    check_key_name(name)
    ident = key_id(name, ED25519, raw_public_key(private_key.public_key()))
    return Signature(name, ident, private_key.sign(text.encode()))


def open_note(note: str, verifiers: list[Verifier]) -> tuple[Note, list[Signature]]:
    """Parse ``note`` and verify it: returns the note and the signatures that verified.

    A signature counts as known only when both its name and its key ID match a verifier.
    """
    parsed = parse_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[Signature] = []
    for sig in parsed.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(parsed.text, sig.signature):
            raise NoteError(f"signature of known key {sig.name}+{sig.key_id.hex()} fails")
        verified.append(sig)
    if not verified:
        raise NoteError("no signature from a known key")
    return parsed, verified
