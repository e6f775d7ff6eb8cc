"""The log's Merkle tree in stored pieces: which subtree hashes are kept, and how to use them.

Pure and I/O-free, like ``gateway.log.merkle`` which it builds on. A *node* ``(level,
index)`` is the root of the complete subtree of leaves ``[index * 2**level, (index + 1)
* 2**level)``; level 0 is a leaf hash. Besides one leaf hash per entry, the log keeps the
nodes of every complete subtree at the levels of :data:`NODE_LEVELS` (multiples of
:data:`TILE_HEIGHT`, as in C2SP tlog-tiles): one node per 256 leaves, one per 65,536
leaves, and so on, about 1/255 of the leaf count in all.

Then the hash of any range a proof asks for (see ``merkle.inclusion_proof_from_ranges``)
is a fold of at most ``log2 n`` complete subtrees, and each of those a root over at most
255 stored hashes of one level: a proof at a million entries reads a few hundred hashes in
one query instead of a million.

- :class:`RangePlan` turns the ranges a proof (or a root) needs into the stored hashes
  to read, and computes the ranges from what was read;
- :func:`nodes_above` computes the nodes of the next stored level from complete runs of
  256 hashes of the level below (what the log layer stores after appends);
- :class:`TreeBuilder` streams leaf hashes (an audit of the whole log) and yields the
  nodes as they complete and the root at any size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from gateway.log.merkle import (
    HASH_SIZE,
    MerkleAccumulator,
    ProofError,
    node_hash,
    root_from_leaf_hashes,
)

__all__ = [
    "NODE_LEVELS",
    "TILE",
    "TILE_HEIGHT",
    "Node",
    "RangePlan",
    "TreeBuilder",
    "nodes_above",
    "subtrees",
]

TILE_HEIGHT: Final = 8
TILE: Final = 1 << TILE_HEIGHT
NODE_LEVELS: Final = (8, 16, 24, 32, 40, 48)
"""Levels whose complete subtree hashes are stored (48 covers 2**56 leaves)."""

Node = tuple[int, int, bytes]
"""``(level, index, hash)``."""

_NO_NODES: Final[tuple[Node, ...]] = ()


def subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` as complete aligned subtrees ``(level, index)``, largest first.

    The range must be one a proof asks for: ``start`` a multiple of a power of two at
    least ``end - start``. Then the RFC 9162 hash of the range is the right-to-left fold
    of these subtrees (each split point falls at a subtree border).
    """
    length = end - start
    if length <= 0:
        raise ValueError(f"empty range [{start}, {end})")
    span = 1 << (length - 1).bit_length()  # smallest power of two >= length
    if start % span:
        raise ValueError(
            f"range [{start}, {end}) does not start at a multiple of {span}, "
            "so it is not a range of the tree"
        )
    parts: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        parts.append((level, start >> level))
        start += 1 << level
    return parts


class RangePlan:
    """Which stored hashes give the hashes of some ranges, and those hashes once read.

    `counts` maps each level of :data:`NODE_LEVELS` to the number of nodes stored there
    (all of ``0 .. count - 1``); leaves (level 0) are taken as present. A subtree of
    level ``h`` is read from the highest stored level ``t <= h`` that covers it: at most
    ``2 ** (h - t)`` hashes, fewer than 256 whenever the nodes are up to date.
    """

    def __init__(self, counts: Mapping[int, int]) -> None:
        self._counts = dict(counts)

    def _source(self, level: int, index: int) -> tuple[int, int, int]:
        for t in reversed(NODE_LEVELS):
            if t <= level and self._counts.get(t, 0) >= (index + 1) << (level - t):
                return t, index << (level - t), (index + 1) << (level - t)
        return 0, index << level, (index + 1) << level

    def reads(self, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """The ``(level, start, end)`` runs of stored hashes the ranges need, merged."""
        runs: dict[int, list[tuple[int, int]]] = {}
        for start, end in ranges:
            for level, index in subtrees(start, end):
                t, lo, hi = self._source(level, index)
                runs.setdefault(t, []).append((lo, hi))
        merged: list[tuple[int, int, int]] = []
        for t, spans in sorted(runs.items()):
            spans.sort()
            lo, hi = spans[0]
            for a, b in spans[1:]:
                if a <= hi:
                    hi = max(hi, b)
                else:
                    merged.append((t, lo, hi))
                    lo, hi = a, b
            merged.append((t, lo, hi))
        return merged

    def hash_range(self, start: int, end: int, found: Mapping[tuple[int, int], bytes]) -> bytes:
        """MTH of leaves ``[start, end)`` from the hashes read (keyed by level and index).

        Raises :class:`ProofError` when a hash it needs is missing (a row that should be
        there is not: the log is damaged, or the counts were wrong).
        """
        result: bytes | None = None
        for level, index in reversed(subtrees(start, end)):
            t, lo, hi = self._source(level, index)
            try:
                run = [found[(t, i)] for i in range(lo, hi)]
            except KeyError as exc:
                missing_level, missing_index = exc.args[0]
                what = "leaf" if missing_level == 0 else f"level-{missing_level} node"
                raise ProofError(f"{what} hash {missing_index} is missing from the store") from None
            subtree = run[0] if len(run) == 1 else root_from_leaf_hashes(run)
            result = subtree if result is None else node_hash(subtree, result)
        assert result is not None  # subtrees() of a non-empty range is never empty
        return result


def nodes_above(level: int, first: int, hashes: Sequence[bytes]) -> list[Node]:
    """Nodes of ``level + TILE_HEIGHT`` over complete runs of 256 hashes of `level`.

    `first` is the index (at `level`) of ``hashes[0]`` and must be a multiple of 256;
    a trailing incomplete run is ignored.
    """
    if first % TILE:
        raise ValueError(f"first index {first} is not a multiple of {TILE}")
    upper = level + TILE_HEIGHT
    return [
        (
            upper,
            (first + offset) >> TILE_HEIGHT,
            root_from_leaf_hashes(hashes[offset : offset + TILE]),
        )
        for offset in range(0, len(hashes) - TILE + 1, TILE)
    ]


class TreeBuilder:
    """The tree of a stream of leaf hashes: nodes as they complete, and the root at any size.

    One :class:`~gateway.log.merkle.MerkleAccumulator` per stored level holds the
    incomplete subtree of that level; the concatenation of their frontiers, highest level
    first, is the frontier of the whole tree (the bits of the size, 8 at a time). Costs
    about one SHA-256 per leaf, and ``O(log n)`` for a root.
    """

    def __init__(self) -> None:
        self._levels: list[MerkleAccumulator] = [MerkleAccumulator()]
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> Sequence[Node]:
        """Add one leaf hash; return the nodes of stored levels it completed (mostly none)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash has {len(leaf)} bytes, expected {HASH_SIZE}")
        self._levels[0].append(leaf)
        self._size += 1
        if self._levels[0].size < TILE:
            return _NO_NODES
        return self._carry()

    def extend(self, leaves: Sequence[bytes]) -> list[Node]:
        """Add several leaf hashes; whole aligned tiles are hashed in one go (faster)."""
        done: list[Node] = []
        position, count = 0, len(leaves)
        while position < count:
            if self._levels[0].size == 0 and count - position >= TILE:
                tile = leaves[position : position + TILE]
                for leaf in tile:
                    if len(leaf) != HASH_SIZE:
                        raise ValueError(f"leaf hash has {len(leaf)} bytes, expected {HASH_SIZE}")
                self._size += TILE
                done += self._push(0, root_from_leaf_hashes(tile))
                position += TILE
            else:
                done += self.append(leaves[position])
                position += 1
        return done

    def extend_tile(self, root: bytes) -> list[Node]:
        """Add 256 leaves given by their tile's root (hashed elsewhere: a parallel audit);
        the size must be a multiple of 256. Returns the nodes completed, the tile first."""
        if self._levels[0].size:
            raise ValueError(f"tree size {self._size} is not at a tile border")
        if len(root) != HASH_SIZE:
            raise ValueError(f"tile root has {len(root)} bytes, expected {HASH_SIZE}")
        self._size += TILE
        return self._push(0, root)

    def _carry(self) -> list[Node]:
        node = self._levels[0].root()
        self._levels[0] = MerkleAccumulator()
        return self._push(0, node)

    def _push(self, below: int, node: bytes) -> list[Node]:
        """`node` completes a tile of ``self._levels[below]``: record it one level up."""
        done: list[Node] = []
        k = below
        while True:
            level = TILE_HEIGHT * (k + 1)
            done.append((level, (self._size >> level) - 1, node))
            if k + 1 == len(self._levels):
                self._levels.append(MerkleAccumulator())
            upper = self._levels[k + 1]
            upper.append(node)
            if upper.size < TILE:
                return done
            node = upper.root()
            self._levels[k + 1] = MerkleAccumulator()
            k += 1

    def root(self) -> bytes:
        """MTH of every leaf appended so far."""
        frontier: list[bytes] = []
        for accumulator in reversed(self._levels):
            frontier.extend(accumulator.frontier)
        return MerkleAccumulator.from_frontier(self._size, frontier).root()
