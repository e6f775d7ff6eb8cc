"""A hand-built log for receipt tests: a test log key, two test witnesses, thirteen entries,
checkpoints signed and cosigned at will, and the policy (quorum 2 by default) to check them."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.canonical import canonical_json
from gateway.log import merkle
from gateway.log.checkpoint import Checkpoint, sign_checkpoint, verifier_key
from gateway.log.cosignature import cosign, witness_vkey
from gateway.log.receipt import format_receipt
from gateway.log.witness_policy import WitnessPolicy, parse_witness_policy

ORIGIN = "log.test.example/disclosures"
TIME = 1_796_000_000


def _key(n: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)


LOG_KEY, W1, W2, OTHER_LOG = _key(1), _key(2), _key(3), _key(4)
ENTRIES = [
    {"v": 1, "kind": "intent", "disclosure_id": f"d-{i}", "caller": "svc", "partner": "p-1"}
    for i in range(13)
]
LEAVES = [merkle.leaf_hash(canonical_json(e)) for e in ENTRIES]


def policy_text(quorum: str = "both", log_key: Ed25519PrivateKey = LOG_KEY) -> str:
    return (
        f"log {verifier_key(ORIGIN, log_key.public_key())}\n"
        f"witness w1 {witness_vkey('w1.example', W1.public_key())}\n"
        f"witness w2 {witness_vkey('w2.example', W2.public_key())}\n"
        "group both all w1 w2\n"
        f"quorum {quorum}\n"
    )


def policy(quorum: str = "both", log_key: Ed25519PrivateKey = LOG_KEY) -> WitnessPolicy:
    return parse_witness_policy(policy_text(quorum, log_key).encode(), "policy.txt")


def note(
    *,
    size: int = len(ENTRIES),
    origin: str = ORIGIN,
    log_key: Ed25519PrivateKey = LOG_KEY,
    witnesses: tuple[tuple[str, Ed25519PrivateKey], ...] = (("w1.example", W1), ("w2.example", W2)),
) -> str:
    cp = Checkpoint(origin, size, merkle.root_from_leaf_hashes(LEAVES[:size]))
    signed = sign_checkpoint(cp, origin, log_key)
    return signed + "".join(cosign(cp.body(), name, key, TIME) for name, key in witnesses)


def receipt(index: int = 5, **kwargs: Any) -> str:
    size = kwargs.get("size", len(ENTRIES))
    return format_receipt(index, merkle.inclusion_proof(index, LEAVES[:size]), note(**kwargs))


def served(index: int = 5) -> str:
    """The entry as GET /v1/log/entries/{index} serves it."""
    return json.dumps(
        {"index": index, "leaf_hash": b64(LEAVES[index]), "entry": ENTRIES[index]},
        ensure_ascii=True,
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def verify(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gateway receipt verify` in a folder with no config.toml: it needs none."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "receipt", "verify", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
