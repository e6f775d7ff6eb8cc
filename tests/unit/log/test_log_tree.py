"""gateway.log.tree: stored subtree hashes give the same roots and proofs as the whole tree.

The reference is gateway.log.merkle computing from the full list of leaf hashes (itself
checked against the transparency-dev vectors in test_merkle.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.log import merkle
from gateway.log.tree import TILE, RangePlan, TreeBuilder, nodes_above, subtrees

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "merkle"


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


LEAVES = leaves(12 * TILE + 77)  # a dozen tiles and a ragged end


def stored(hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every node a store would hold for these leaves, keyed like RangePlan expects."""
    found = {(0, i): h for i, h in enumerate(hashes)}
    builder = TreeBuilder()
    for level, index, node in builder.extend(hashes):
        found[(level, index)] = node
    return found


def counts(found: dict[tuple[int, int], bytes]) -> dict[int, int]:
    result: dict[int, int] = {}
    for level, index in found:
        if level:
            result[level] = max(result.get(level, 0), index + 1)
    return result


FOUND = stored(LEAVES)


def test_subtrees_split_a_range_into_aligned_complete_subtrees() -> None:
    assert subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert subtrees(8, 13) == [(2, 2), (0, 12)]
    assert subtrees(256, 512) == [(8, 1)]
    with pytest.raises(ValueError, match="multiple"):
        subtrees(3, 6)
    with pytest.raises(ValueError, match="empty"):
        subtrees(4, 4)


def test_roots_from_stored_nodes_match_the_whole_tree() -> None:
    plan = RangePlan(counts(FOUND))
    for size in [1, 2, 255, 256, 257, 511, 512, 1024, 2047, len(LEAVES)]:
        assert plan.hash_range(0, size, FOUND) == merkle.root_from_leaf_hashes(LEAVES[:size])


def test_reads_are_few_hashes_even_for_a_big_range() -> None:
    plan = RangePlan(counts(FOUND))
    reads = plan.reads([(0, len(LEAVES))])
    assert sum(end - start for _, start, end in reads) < 2 * TILE
    assert {level for level, _, _ in reads} == {0, 8}


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, len(LEAVES)),
    data=st.data(),
    coverage=st.sampled_from(["full", "none", "lagging"]),
)
def test_proofs_from_stored_nodes_equal_proofs_from_all_leaves(
    size: int, data: st.DataObject, coverage: str
) -> None:
    found = FOUND
    if coverage == "none":
        found = {k: v for k, v in FOUND.items() if k[0] == 0}
    elif coverage == "lagging":  # the nodes of the last tiles are not stored yet
        found = {k: v for k, v in FOUND.items() if k[0] == 0 or k[1] < 3}
    plan = RangePlan(counts(found))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size))
    prefix = LEAVES[:size]

    def hash_range(a: int, b: int) -> bytes:
        return plan.hash_range(a, b, found)

    assert merkle.inclusion_proof_from_ranges(index, size, hash_range) == merkle.inclusion_proof(
        index, prefix
    )
    assert merkle.consistency_proof_from_ranges(
        first, size, hash_range
    ) == merkle.consistency_proof(first, prefix)


def test_a_missing_hash_is_a_proof_error_naming_it() -> None:
    found = {k: v for k, v in FOUND.items() if k != (0, 7)}
    plan = RangePlan({})
    with pytest.raises(merkle.ProofError, match="leaf hash 7 is missing"):
        plan.hash_range(0, 16, found)


def test_nodes_above_hash_complete_tiles_only() -> None:
    nodes = nodes_above(0, TILE, LEAVES[TILE : 3 * TILE + 5])
    assert nodes == [
        (8, 1, merkle.root_from_leaf_hashes(LEAVES[TILE : 2 * TILE])),
        (8, 2, merkle.root_from_leaf_hashes(LEAVES[2 * TILE : 3 * TILE])),
    ]
    with pytest.raises(ValueError, match="multiple"):
        nodes_above(0, 3, LEAVES[:TILE])


def test_tree_builder_root_at_every_size_and_its_nodes() -> None:
    builder = TreeBuilder()
    nodes = []
    for size, leaf in enumerate(LEAVES[:700], start=1):
        nodes += builder.append(leaf)
        assert builder.root() == merkle.root_from_leaf_hashes(LEAVES[:size])
    assert nodes == [
        (8, i, merkle.root_from_leaf_hashes(LEAVES[i * TILE : (i + 1) * TILE])) for i in range(2)
    ]


def test_tree_builder_extend_equals_append_and_carries_to_level_16() -> None:
    many = leaves(TILE * TILE + 3)
    one, bulk = TreeBuilder(), TreeBuilder()
    appended = [n for leaf in many[:1000] for n in one.append(leaf)]
    extended = bulk.extend(many[:500]) + bulk.extend(many[500:1000])
    assert appended == extended and one.root() == bulk.root()
    top = [n for n in bulk.extend(many[1000:]) if n[0] == 16]
    assert top == [(16, 0, merkle.root_from_leaf_hashes(many[: TILE * TILE]))]
    assert bulk.root() == merkle.root_from_leaf_hashes(many)


def test_tree_builder_reproduces_the_shared_roots() -> None:
    doc = json.loads((VECTORS / "roots.json").read_text())
    inputs = [bytes.fromhex(h) for h in doc["leaf_inputs_hex"]]
    roots = doc["root_hashes_hex_by_tree_size"]
    builder = TreeBuilder()
    assert builder.root() == bytes.fromhex(roots[0]) == hashlib.sha256(b"").digest()
    for size, data in enumerate(inputs, start=1):
        builder.append(merkle.leaf_hash(data))
        assert builder.root() == bytes.fromhex(roots[size])
