"""Proof documents: one entry, its inclusion proof and a signed checkpoint, checkable offline.

``gateway log prove INDEX`` prints a :func:`proof_document`; anyone holding the log's
public verifier key(s) (``gateway log key --all``, ``GET /v1/log/key``) checks it with
:func:`verify_proof_document` — which uses nothing but ``gateway.log.merkle``,
``gateway.log.checkpoint`` and the canonical JSON rule, no store and no secret::

    {
      "format": "disclosure-log-proof/1",
      "origin": "<log origin>",
      "index": 41,
      "entry": { ...the entry as logged... },
      "leaf_hash": "<base64>",          SHA-256(0x00 || canonical JSON of entry)
      "tree_size": 1000,
      "inclusion_proof": ["<base64>", ...],   RFC 9162 order, leaf to root
      "checkpoint": "<signed note text>"      commits to tree_size and the root
    }
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.canonical import canonical_json
from gateway.log.checkpoint import Checkpoint, CheckpointError, open_checkpoint_by_any
from gateway.log.merkle import ProofError, leaf_hash, verify_inclusion

__all__ = ["FORMAT", "ProofDocumentError", "proof_document", "verify_proof_document"]

FORMAT: Final = "disclosure-log-proof/1"


class ProofDocumentError(ValueError):
    """The document is malformed, or does not prove what it claims."""


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def proof_document(
    *,
    origin: str,
    index: int,
    entry: Mapping[str, Any],
    leaf: bytes,
    tree_size: int,
    hashes: Sequence[bytes],
    checkpoint_note: str,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "origin": origin,
        "index": index,
        "entry": dict(entry),
        "leaf_hash": b64(leaf),
        "tree_size": tree_size,
        "inclusion_proof": [b64(h) for h in hashes],
        "checkpoint": checkpoint_note,
    }


def _field(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProofDocumentError(f"'{name}' must be a {kind.__name__}")
    return value


def _hash(text: object, what: str) -> bytes:
    try:
        if not isinstance(text, str):
            raise ValueError
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):
        raise ProofDocumentError(f"{what} is not base64") from None


def verify_proof_document(doc: object, verifier_keys: str | Sequence[str]) -> Checkpoint:
    """Check a proof document against the log's verifier key(s); the checkpoint it proves under.

    Checks the checkpoint's signature by one of ``verifier_keys`` (a log's current and
    retired keys, as ``GET /v1/log/key`` lists them: a checkpoint signed before a key
    rotation verifies with the old key, one after it with the new, the switch checkpoint
    with either) and that its origin is the keys' name, that the
    leaf hash is that of the entry's canonical JSON, and the inclusion proof from that
    leaf to the checkpoint's root. Raises :class:`ProofDocumentError` saying what failed.
    """
    if not isinstance(doc, Mapping):
        raise ProofDocumentError("a proof document is a JSON object")
    if doc.get("format") != FORMAT:
        raise ProofDocumentError(f"'format' is {doc.get('format')!r}, expected {FORMAT!r}")
    index = _field(doc, "index", int)
    tree_size = _field(doc, "tree_size", int)
    entry = _field(doc, "entry", dict)
    note = _field(doc, "checkpoint", str)
    hashes = [_hash(h, "an inclusion proof hash") for h in _field(doc, "inclusion_proof", list)]
    try:
        keys = [verifier_keys] if isinstance(verifier_keys, str) else list(verifier_keys)
        key_name = keys[0].strip().split("+", 1)[0] if keys else None
        checkpoint, _ = open_checkpoint_by_any(note, keys, expected_origin=key_name)
    except CheckpointError as exc:
        raise ProofDocumentError(f"the checkpoint does not verify: {exc}") from None
    if checkpoint.size != tree_size:
        raise ProofDocumentError(
            f"'tree_size' is {tree_size} but the checkpoint commits to {checkpoint.size}"
        )
    leaf = leaf_hash(canonical_json(entry))
    if "leaf_hash" in doc and _hash(doc["leaf_hash"], "'leaf_hash'") != leaf:
        raise ProofDocumentError("'leaf_hash' is not the hash of the entry's canonical JSON")
    try:
        verify_inclusion(index, tree_size, leaf, hashes, checkpoint.root)
    except ProofError as exc:
        raise ProofDocumentError(
            f"the entry is not proven in the checkpoint's tree: {exc}"
        ) from None
    return checkpoint
