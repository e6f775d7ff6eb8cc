"""RFC 9162 §2.1 Merkle trees: the tree hash, consistency proofs, and their verification.

``tree_hash`` and ``consistency_proof`` are the recursive definitions of §2.1.1 and
§2.1.4.1, written for clarity, not speed (tests build trees and proofs with them);
``verify_consistency`` is the algorithm of §2.1.4.2, step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the entries (the leaves' input, not their hashes)."""
    if not entries:
        return EMPTY_ROOT
    if len(entries) == 1:
        return leaf_hash(entries[0])
    k = _split(len(entries))
    return node_hash(tree_hash(entries[:k]), tree_hash(entries[k:]))


def consistency_proof(m: int, entries: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from the first ``m`` entries to all of them."""
    if not 0 < m <= len(entries):
        raise ValueError(f"no consistency proof from {m} to {len(entries)}")
    return _subproof(m, entries, True)


def _subproof(m: int, entries: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [tree_hash(entries)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, entries[:k], whole), tree_hash(entries[k:])]
    return [*_subproof(m - k, entries[k:], False), tree_hash(entries[:k])]


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (second, second_hash) extends (first, first_hash).

    Equal sizes need an empty proof and equal roots; the empty tree is consistent with any
    tree through an empty proof. Otherwise §2.1.4.2, numbered as there.
    """
    if not 0 <= first <= second or any(len(node) != 32 for node in proof):
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0:
        return not proof and first_hash == EMPTY_ROOT
    # 1. An empty path proves nothing.
    if not proof:
        return False
    path = list(proof)
    # 2. A first tree of power-of-two size is a complete subtree: its root starts the path.
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # 3.
    fn, sn = first - 1, second - 1
    # 4.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:  # a.
            return False
        if fn & 1 or fn == sn:  # b.
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:  # c.
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # d.
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0
