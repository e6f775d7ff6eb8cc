"""Signed tree heads for the disclosure log: C2SP tlog-checkpoint in a C2SP signed note.

A *checkpoint* commits to the log's Merkle tree (see ``gateway.log.merkle``) at a given
size. Its text (https://c2sp.org/tlog-checkpoint) is::

    <origin>\\n
    <tree size, ASCII decimal, no leading zeros>\\n
    <base64 of the 32-byte root hash>\\n
    [extension lines, each non-empty, ignored here]

It is published as a *signed note* (https://c2sp.org/signed-note): the text, a blank
line, then one or more signature lines ``"\\u2014 <key name> <base64(key id || sig)>\\n"``
(an em dash U+2014 and a space). Only Ed25519 (signature type ``0x01``) is supported:

* key id = ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]``;
* verifier key = ``"<name>+<key id as 8 hex digits>+<base64(0x01 || public key)>"``;
* the signature is Ed25519 over the UTF-8 bytes of the note text (final newline included,
  separating blank line excluded).

When opening a note, signature lines from other keys are ignored (the spec requires
this so that witnesses can cosign and keys can rotate); a line whose key name *and* key id
match the trusted key must verify, and at least one such line is required.

This module is pure and I/O-free; every error is a :class:`CheckpointError`
(a ``ValueError``) that says what was expected and what was found.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "MAX_TREE_SIZE",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "CheckpointError",
    "SignatureLine",
    "add_signature",
    "b64decode_strict",
    "check_key_name",
    "key_id",
    "key_label",
    "open_checkpoint",
    "open_checkpoint_by_any",
    "open_note",
    "parse_signature_line",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "signers_of",
    "split_note",
    "verifier_key",
]

ED25519_SIGNATURE_TYPE = 0x01
"""Signature type byte assigned to Ed25519 by the signed-note spec."""

MAX_TREE_SIZE = 2**64 - 1
"""Largest tree size accepted (tree sizes are uint64 in the ecosystem)."""

MAX_SIGNATURES = 100
"""Notes with more signature lines than this are refused (the spec requires >= 16)."""

_HASH_SIZE = 32
_KEY_ID_SIZE = 4
_ED25519_PUBLIC_KEY_SIZE = 32
SIGNATURE_PREFIX = "\u2014 "
"""What every signature line starts with: an em dash (U+2014) and a space."""
_TYPE_NAMES = {ED25519_SIGNATURE_TYPE: "Ed25519", 0x04: "Ed25519 cosignature/v1"}
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class CheckpointError(ValueError):
    """A checkpoint, signed note or verifier key is malformed or does not verify."""


# --------------------------------------------------------------------------- helpers


def check_key_name(name: str) -> None:
    """Refuse a signed-note key name that is empty or holds a space, a '+' or a control."""
    if not name:
        raise CheckpointError("key name is empty, expected a non-empty name")
    if any(ch.isspace() for ch in name):
        raise CheckpointError(f"key name {name!r} contains whitespace, expected none")
    if "+" in name:
        raise CheckpointError(f"key name {name!r} contains '+', expected none")
    if any(ord(ch) < 0x20 for ch in name):
        raise CheckpointError(f"key name {name!r} contains control characters")


def _check_text(text: str, what: str) -> None:
    """Signed notes must be valid UTF-8 with no ASCII control characters but newline."""
    for position, ch in enumerate(text):
        if ord(ch) < 0x20 and ch != "\n":
            raise CheckpointError(
                f"{what} contains control character U+{ord(ch):04X} at offset {position}, "
                "expected none other than newline"
            )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError(f"{what} is not valid UTF-8: {exc.reason}") from None


def b64decode_strict(text: str) -> bytes | None:
    """Standard, padded, canonical base64 (RFC 4648 §4) or ``None``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(
    name: str, public_key: Ed25519PublicKey, signature_type: int = ED25519_SIGNATURE_TYPE
) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key used with ``signature_type``.

    ``SHA-256(name || 0x0A || type || 32-byte public key)[:4]``: type 0x01 for a note
    signature, 0x04 for a cosignature/v1 (``gateway.log.cosignature``).
    """
    check_key_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([signature_type]) + _raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def verifier_key(
    name: str, public_key: Ed25519PublicKey, signature_type: int = ED25519_SIGNATURE_TYPE
) -> str:
    """Encode a verifier key: ``"<name>+<key id hex>+<base64(type || public key)>"``."""
    kid = key_id(name, public_key, signature_type)
    typed_key = bytes([signature_type]) + _raw_public_key(public_key)
    return f"{name}+{kid.hex()}+{base64.b64encode(typed_key).decode('ascii')}"


def parse_verifier_key(
    text: str, signature_type: int = ED25519_SIGNATURE_TYPE
) -> tuple[str, Ed25519PublicKey]:
    """Parse and validate a verifier key made by :func:`verifier_key`.

    Surrounding whitespace (e.g. a trailing newline from a key file) is ignored. Checks
    the key name, that the key id is 8 hex digits, that the key is base64 of
    ``signature_type`` followed by 32 bytes, and that the key id matches the name and key.
    """
    stripped = text.strip()
    name, sep1, rest = stripped.partition("+")
    id_hex, sep2, key_b64 = rest.partition("+")  # base64 may itself contain '+'
    if not sep1 or not sep2:
        raise CheckpointError(
            f"verifier key {stripped!r} has the wrong shape, expected "
            "'<name>+<8 hex digit key id>+<base64 key>'"
        )
    check_key_name(name)
    if not _HEX8.fullmatch(id_hex):
        raise CheckpointError(f"verifier key id {id_hex!r} is not 8 hexadecimal digits")
    typed_key = b64decode_strict(key_b64)
    if typed_key is None:
        raise CheckpointError(f"verifier key material {key_b64!r} is not canonical base64")
    if len(typed_key) != 1 + _ED25519_PUBLIC_KEY_SIZE:
        raise CheckpointError(
            f"verifier key material has {len(typed_key)} bytes, expected "
            f"{1 + _ED25519_PUBLIC_KEY_SIZE} (type byte and Ed25519 public key)"
        )
    if typed_key[0] != signature_type:
        raise CheckpointError(
            f"verifier key has signature type 0x{typed_key[0]:02x}, "
            f"expected 0x{signature_type:02x} ({_TYPE_NAMES.get(signature_type, 'unknown')})"
        )
    public_key = Ed25519PublicKey.from_public_bytes(typed_key[1:])
    computed = key_id(name, public_key, signature_type)
    if computed != bytes.fromhex(id_hex):
        raise CheckpointError(
            f"verifier key id is {id_hex.lower()}, expected {computed.hex()} "
            f"for name {name!r} and this public key"
        )
    return name, public_key


# --------------------------------------------------------------------------- signed notes


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` with an Ed25519 key and return the signed note.

    ``text`` must be non-empty and end with a newline. The result is ``text + "\\n" +
    "\\u2014 " + name + " " + base64(key id || signature) + "\\n"``.
    """
    check_key_name(name)
    if not text.endswith("\n"):
        raise CheckpointError("note text must be non-empty and end with a newline")
    _check_text(text, "note text")
    kid = key_id(name, private_key.public_key())
    signature = private_key.sign(text.encode("utf-8"))
    blob = base64.b64encode(kid + signature).decode("ascii")
    return f"{text}\n{SIGNATURE_PREFIX}{name} {blob}\n"


@dataclass(frozen=True)
class SignatureLine:
    """One signature line of a signed note: who signed (name, key id) and the bytes after."""

    name: str
    key_id: bytes
    signature: bytes


def parse_signature_line(line: str, number: int = 1) -> SignatureLine:
    """Parse ``"\u2014 <name> <base64(key id || signature)>"`` (no final newline).

    ``number`` says which line it is in the messages. The signature is not verified.
    """
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError(
            f"signature line {number} is {line[:40]!r}, expected it to start with "
            "an em dash (U+2014) and a space"
        )
    name, space, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise CheckpointError(
            f"signature line {number} has no space, expected '\u2014 <name> <base64>'"
        )
    try:
        check_key_name(name)
    except CheckpointError as exc:
        raise CheckpointError(f"signature line {number}: {exc}") from None
    raw = b64decode_strict(blob)
    if raw is None:
        raise CheckpointError(f"signature line {number}: signature is not canonical base64")
    if len(raw) <= _KEY_ID_SIZE:
        raise CheckpointError(
            f"signature line {number}: signature has {len(raw)} bytes, expected a "
            f"{_KEY_ID_SIZE}-byte key id followed by a signature"
        )
    return SignatureLine(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


def split_note(note_text: str) -> tuple[str, list[SignatureLine]]:
    """A signed note's text (final newline included) and its parsed signature lines."""
    _check_text(note_text, "signed note")
    split = note_text.rfind("\n\n")
    if split < 0:
        raise CheckpointError(
            "signed note has no blank line, expected text, a blank line and signature lines"
        )
    text = note_text[: split + 1]
    signature_block = note_text[split + 2 :]
    if not signature_block:
        raise CheckpointError("signed note has no signature lines after the blank line")
    if not signature_block.endswith("\n"):
        raise CheckpointError("signed note does not end with a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(
            f"signed note has {len(lines)} signature lines, expected at most {MAX_SIGNATURES}"
        )
    return text, [parse_signature_line(line, n) for n, line in enumerate(lines, start=1)]


def add_signature(note_text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """``note_text`` with one more signature line, by ``private_key``, over the same text.

    A note may carry several signatures: a log key rotation's switch checkpoint carries the
    old and the new log key's, so a verifier trusting either follows the chain across it.
    """
    text, _ = split_note(note_text)
    return note_text + sign_note(text, name, private_key)[len(text) + 1 :]


def key_label(verifier_key_text: str) -> str:
    """``<name>+<key id>`` of a verifier key: how messages name a key (not its material)."""
    name, _, rest = verifier_key_text.strip().partition("+")
    return f"{name}+{rest.partition('+')[0]}"


def _verified_by(
    text: str, signatures: list[SignatureLine], verifier_key_text: str
) -> tuple[str, bytes, bool]:
    """(name, key id, whether a line by that key verifies); a line by it that does not
    verify makes the whole note invalid."""
    name, public_key = parse_verifier_key(verifier_key_text)
    kid = key_id(name, public_key)
    message = text.encode("utf-8")
    verified = False
    for number, line in enumerate(signatures, start=1):
        if line.name != name or line.key_id != kid:
            continue  # unknown key: ignored, as the spec requires
        try:
            public_key.verify(line.signature, message)
        except InvalidSignature:
            raise CheckpointError(
                f"signature line {number} by {name}+{kid.hex()} does not verify over the note text"
            ) from None
        verified = True
    return name, kid, verified


def open_note(note_text: str, verifier_key_text: str) -> str:
    """Verify a signed note against one trusted verifier key and return its text.

    Signature lines from other keys (different name or key id) are ignored. A line from
    the trusted key whose signature does not verify makes the whole note invalid, and at
    least one line from the trusted key is required.
    """
    parse_verifier_key(verifier_key_text)  # a bad key is named before a bad note
    text, signatures = split_note(note_text)
    name, kid, verified = _verified_by(text, signatures, verifier_key_text)
    if not verified:
        found = ", ".join(f"{line.name}+{line.key_id.hex()}" for line in signatures)
        raise CheckpointError(
            f"no signature by {name}+{kid.hex()}, expected at least one; "
            f"found signatures by: {found}"
        )
    return text


def signers_of(note_text: str, verifier_keys: Sequence[str]) -> tuple[str, list[str]]:
    """The note's text and those of ``verifier_keys`` that signed it, in the given order.

    Lines by other keys are ignored; a line by one of ``verifier_keys`` that does not
    verify makes the note invalid (CheckpointError). The list may be empty.
    """
    for key in verifier_keys:
        parse_verifier_key(key)  # a bad key is named before a bad note
    text, signatures = split_note(note_text)
    signed = [k for k in verifier_keys if _verified_by(text, signatures, k)[2]]
    return text, signed


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: its origin (log identity), tree size and Merkle root hash."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not self.origin:
            raise CheckpointError("checkpoint origin is empty, expected a non-empty line")
        if "\n" in self.origin:
            raise CheckpointError("checkpoint origin contains a newline, expected one line")
        _check_text(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(
                f"checkpoint size is {self.size!r}, expected an int in 0..{MAX_TREE_SIZE}"
            )
        if not isinstance(self.root, bytes):
            raise CheckpointError(
                f"checkpoint root is a {type(self.root).__name__}, expected {_HASH_SIZE} bytes"
            )
        if len(self.root) != _HASH_SIZE:
            raise CheckpointError(
                f"checkpoint root has {len(self.root)} bytes, expected {_HASH_SIZE}"
            )

    def body(self) -> str:
        """The checkpoint note text: origin, size and base64 root, each ending in a newline."""
        root_b64 = base64.b64encode(self.root).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root_b64}\n"


def _parse_body(text: str) -> Checkpoint:
    """Parse verified note text as a checkpoint; extension lines are ignored."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            f"checkpoint text has {len(lines)} lines, expected at least 3 (origin, size, root hash)"
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise CheckpointError(f"checkpoint line {number} is empty, expected non-empty")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if len(size_text) > len(str(MAX_TREE_SIZE)) or not _DECIMAL.fullmatch(size_text):
        raise CheckpointError(
            f"checkpoint size {size_text[:40]!r} is not a decimal number without leading zeros"
        )
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise CheckpointError(f"checkpoint size {size} is larger than {MAX_TREE_SIZE}")
    root = b64decode_strict(root_text)
    if root is None:
        raise CheckpointError(f"checkpoint root {root_text[:60]!r} is not canonical base64")
    if len(root) != _HASH_SIZE:
        raise CheckpointError(f"checkpoint root has {len(root)} bytes, expected {_HASH_SIZE}")
    return Checkpoint(origin=origin, size=size, root=root)


def sign_checkpoint(cp: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the signed note for ``cp``, signed by the Ed25519 key ``name``.

    The C2SP spec recommends that the key name equal the checkpoint origin.
    """
    return sign_note(cp.body(), name, private_key)


def open_checkpoint(
    note_text: str, verifier_key_text: str, *, expected_origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note against a trusted verifier key and parse it.

    See :func:`open_note` for the signature rules. If ``expected_origin`` is given, the
    checkpoint's origin line must equal it (guards against a key shared by several logs).
    """
    text = open_note(note_text, verifier_key_text)
    cp = _parse_body(text)
    if expected_origin is not None and cp.origin != expected_origin:
        raise CheckpointError(f"checkpoint origin is {cp.origin!r}, expected {expected_origin!r}")
    return cp


def open_checkpoint_by_any(
    note_text: str, verifier_keys: Sequence[str], *, expected_origin: str | None = None
) -> tuple[Checkpoint, list[str]]:
    """Verify a checkpoint signed by at least one of ``verifier_keys`` (a log's current and
    retired keys) and parse it; also which of them signed it, in the given order."""
    if not verifier_keys:
        raise CheckpointError("no verifier key given, expected at least one")
    text, signed = signers_of(note_text, verifier_keys)
    if not signed:
        _, signatures = split_note(note_text)
        found = ", ".join(f"{line.name}+{line.key_id.hex()}" for line in signatures)
        wanted = ", ".join(key_label(k) for k in verifier_keys)
        raise CheckpointError(
            f"no signature by {wanted}, expected at least one; found signatures by: {found}"
        )
    cp = _parse_body(text)
    if expected_origin is not None and cp.origin != expected_origin:
        raise CheckpointError(f"checkpoint origin is {cp.origin!r}, expected {expected_origin!r}")
    return cp, signed
