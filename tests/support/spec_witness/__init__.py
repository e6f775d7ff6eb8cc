"""An independent tlog witness, written from the C2SP specs only, for testing the gateway.

It must not import ``gateway`` (a test checks): its verdicts and its checks of the gateway's
cosignatures are worth something only because they share no code with what they test.

- ``note``: signed notes and verifier keys (c2sp.org/signed-note), Ed25519 type 0x01;
- ``checkpoint``: checkpoint note text (c2sp.org/tlog-checkpoint);
- ``merkle``: RFC 9162 tree hash, consistency proofs and their verification;
- ``cosignature``: ``cosignature/v1`` (type 0x04) signing and verifying, the key file;
- ``server``: the tlog-witness HTTP service (c2sp.org/tlog-witness);
- ``__main__``: ``python -m spec_witness`` runs it as a separate process;
- ``process``: ``running_witness`` starts that process from a test.
"""

from .checkpoint import Checkpoint, parse_checkpoint
from .cosignature import (
    CosignatureVerifier,
    Cosigner,
    as_cosignature_vkey,
    load_or_create_cosigner,
    parse_signer_key,
    timestamp_of,
    verify_cosigned,
)
from .merkle import consistency_proof, tree_hash, verify_consistency
from .note import (
    Ed25519Verifier,
    NoteError,
    open_note,
    parse_note,
    parse_vkey,
    sign_ed25519,
)

__all__ = [
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "Ed25519Verifier",
    "NoteError",
    "as_cosignature_vkey",
    "consistency_proof",
    "load_or_create_cosigner",
    "open_note",
    "parse_checkpoint",
    "parse_note",
    "parse_signer_key",
    "parse_vkey",
    "sign_ed25519",
    "timestamp_of",
    "tree_hash",
    "verify_consistency",
    "verify_cosigned",
]
