"""The pieces of the parallel `log verify` (gateway.log.audit_pool), without processes."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from gateway.log.audit_pool import RangeFindings, _hash_contiguous, _pieces, ranges
from gateway.log.tree import TILE, TreeBuilder


def leaf(i: int) -> bytes:
    return hashlib.sha256(b"\x00" + str(i).encode()).digest()


@pytest.mark.parametrize(("count", "jobs"), [(0, 2), (1, 2), (600, 2), (1_000_000, 2), (10**7, 8)])
def test_ranges_are_tile_aligned_cover_everything_and_end_open(count: int, jobs: int) -> None:
    found = ranges(count, jobs)
    assert found[0][0] == 0 and found[-1][1] is None
    for (start, end), (following, _) in itertools.pairwise(found):
        assert start % TILE == 0 and end == following
    assert len(found) <= 2 * jobs


@pytest.mark.parametrize("cuts", [[], [300], [256, 600], [1, 255, 257, 1000]])
def test_tile_roots_build_the_tree_the_leaves_build(cuts: list[int]) -> None:
    leaves = [leaf(i) for i in range(1000)]
    whole = TreeBuilder()
    whole.extend(leaves)
    folded = TreeBuilder()
    for piece in _pieces(0, leaves, cuts):
        if isinstance(piece, bytes):
            folded.extend_tile(piece)
        else:
            assert len(piece) < TILE or any(0 < c % TILE for c in cuts)
            folded.extend(piece)
    assert folded.size == whole.size and folded.root() == whole.root()


def test_a_gap_past_the_range_end_is_found_in_the_range() -> None:
    rows = [(0, b"a", None, None, True), (1, b"b", None, None, True), (700, b"c", None, None, True)]
    found = RangeFindings(0)
    kept: list[bytes] = []
    assert _hash_contiguous(rows, 0, 256, found, kept) == 2  # type: ignore[arg-type]
    assert found.gap == (2, 700) and len(kept) == 2


def test_a_tile_root_only_at_a_tile_border() -> None:
    tree = TreeBuilder()
    tree.append(leaf(0))
    with pytest.raises(ValueError, match="tile border"):
        tree.extend_tile(leaf(1))
