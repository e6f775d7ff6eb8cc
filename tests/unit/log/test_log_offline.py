"""Proof documents are checked with the public key alone, and every alteration is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.canonical import canonical_json
from gateway.log import merkle
from gateway.log.checkpoint import Checkpoint, sign_checkpoint, verifier_key
from gateway.log.offline import ProofDocumentError, proof_document, verify_proof_document

ORIGIN = "gateway.test/disclosures"
KEY = Ed25519PrivateKey.generate()
VERIFIER = verifier_key(ORIGIN, KEY.public_key())
ENTRIES = [{"kind": "outcome", "disclosure_id": f"d-{i}", "outcome": "sent"} for i in range(11)]
LEAVES = [merkle.leaf_hash(canonical_json(e)) for e in ENTRIES]


def document(index: int = 6, key: Ed25519PrivateKey = KEY) -> dict[str, Any]:
    root = merkle.root_from_leaf_hashes(LEAVES)
    note = sign_checkpoint(Checkpoint(ORIGIN, len(LEAVES), root), ORIGIN, key)
    return proof_document(
        origin=ORIGIN,
        index=index,
        entry=ENTRIES[index],
        leaf=LEAVES[index],
        tree_size=len(LEAVES),
        hashes=merkle.inclusion_proof(index, LEAVES),
        checkpoint_note=note,
    )


def test_a_genuine_document_verifies() -> None:
    for index in range(len(ENTRIES)):
        checkpoint = verify_proof_document(document(index), VERIFIER)
        assert (checkpoint.origin, checkpoint.size) == (ORIGIN, len(LEAVES))


def _edit_entry(doc: dict[str, Any]) -> None:
    doc["entry"]["outcome"] = "failed"
    doc.pop("leaf_hash")


def _flip_proof(doc: dict[str, Any]) -> None:
    doc["inclusion_proof"][0] = doc["inclusion_proof"][1]


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (_edit_entry, "not proven"),
        (lambda d: d["entry"].update(outcome="failed"), "'leaf_hash' is not the hash"),
        (_flip_proof, "not proven"),
        (lambda d: d.update(index=7), "not proven"),
        (lambda d: d.update(tree_size=10), "'tree_size' is 10"),
        (lambda d: d.update(checkpoint=d["checkpoint"].replace("\n11\n", "\n12\n")), "verify"),
        (lambda d: d.update(format="other/1"), "'format'"),
        (lambda d: d.update(inclusion_proof=["!!"]), "not base64"),
        (lambda d: d.pop("entry"), "'entry' must be"),
    ],
)
def test_every_alteration_is_refused(alter: Any, message: str) -> None:
    doc = copy.deepcopy(document())
    alter(doc)
    with pytest.raises(ProofDocumentError, match=message):
        verify_proof_document(doc, VERIFIER)


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    with pytest.raises(ProofDocumentError, match="does not verify"):
        verify_proof_document(document(key=Ed25519PrivateKey.generate()), VERIFIER)
    with pytest.raises(ProofDocumentError, match="JSON object"):
        verify_proof_document([], VERIFIER)
