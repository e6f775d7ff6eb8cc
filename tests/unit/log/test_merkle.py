"""Tests for gateway.log.merkle against the public RFC 6962 vectors and an RFC reference.

The vectors live in ``tests/vectors/merkle`` (copied unchanged from transparency-dev/merkle,
Apache-2.0; see the README there). A missing folder must fail these tests, never skip them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleAccumulator,
    ProofError,
    consistency_proof,
    consistency_proof_from_ranges,
    inclusion_proof,
    inclusion_proof_from_ranges,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

TESTDATA = Path(__file__).resolve().parents[2] / "vectors" / "merkle"
MISSING = TESTDATA / "<test vectors missing>"


def _vector_files(kind: str) -> list[Path]:
    files = sorted((TESTDATA / kind).rglob("*.json"))
    # A missing folder yields one parameter that fails, instead of an empty (skipped) set.
    return files or [MISSING]


def _vector_id(path: Path) -> str:
    return path.relative_to(TESTDATA).as_posix() if path != MISSING else "MISSING"


def _load(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"Merkle test vectors not found: expected {path} under {TESTDATA}"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _proof(data: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in data["proof"] or []]


INCLUSION_FILES = _vector_files("inclusion")
CONSISTENCY_FILES = _vector_files("consistency")


# --------------------------------------------------------------------------- reference (RFC text)


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written recursively straight from the RFC text."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


@cache
def _leaves(n: int) -> tuple[bytes, ...]:
    return tuple(leaf_hash(b"entry-%d" % i) for i in range(n))


# --------------------------------------------------------------------------- public vectors


def test_testdata_folder_is_present() -> None:
    assert TESTDATA.is_dir(), f"expected the Merkle test vectors at {TESTDATA}"
    assert (TESTDATA / "roots.json").is_file()
    assert MISSING not in INCLUSION_FILES and MISSING not in CONSISTENCY_FILES
    assert len(INCLUSION_FILES) >= 90, f"found only {len(INCLUSION_FILES)} inclusion vectors"
    assert len(CONSISTENCY_FILES) >= 90, f"found only {len(CONSISTENCY_FILES)} consistency vectors"


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_vector_id)
def test_inclusion_vector(path: Path) -> None:
    data = _load(path)
    args = (
        data["leafIdx"],
        data["treeSize"],
        _b64(data["leafHash"]),
        _proof(data),
        _b64(data["root"]),
    )
    if data["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_vector_id)
def test_consistency_vector(path: Path) -> None:
    data = _load(path)
    args = (
        data["size1"],
        data["size2"],
        _proof(data),
        _b64(data["root1"]),
        _b64(data["root2"]),
    )
    if data["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.fixture(scope="module")
def roots_json() -> dict[str, Any]:
    return _load(TESTDATA / "roots.json")


@pytest.fixture(scope="module")
def vector_hashes(roots_json: dict[str, Any]) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(h)) for h in roots_json["leaf_inputs_hex"]]


@pytest.fixture(scope="module")
def vector_roots(roots_json: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(h) for h in roots_json["root_hashes_hex_by_tree_size"]]


def test_roots_json_shape(vector_hashes: list[bytes], vector_roots: list[bytes]) -> None:
    assert len(vector_hashes) == 8
    assert len(vector_roots) == 9
    assert vector_roots[0] == EMPTY_ROOT


def test_roots_reproduced(vector_hashes: list[bytes], vector_roots: list[bytes]) -> None:
    for size, want in enumerate(vector_roots):
        assert root_from_leaf_hashes(vector_hashes[:size]) == want, f"size {size}"


def test_roots_reproduced_by_accumulator(
    vector_hashes: list[bytes], vector_roots: list[bytes]
) -> None:
    acc = MerkleAccumulator()
    assert acc.root() == vector_roots[0]
    for size in range(1, len(vector_roots)):
        acc.append(vector_hashes[size - 1])
        assert acc.size == size
        assert acc.root() == vector_roots[size], f"size {size}"
        restored = MerkleAccumulator.from_frontier(acc.size, acc.frontier)
        assert restored.root() == vector_roots[size]
        # The restored state keeps growing exactly like the original.
        restored.extend(vector_hashes[size:])
        assert restored.root() == vector_roots[-1]


def _happy_vectors(files: list[Path]) -> list[dict[str, Any]]:
    return [d for d in (_load(p) for p in files) if not d["wantErr"]]


def test_generated_inclusion_proofs_match_vectors(
    vector_hashes: list[bytes], vector_roots: list[bytes]
) -> None:
    published = {
        (d["leafIdx"], d["treeSize"], _b64(d["leafHash"]), _b64(d["root"])): _proof(d)
        for d in _happy_vectors(INCLUSION_FILES)
    }
    matched = 0
    for size in range(1, 9):
        leaves = vector_hashes[:size]
        for index in range(size):
            proof = inclusion_proof(index, leaves)
            verify_inclusion(index, size, leaves[index], proof, vector_roots[size])
            key = (index, size, leaves[index], vector_roots[size])
            if key in published:
                assert proof == published[key], f"index {index}, size {size}"
                matched += 1
    # happy paths (0,1), (0,8), (5,8), (2,3), (1,5) are all built from these leaves
    assert matched >= 5


def test_generated_consistency_proofs_match_vectors(
    vector_hashes: list[bytes], vector_roots: list[bytes]
) -> None:
    published = {
        (d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"])): _proof(d)
        for d in _happy_vectors(CONSISTENCY_FILES)
    }
    matched = 0
    for size2 in range(1, 9):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(size1, vector_hashes[:size2])
            verify_consistency(size1, size2, proof, vector_roots[size1], vector_roots[size2])
            key = (size1, size2, vector_roots[size1], vector_roots[size2])
            if key in published:
                assert proof == published[key], f"size1 {size1}, size2 {size2}"
                matched += 1
    # happy paths (1,1), (1,8), (6,8), (2,5), (6,7)
    assert matched >= 5


# --------------------------------------------------------------------------- hashing and roots


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert HASH_SIZE == 32


def test_root_matches_reference_for_many_sizes() -> None:
    for size in range(0, 130):
        leaves = list(_leaves(size))
        assert root_from_leaf_hashes(leaves) == ref_mth(leaves), f"size {size}"


def test_root_accepts_tuples_and_large_trees() -> None:
    leaves = _leaves(5000)
    acc = MerkleAccumulator()
    acc.extend(leaves)
    assert root_from_leaf_hashes(leaves) == acc.root() == ref_mth(list(leaves))


# --------------------------------------------------------------------------- accumulator


def test_accumulator_frontier_is_complete_subtree_roots() -> None:
    leaves = list(_leaves(13))
    acc = MerkleAccumulator()
    acc.extend(leaves)
    assert acc.frontier == (ref_mth(leaves[0:8]), ref_mth(leaves[8:12]), ref_mth(leaves[12:13]))
    for size in range(0, 70):
        acc = MerkleAccumulator()
        acc.extend(_leaves(size))
        assert len(acc.frontier) == size.bit_count()
        assert acc.root() == ref_mth(list(_leaves(size)))


def test_accumulator_copy_is_independent() -> None:
    acc = MerkleAccumulator()
    acc.extend(_leaves(3))
    snapshot = acc.copy()
    acc.append(_leaves(4)[3])
    assert snapshot.size == 3
    assert snapshot.root() == root_from_leaf_hashes(_leaves(3))
    assert acc.root() == root_from_leaf_hashes(_leaves(4))
    assert "size=4" in repr(acc)


def test_accumulator_rejects_bad_input() -> None:
    acc = MerkleAccumulator()
    with pytest.raises(ValueError, match="leaf hash has 3 bytes, expected 32"):
        acc.append(b"abc")
    with pytest.raises(ValueError, match="must have 2 hashes, got 1"):
        MerkleAccumulator.from_frontier(3, [b"\x00" * 32])
    with pytest.raises(ValueError, match="frontier hash 0 has 31 bytes, expected 32"):
        MerkleAccumulator.from_frontier(1, [b"\x00" * 31])
    with pytest.raises(ValueError, match=">= 0"):
        MerkleAccumulator.from_frontier(-1, [])
    empty = MerkleAccumulator.from_frontier(0, [])
    assert empty.root() == EMPTY_ROOT


# --------------------------------------------------------------------------- proof generation


def test_proofs_match_rfc_reference_exhaustively() -> None:
    for size in range(1, 40):
        leaves = list(_leaves(size))
        root = ref_mth(leaves)
        for index in range(size):
            proof = inclusion_proof(index, leaves)
            assert proof == ref_path(index, leaves), f"PATH({index}, {size})"
            verify_inclusion(index, size, leaves[index], proof, root)
        for size1 in range(1, size + 1):
            proof = consistency_proof(size1, leaves)
            assert proof == ref_subproof(size1, leaves, True), f"PROOF({size1}, {size})"
            verify_consistency(size1, size, proof, ref_mth(leaves[:size1]), root)


def _is_aligned_subtree(start: int, end: int) -> bool:
    width = end - start
    return width > 0 and width & (width - 1) == 0 and start % width == 0


def test_range_variants_request_only_documented_ranges() -> None:
    size = 77
    leaves = list(_leaves(size))
    requested: list[tuple[int, int]] = []

    def hash_range(start: int, end: int) -> bytes:
        assert 0 <= start < end <= size
        requested.append((start, end))
        return ref_mth(leaves[start:end])

    for index in range(size):
        assert inclusion_proof_from_ranges(index, size, hash_range) == ref_path(index, leaves)
    for size1 in range(1, size + 1):
        assert consistency_proof_from_ranges(size1, size, hash_range) == ref_subproof(
            size1, leaves, True
        )
    # Consistency proofs into a smaller tree than the whole list are also served by ranges.
    assert consistency_proof_from_ranges(5, 9, hash_range) == ref_subproof(5, leaves[:9], True)
    for start, end in requested:
        assert _is_aligned_subtree(start, end) or end in (size, 9), (start, end)


def test_generation_rejects_bad_arguments() -> None:
    leaves = list(_leaves(4))
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(4, leaves)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(-1, leaves)
    with pytest.raises(ValueError, match="0 < size1 <= size2"):
        consistency_proof(0, leaves)
    with pytest.raises(ValueError, match="0 < size1 <= size2"):
        consistency_proof(5, leaves)
    assert consistency_proof(4, leaves) == []


# --------------------------------------------------------------------------- verification errors


def test_verify_inclusion_error_messages() -> None:
    leaves = list(_leaves(5))
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(1, leaves)
    with pytest.raises(ProofError, match="out of range: expected 0 <= index < 5"):
        verify_inclusion(5, 5, leaves[1], proof, root)
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(-1, 5, leaves[1], proof, root)
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(0, 0, leaves[0], [], EMPTY_ROOT)
    with pytest.raises(ProofError, match=f"has 2 hashes, expected {len(proof)}"):
        verify_inclusion(1, 5, leaves[1], proof[:2], root)
    with pytest.raises(ProofError, match="leaf hash has 4 bytes, expected 32"):
        verify_inclusion(1, 5, b"leaf", proof, root)
    with pytest.raises(ProofError, match="proof hash 1 has 3 bytes, expected 32"):
        verify_inclusion(1, 5, leaves[1], [proof[0], b"bad", *proof[2:]], root)
    with pytest.raises(ProofError, match=f"computed root [0-9a-f]{{64}}, expected {'00' * 32}"):
        verify_inclusion(1, 5, leaves[1], proof, b"\x00" * 32)


def test_verify_consistency_error_messages() -> None:
    leaves = list(_leaves(7))
    root3, root7 = root_from_leaf_hashes(leaves[:3]), root_from_leaf_hashes(leaves)
    proof = consistency_proof(3, leaves)
    verify_consistency(3, 7, proof, root3, root7)
    with pytest.raises(ProofError, match="size1 7 is greater than size2 3"):
        verify_consistency(7, 3, proof, root7, root3)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 7, [], EMPTY_ROOT, root7)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match=">= 0"):
        verify_consistency(-1, 7, proof, root3, root7)
    with pytest.raises(ProofError, match=f"has {len(proof) + 1} hashes, expected {len(proof)}"):
        verify_consistency(3, 7, [*proof, root3], root3, root7)
    with pytest.raises(ProofError, match="has 0 hashes, expected"):
        verify_consistency(3, 7, [], root3, root7)
    with pytest.raises(ProofError, match="has 1 hashes, expected 0 because size1 == size2"):
        verify_consistency(7, 7, [root7], root7, root7)
    with pytest.raises(ProofError, match="differs from root2"):
        verify_consistency(7, 7, [], root3, root7)
    with pytest.raises(ProofError, match=f"expected root1 {'00' * 32}"):
        verify_consistency(3, 7, proof, b"\x00" * 32, root7)
    with pytest.raises(ProofError, match=f"expected root2 {'00' * 32}"):
        verify_consistency(3, 7, proof, root3, b"\x00" * 32)
    with pytest.raises(ProofError, match="proof hash 0 has 1 bytes"):
        verify_consistency(3, 7, [b"x", *proof[1:]], root3, root7)


# --------------------------------------------------------------------------- properties


def _flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    tampered = list(proof)
    h = bytearray(tampered[position])
    h[bit // 8] ^= 1 << (bit % 8)
    tampered[position] = bytes(h)
    return tampered


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=200))
def test_inclusion_property(data: st.DataObject, size: int) -> None:
    leaves = list(_leaves(size))
    root = root_from_leaf_hashes(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = inclusion_proof(index, leaves)
    verify_inclusion(index, size, leaves[index], proof, root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaves[index], _flip(proof, position, bit), root)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        with pytest.raises(ProofError):
            verify_inclusion(other, size, leaves[index], proof, root)


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data(), size2=st.integers(min_value=1, max_value=200))
def test_consistency_property(data: st.DataObject, size2: int) -> None:
    leaves = list(_leaves(size2))
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    root1, root2 = root_from_leaf_hashes(leaves[:size1]), root_from_leaf_hashes(leaves)
    proof = consistency_proof(size1, leaves)
    verify_consistency(size1, size2, proof, root1, root2)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, _flip(proof, position, bit), root1, root2)
    if size1 < size2:
        # A new tree that rewrote an old entry cannot prove consistency with the old root.
        forged = [leaf_hash(b"forged"), *leaves[1:]]
        forged_proof = consistency_proof(size1, forged)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, forged_proof, root1, root_from_leaf_hashes(forged))
