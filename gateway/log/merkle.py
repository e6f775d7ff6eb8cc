"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

This is the pure, I/O-free cryptographic core of the gateway's tamper-evident disclosure
log. Every disclosure is appended to the log as one leaf; the log publishes signed tree
heads (see ``gateway.log.checkpoint``) and anyone holding an earlier tree head can check
that a later one only *appended* entries (consistency proof), and that a given entry is in
the tree (inclusion proof).

Hashing (RFC 9162 §2.1.1, identical to RFC 6962 §2.1)::

    leaf hash  = SHA-256(0x00 || entry bytes)
    node hash  = SHA-256(0x01 || left || right)
    empty root = SHA-256("")

The Merkle Tree Hash ``MTH`` of ``n > 1`` leaves splits them at ``k``, the largest power
of two smaller than ``n``: ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

What is here:

* :func:`leaf_hash`, :func:`node_hash`, :data:`EMPTY_ROOT`;
* :func:`root_from_leaf_hashes` - MTH over a list of leaf hashes, iterative (no recursion,
  no list slicing), roughly one SHA-256 call per leaf;
* :class:`MerkleAccumulator` - the O(log n) "compact range" / frontier of a growing log:
  append leaf hashes and read the root at any time, and restore it from its stored
  frontier;
* proof generation: :func:`inclusion_proof` and :func:`consistency_proof` from the list of
  leaf hashes, or :func:`inclusion_proof_from_ranges` and
  :func:`consistency_proof_from_ranges` from a callable ``hash_range(start, end)`` that
  returns ``MTH(D[start:end])`` (so a store can serve precomputed subtree hashes);
* proof verification: :func:`verify_inclusion` and :func:`verify_consistency`, following
  RFC 9162 §2.1.3.2 and §2.1.4.2 step by step and raising :class:`ProofError` (a
  ``ValueError``) that says what was expected and what was found.

Sizes and indexes are plain Python ints (unbounded), so out-of-range values such as
``2**64 - 1`` are rejected with an error rather than wrapping around.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashRange",
    "MerkleAccumulator",
    "ProofError",
    "consistency_proof",
    "consistency_proof_from_ranges",
    "inclusion_proof",
    "inclusion_proof_from_ranges",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

HashRange = Callable[[int, int], bytes]
"""``hash_range(start, end)`` returns ``MTH(D[start:end])`` for ``0 <= start < end``."""


class ProofError(ValueError):
    """An inclusion or consistency proof does not verify (or cannot be checked)."""


def leaf_hash(entry_bytes: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || entry_bytes)``."""
    return _sha256(_LEAF_PREFIX + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (requires ``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH of ``leaf_hashes[start:end]`` without copying the input.

    Builds the tree bottom-up, one level at a time: adjacent pairs are hashed and a lone
    last node is carried up unchanged. This yields exactly the RFC 9162 tree (split at the
    largest power of two below ``n``), because the left part of every split is a complete
    subtree whose pairs never straddle the split point.
    """
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[start])
    sha = _sha256
    prefix = _NODE_PREFIX
    level = [
        sha(prefix + leaf_hashes[i] + leaf_hashes[i + 1]).digest() for i in range(start, end - 1, 2)
    ]
    if n & 1:
        level.append(leaf_hashes[end - 1])
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        pairs = iter(level)
        level = [
            sha(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)
        ]
        if carry is not None:
            level.append(carry)
    return bytes(level[0])


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes.

    ``leaf_hashes`` are already-hashed leaves (see :func:`leaf_hash`). An empty sequence
    gives :data:`EMPTY_ROOT`. Iterative and linear: about ``n`` SHA-256 calls.
    """
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


class MerkleAccumulator:
    """Incremental Merkle tree state for an append-only log, in O(log n) space.

    The state is the tree ``size`` and its *frontier*: the roots of the complete subtrees
    that the first ``size`` leaves decompose into, one per set bit of ``size``, ordered
    from left (largest, oldest leaves) to right (smallest, newest leaves). For example a
    tree of 13 = 8 + 4 + 1 leaves has the frontier
    ``[MTH(D[0:8]), MTH(D[8:12]), MTH(D[12:13])]``.

    ``append`` costs amortised O(1) hashes and ``root`` O(log n) hashes.

    To persist and restore: store ``acc.size`` and ``acc.frontier`` (``size.bit_count()``
    hashes of 32 bytes) next to the log, and later rebuild the accumulator with
    ``MerkleAccumulator.from_frontier(size, frontier)``. The frontier is also what a store
    needs to keep to compute new roots without re-reading old leaves.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleAccumulator:
        """Rebuild an accumulator from a stored ``size`` and ``frontier`` (see class doc).

        Raises ``ValueError`` if the frontier does not have one 32-byte hash per set bit
        of ``size``.
        """
        if size < 0:
            raise ValueError(f"tree size must be >= 0, got {size}")
        expected = size.bit_count()
        if len(frontier) != expected:
            raise ValueError(
                f"frontier for tree size {size} must have {expected} hashes, got {len(frontier)}"
            )
        for position, h in enumerate(frontier):
            if len(h) != HASH_SIZE:
                raise ValueError(
                    f"frontier hash {position} has {len(h)} bytes, expected {HASH_SIZE}"
                )
        acc = cls()
        acc._size = size
        acc._frontier = [bytes(h) for h in frontier]
        return acc

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """Roots of the complete subtrees, largest (leftmost) first; see the class doc."""
        return tuple(self._frontier)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (the output of :func:`leaf_hash`, 32 bytes)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash has {len(leaf_hash)} bytes, expected {HASH_SIZE}")
        h = bytes(leaf_hash)
        size = self._size
        # Each trailing one bit of the old size is a complete subtree of the same height
        # as the node being carried: merge them, exactly like a binary increment.
        while size & 1:
            h = node_hash(self._frontier.pop(), h)
            size >>= 1
        self._frontier.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """Merkle Tree Hash of the leaves appended so far (:data:`EMPTY_ROOT` if none)."""
        if not self._frontier:
            return EMPTY_ROOT
        h = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> MerkleAccumulator:
        """An independent copy of this accumulator."""
        return MerkleAccumulator.from_frontier(self._size, self._frontier)

    def __repr__(self) -> str:
        return f"MerkleAccumulator(size={self._size}, root={self.root().hex()})"


# --------------------------------------------------------------------------- proof generation


def inclusion_proof_from_ranges(index: int, size: int, hash_range: HashRange) -> list[bytes]:
    """Inclusion proof ``PATH(index, D[0:size])`` (RFC 9162 §2.1.3.1), from subtree hashes.

    ``hash_range(start, end)`` must return ``MTH(D[start:end])``. Each range requested is
    either a complete, aligned subtree (``end - start`` a power of two and ``start`` a
    multiple of it) or a range that ends at ``size`` - so a store that keeps the hashes of
    complete subtrees can answer any request from at most O(log n) of them.

    The proof lists sibling hashes from the leaf upwards. Raises ``ValueError`` unless
    ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is out of range for tree size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(hash_range(lo + k, hi))
            hi = lo + k
        else:
            path.append(hash_range(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof_from_ranges(size1: int, size2: int, hash_range: HashRange) -> list[bytes]:
    """Consistency proof ``PROOF(size1, D[0:size2])`` (RFC 9162 §2.1.4.1), from subtree hashes.

    ``hash_range`` is as for :func:`inclusion_proof_from_ranges` (same range shapes).
    ``size1 == size2`` gives the empty proof. Raises ``ValueError`` unless
    ``0 < size1 <= size2``: no proof exists from the empty tree.
    """
    if not 0 < size1 <= size2:
        raise ValueError(
            f"consistency proof needs 0 < size1 <= size2, got size1={size1}, size2={size2}"
        )
    proof: list[bytes] = []
    lo, hi, m = 0, size2, size1
    whole_old_tree = True  # the "b" flag of SUBPROOF: is D[lo:lo+m] the whole old tree?
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            proof.append(hash_range(lo + k, hi))
            hi = lo + k
        else:
            proof.append(hash_range(lo, lo + k))
            lo += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(hash_range(lo, hi))
    proof.reverse()
    return proof


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof for leaf ``index`` in the tree of all ``leaf_hashes``.

    See :func:`inclusion_proof_from_ranges`. Costs about ``len(leaf_hashes)`` hashes.
    """

    def hash_range(start: int, end: int) -> bytes:
        return _range_root(leaf_hashes, start, end)

    return inclusion_proof_from_ranges(index, len(leaf_hashes), hash_range)


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the first ``size1`` leaves to all of ``leaf_hashes``.

    ``size2`` is ``len(leaf_hashes)``. See :func:`consistency_proof_from_ranges`.
    """

    def hash_range(start: int, end: int) -> bytes:
        return _range_root(leaf_hashes, start, end)

    return consistency_proof_from_ranges(size1, len(leaf_hashes), hash_range)


# --------------------------------------------------------------------------- verification


def _inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of ``index`` in a tree of ``size`` leaves.

    ``inner`` levels lie below the point where the paths to ``index`` and ``size - 1``
    diverge; above it, one hash per set bit of the remaining index (the right border).
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _consistency_proof_length(size1: int, size2: int) -> int:
    """Number of hashes in the consistency proof from ``size1`` to ``size2`` (0<size1<size2)."""
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    length = _inclusion_proof_length(size1 - 1, size2) - shift
    # Unless size1 is a power of two, the proof also starts with the hash of the complete
    # subtree of 2**shift leaves that ends at size1.
    if size1 != 1 << shift:
        length += 1
    return length


def _check_hash_sizes(proof: Sequence[bytes]) -> None:
    for position, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash {position} has {len(h)} bytes, expected {HASH_SIZE}")


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Follows RFC 9162 §2.1.3.2. Returns ``None`` on success; raises :class:`ProofError`
    otherwise (index out of range, wrong proof length, wrong hash sizes, root mismatch).
    """
    if index < 0 or index >= size:
        raise ProofError(f"leaf index {index} is out of range: expected 0 <= index < {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash has {len(leaf_hash)} bytes, expected {HASH_SIZE}")
    expected_length = _inclusion_proof_length(index, size)
    if len(proof) != expected_length:
        raise ProofError(
            f"inclusion proof for index {index} in tree size {size} has {len(proof)} "
            f"hashes, expected {expected_length}"
        )
    _check_hash_sizes(proof)

    # RFC 9162 §2.1.3.2, steps 2-5.
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise ProofError(f"computed root {r.hex()}, expected {bytes(root).hex()}")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    Follows RFC 9162 §2.1.4.2. Returns ``None`` on success; raises :class:`ProofError`
    otherwise. Edge cases (pinned by the transparency-dev test vectors):

    * ``size1 > size2`` is an error;
    * ``size1 == 0`` is always an error, even with ``size2 == 0``: the empty tree is a
      prefix of every tree, so there is nothing to prove and callers must handle a
      previous size of 0 themselves (e.g. by trusting the new tree head's signature);
    * ``size1 == size2 > 0`` needs an empty proof and ``root1 == root2``.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must be >= 0, got size1={size1}, size2={size2}")
    if size1 > size2:
        raise ProofError(f"size1 {size1} is greater than size2 {size2}: expected size1 <= size2")
    if size1 == 0:
        raise ProofError(
            f"consistency from the empty tree (size1=0) to size2={size2} is meaningless: "
            "expected size1 > 0"
        )
    if size1 == size2:
        if proof:
            raise ProofError(
                f"proof has {len(proof)} hashes, expected 0 because size1 == size2 == {size1}"
            )
        if root1 != root2:
            raise ProofError(
                f"size1 == size2 == {size1} but root1 {bytes(root1).hex()} "
                f"differs from root2 {bytes(root2).hex()}"
            )
        return
    expected_length = _consistency_proof_length(size1, size2)
    if len(proof) != expected_length:
        raise ProofError(
            f"consistency proof from size {size1} to {size2} has {len(proof)} hashes, "
            f"expected {expected_length}"
        )
    _check_hash_sizes(proof)

    # RFC 9162 §2.1.4.2, steps 1-7.
    path = list(proof)
    if not path:  # step 1 (unreachable after the length check; kept to mirror the RFC)
        raise ProofError("consistency proof is empty, expected at least 1 hash")
    if size1 & (size1 - 1) == 0:  # step 2: size1 is an exact power of two
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # step 7
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if fr != root1:
        raise ProofError(
            f"computed root for size {size1} {fr.hex()}, expected root1 {bytes(root1).hex()}"
        )
    if sr != root2:
        raise ProofError(
            f"computed root for size {size2} {sr.hex()}, expected root2 {bytes(root2).hex()}"
        )
