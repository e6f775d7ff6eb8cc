"""`gateway log verify` over every core: the rows checked in ranges by a process pool.

What costs in an audit is per row: parsing the entry to check its search columns, and
hashing its leaf. Both depend on the row alone, so each worker process opens the store
itself, reads one range of indexes (a multiple of 256 long, starting at a tile border)
and returns what it found there: the rows whose columns disagree, the rows whose bytes
do not hash to their stored leaf hash, where the indexes break off if they do, and the
range's leaf hashes folded into tile roots (one hash per 256 entries, with the leaves
kept only around a checkpoint size that falls inside a tile and at the end). The
:class:`~gateway.log.audit.Auditor` then takes the ranges in order and builds the tree
from the tile roots: the stored subtree hashes and every checkpoint are checked as in
the single-process audit, and the report says the same things about the same entries.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import multiprocessing
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Protocol

from gateway.log.columns import disagreeing_rows
from gateway.log.merkle import root_from_leaf_hashes
from gateway.log.tree import TILE
from gateway.store.records import StoredLogRow

__all__ = ["PARALLEL_FROM", "Opener", "RangeFindings", "RowReader", "check_range", "pool", "ranges"]

PARALLEL_FROM: Final = 100_000
"""Below this many entries the default is one process: starting a pool costs more."""
RANGES_PER_JOB: Final = 2  # a slow range leaves a core idle less; each opens the store
READ_CHUNK: Final = 20_000

_LEAF_PREFIX = b"\x00"


class RowReader(Protocol):
    async def read_log_rows(self, start: int, limit: int) -> list[StoredLogRow]: ...
    async def close(self) -> None: ...


Opener = Callable[[], Awaitable[RowReader]]
"""Opens the store in a worker process (picklable: a module-level function or a partial)."""


@dataclass
class RangeFindings:
    """What one range of rows says (see the module doc)."""

    start: int
    columns: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    edited: list[int] = field(default_factory=list)
    gap: tuple[int, int] | None = None  # (missing index, next stored index)
    pieces: list[bytes | list[bytes]] = field(default_factory=list)
    rows: int = 0


def ranges(count: int, jobs: int) -> list[tuple[int, int | None]]:
    """``[start, end)`` ranges over `count` entries, tile-aligned; the last is open-ended
    (rows past the counted size are read too, as the single-process audit reads them)."""
    span = -(-count // (jobs * RANGES_PER_JOB))
    span = max(TILE, -(-span // TILE) * TILE)
    starts = list(range(0, max(count, 1), span))
    return [*itertools.pairwise(starts), (starts[-1], None)]


def check_range(opener: Opener, start: int, end: int | None, cuts: Sequence[int]) -> RangeFindings:
    """The findings of rows ``[start, end)`` (a worker process's job); `cuts`: the sorted
    checkpoint sizes, where the leaves must be kept to compare roots."""
    return asyncio.run(_open_and_check(opener, start, end, cuts))


async def _open_and_check(
    opener: Opener, start: int, end: int | None, cuts: Sequence[int]
) -> RangeFindings:
    # Opened and closed per range, not once per process: the SQLite adapter's threads
    # would keep a worker from exiting, and opening costs little against a range.
    store = await opener()
    try:
        return await _check(store, start, end, cuts)
    finally:
        await store.close()


async def _check(
    store: RowReader, start: int, end: int | None, cuts: Sequence[int]
) -> RangeFindings:
    found = RangeFindings(start)
    leaves: list[bytes] = []  # of the incomplete tile(s) not yet folded
    expected = at = start
    while rows := await store.read_log_rows(at, READ_CHUNK):
        if found.gap is None:
            expected = _hash_contiguous(rows, expected, end, found, leaves)
            whole = len(leaves) // TILE * TILE
            found.pieces += _pieces(expected - len(leaves), leaves[:whole], cuts)
            del leaves[:whole]
        at = rows[-1][0] + 1
        if end is not None and at > end:
            rows = [row for row in rows if row[0] < end]
        found.rows += len(rows)
        found.columns += disagreeing_rows(rows)
        if end is not None and at >= end:
            break
    found.pieces += _pieces(expected - len(leaves), leaves, cuts)
    return found


def _hash_contiguous(
    rows: Sequence[StoredLogRow],
    expected: int,
    end: int | None,
    found: RangeFindings,
    leaves: list[bytes],
) -> int:
    """Hash the rows while their indexes follow on, up to `end`; note where they break off
    (also when the next stored row is past `end`: the gap starts in this range)."""
    sha = hashlib.sha256
    for index, data, stored, *_ in rows:
        if expected == end:
            break
        if index != expected:
            found.gap = (expected, index)
            break
        computed = sha(_LEAF_PREFIX + data).digest()
        if stored is not None and stored != computed:
            found.edited.append(index)
            computed = stored  # as the single-process audit: the tree over stored hashes
        leaves.append(computed)
        expected += 1
    return expected


def _pieces(start: int, leaves: list[bytes], cuts: Sequence[int]) -> list[bytes | list[bytes]]:
    """The leaves as tile roots, except tiles with a checkpoint size strictly inside and a
    last incomplete tile, kept as leaves."""
    pieces: list[bytes | list[bytes]] = []
    for offset in range(0, len(leaves), TILE):
        tile = leaves[offset : offset + TILE]
        low = start + offset
        inside = bisect.bisect_right(cuts, low) < len(cuts) and (
            cuts[bisect.bisect_right(cuts, low)] < low + TILE
        )
        if len(tile) < TILE or inside:
            pieces.append(tile)
        else:
            pieces.append(root_from_leaf_hashes(tile))
    return pieces


def pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes started fresh (``spawn``): the caller's event loop, its threads
    and its database connections are not copied into them."""
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
