"""Witness cosignatures of a checkpoint: C2SP tlog-cosignature, type cosignature/v1 (Ed25519).

A witness that checked a checkpoint is consistent with everything it saw of the log before
states so by adding one signed-note signature line (https://c2sp.org/tlog-cosignature)::

    \\u2014 <witness key name> base64(key id || timestamp || Ed25519 signature)

* key id = ``SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]`` (type 0x04, so the
  same key never yields a line that passes as a plain note signature, type 0x01);
* timestamp = the POSIX seconds of the cosigning, 8 bytes big-endian, at most 2^63 - 1;
* the signed message is ``"cosignature/v1\\n" + "time <timestamp>\\n"`` followed by the
  checkpoint's note text (final newline included, signature lines excluded).

A witness's public key is written as a vkey of type 0x04:
``"<name>+<key id hex>+<base64(0x04 || public key)>"``.

Pure and I/O-free, like ``gateway.log.checkpoint`` (whose signed-note parts it reuses);
every refusal is a :class:`CosignatureError`, a ``CheckpointError``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.log.checkpoint import (
    SIGNATURE_PREFIX,
    CheckpointError,
    SignatureLine,
    check_key_name,
    key_id,
    parse_signature_line,
    parse_verifier_key,
    verifier_key,
)

__all__ = [
    "COSIGNATURE_TYPE",
    "MAX_TIMESTAMP",
    "CosignatureError",
    "WitnessKey",
    "cosign",
    "cosigned_message",
    "cosigners",
    "parse_witness_vkey",
    "verify_cosignature",
    "witness_vkey",
]

COSIGNATURE_TYPE = 0x04
"""Signature type byte of a timestamped Ed25519 cosignature/v1 (c2sp.org/signed-note)."""

MAX_TIMESTAMP = 2**63 - 1
"""The largest timestamp a cosignature may carry (tlog-cosignature)."""

_HEADER = "cosignature/v1\n"
_TIMESTAMP_SIZE = 8
_ED25519_SIGNATURE_SIZE = 64


class CosignatureError(CheckpointError):
    """A witness vkey or cosignature line is malformed, not by the expected key, or false."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public key with the name its cosignature lines carry."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key, COSIGNATURE_TYPE)

    @property
    def vkey(self) -> str:
        return witness_vkey(self.name, self.public_key)


def witness_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """The vkey of a witness key: ``"<name>+<key id hex>+<base64(0x04 || public key)>"``."""
    return verifier_key(name, public_key, COSIGNATURE_TYPE)


def parse_witness_vkey(text: str) -> WitnessKey:
    """Parse a witness vkey (type 0x04), checking its key id against its name and key."""
    try:
        name, public_key = parse_verifier_key(text, COSIGNATURE_TYPE)
    except CheckpointError as exc:
        raise CosignatureError(f"witness {exc}") from None
    return WitnessKey(name, public_key)


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header, the time line and the checkpoint text."""
    _check_timestamp(timestamp)
    if not checkpoint_text.endswith("\n") or checkpoint_text.count("\n") < 3:
        raise CosignatureError(
            "checkpoint text has fewer than 3 newline-terminated lines, expected origin, "
            "size and root hash"
        )
    return f"{_HEADER}time {timestamp}\n{checkpoint_text}".encode()


def cosign(checkpoint_text: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """The cosignature/v1 line (newline-terminated) of ``private_key`` over the checkpoint."""
    check_key_name(name)
    message = cosigned_message(checkpoint_text, timestamp)
    kid = key_id(name, private_key.public_key(), COSIGNATURE_TYPE)
    blob = kid + timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + private_key.sign(message)
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def verify_cosignature(line: str, checkpoint_text: str, witness: WitnessKey) -> int:
    """Check that ``line`` is ``witness``'s cosignature of the checkpoint; its timestamp.

    ``line`` may end with a newline. A line by another key (name or key id differ) is a
    refusal too: pick the line with :func:`cosigners` when a note holds several.
    """
    parsed = _parse_line(line.removesuffix("\n"))
    if parsed.name != witness.name or parsed.key_id != witness.key_id:
        raise CosignatureError(
            f"cosignature is by {parsed.name}+{parsed.key_id.hex()}, "
            f"expected {witness.name}+{witness.key_id.hex()}"
        )
    return _verify(parsed, checkpoint_text, witness)


def cosigners(
    lines: Iterable[SignatureLine], checkpoint_text: str, witnesses: Mapping[str, WitnessKey]
) -> dict[str, int]:
    """The witnesses (by their name in ``witnesses``) whose cosignature among ``lines``
    verifies over the checkpoint, each with its timestamp.

    Lines by keys not in ``witnesses`` are ignored (the log's own signature among them), as
    signed-note requires; a line by a known key that does not verify is a refusal, since a
    witness never produces one.
    """
    by_id = {(w.name, w.key_id): label for label, w in witnesses.items()}
    found: dict[str, int] = {}
    for line in lines:
        label = by_id.get((line.name, line.key_id))
        if label is not None:
            found[label] = _verify(line, checkpoint_text, witnesses[label])
    return found


def _parse_line(line: str) -> SignatureLine:
    try:
        return parse_signature_line(line)
    except CheckpointError as exc:
        raise CosignatureError(f"cosignature {exc}") from None


def _verify(line: SignatureLine, checkpoint_text: str, witness: WitnessKey) -> int:
    expected = _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE
    if len(line.signature) != expected:
        raise CosignatureError(
            f"cosignature by {witness.name} has {len(line.signature)} bytes after the key id, "
            f"expected {expected} (8-byte timestamp and Ed25519 signature)"
        )
    timestamp = int.from_bytes(line.signature[:_TIMESTAMP_SIZE], "big")
    message = cosigned_message(checkpoint_text, timestamp)
    try:
        witness.public_key.verify(line.signature[_TIMESTAMP_SIZE:], message)
    except InvalidSignature:
        raise CosignatureError(
            f"cosignature by {witness.name}+{witness.key_id.hex()} (time {timestamp}) does "
            "not verify over this checkpoint"
        ) from None
    return timestamp


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(
            f"cosignature timestamp is {timestamp!r}, expected POSIX seconds in 0..{MAX_TIMESTAMP}"
        )
