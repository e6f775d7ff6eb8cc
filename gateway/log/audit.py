"""A full audit of the stored log: every leaf recomputed, every checkpoint checked.

Pure: :class:`Auditor` is fed the stored rows in index order, in chunks (``gateway log
verify`` streams them from the store), and reports what does not hold, each problem
located as precisely as the evidence allows:

- an index missing from the sequence (a deleted row, or the rest of a truncated log):
  that index;
- an entry whose bytes do not hash to its stored leaf hash (an edited entry): its index;
- a search column (subject reference, partner, kind, time, …) that is not the entry's
  own value (an edited index, which would hide a disclosure from searches and subject
  reports while every hash still matched): its index and the column
  (``gateway.log.columns``);
- an entry the projection of the search columns lacks below its high-water mark, or a
  projected row at or above the mark (schema 14, ``gateway.store.projection``): its index.
  The entries above the mark are not projected yet: the report gives the mark and that
  lag;
- a stored subtree hash that the entries below it do not produce (rows swapped or
  replaced together with their leaf hashes): the 256 (or 65,536…) entries it covers;
- a checkpoint whose signature does not verify with a log key (an altered checkpoint):
  the checkpoint;
- across a log key rotation (gateway.log.rotation; the keys are given newest first): a
  checkpoint signed only by an older key than one before it (a retired key extending the
  log: it may have been stolen), and a change of key not cross-signed by the key before
  (the switch checkpoint carries both): the checkpoint;
- a checkpoint whose root is not the root of the entries it commits to: the entries
  since the previous checkpoint that matched;
- a checkpoint that commits to more entries than the log holds (a truncated tail): the
  first missing index.

Checkpoints whose roots all match the recomputed tree are consistent with each other
and with the current tree (each one's tree is a prefix of the next), so no separate
consistency proofs are needed here; the signed roots are what pin the entries.

:func:`audit_store` drives an Auditor over a store (``gateway log verify``): CPU-bound,
about 15 s per million entries on one loaded core, so a server runs it in a process of
its own (:func:`audit_in_worker`); with ``jobs`` it spreads the rows over that many
processes (``gateway.log.audit_pool``).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from gateway.log import audit_pool
from gateway.log.audit_pool import Opener
from gateway.log.checkpoint import CheckpointError, key_label, open_checkpoint_by_any
from gateway.log.columns import ABOVE_MARK, COLUMNS, UNPROJECTED, disagreeing_rows
from gateway.log.merkle import EMPTY_ROOT
from gateway.log.tree import NODE_LEVELS, TreeBuilder
from gateway.store.records import LogRecord, StoredCheckpoint, StoredLogRow, TreeHash

__all__ = [
    "SERVING_READ_CHUNK",
    "AuditReport",
    "Auditor",
    "Problem",
    "audit_in_worker",
    "audit_store",
]

READ_CHUNK: Final = 20_000
# Rows per page of an audit run inside the serving process (the review site's periodic
# one): the event loop waits for one page's hashing at a time (tens of ms, not seconds),
# and two pages in memory stay small (`make soak` saw 20,000-row pages add ~40 MiB and
# stall requests for seconds).
SERVING_READ_CHUNK: Final = 1_000
NODE_READ_CHUNK: Final = 65_536

_LEAF_PREFIX = b"\x00"


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold; `start` is the first entry index it concerns."""

    message: str
    start: int | None = None  # first bad index (exact when `end` is None)
    end: int | None = None  # the bad entry is somewhere in [start, end)
    checkpoint: int | None = None  # seq of the checkpoint concerned

    @property
    def exact(self) -> bool:
        return self.start is not None and self.end is None


@dataclass
class AuditReport:
    entries: int = 0
    checkpoints: int = 0
    root: bytes = EMPTY_ROOT
    problems: list[Problem] = field(default_factory=list)
    # (seq, size) of each checkpoint where a newer log key took over, cross-signed.
    key_switches: list[tuple[int, int]] = field(default_factory=list)
    # The projection's high-water mark, read with the log's size (None: not read).
    projected: int | None = None

    @property
    def lag(self) -> int:
        """Entries not projected yet (above the mark)."""
        return 0 if self.projected is None else max(0, self.entries - self.projected)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """Where the damage starts, as precisely as known.

        The lowest exactly named entry, unless a problem known only as a range lies
        wholly before it; then the narrowest such range.
        """
        located = [p for p in self.problems if p.start is not None]
        if not located:
            return self.problems[0] if self.problems else None
        exact = min((p for p in located if p.exact), key=lambda p: p.start or 0, default=None)
        ranges = [p for p in located if not p.exact]
        if exact is not None:
            ranges = [p for p in ranges if (p.end or 0) <= (exact.start or 0)]
        if not ranges:
            return exact
        return min(ranges, key=lambda p: ((p.end or 0) - (p.start or 0), p.start or 0))


@dataclass
class _Pending:
    seq: int
    size: int
    root: bytes


class Auditor:
    """Feed it the rows (``feed``) and the stored subtree hashes; ``finish`` gives the report."""

    def __init__(
        self,
        checkpoints: Sequence[StoredCheckpoint],
        verifier_keys: str | Sequence[str],
        origin: str,
        stored_nodes: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        self.report = AuditReport()
        self._tree = TreeBuilder()
        self._next = 0
        self._broken = False  # after a gap, the recomputed tree means nothing any more
        self._nodes = dict(stored_nodes or {})
        self._last_matched = 0  # size of the last checkpoint whose root matched
        self._pending: list[_Pending] = []
        largest: tuple[int, int] | None = None  # (seq, size) of the largest one seen
        keys = [verifier_keys] if isinstance(verifier_keys, str) else list(verifier_keys)
        self._era: tuple[int, int] | None = None  # (rank of the signing key, seq it began)
        for cp in sorted(checkpoints, key=lambda c: c.seq):
            self.report.checkpoints += 1
            try:
                opened, signers = open_checkpoint_by_any(cp.note, keys, expected_origin=origin)
            except CheckpointError as exc:
                self._problem(
                    f"checkpoint #{cp.seq} (size {cp.size}) does not verify: {exc}; it was "
                    "altered or signed by another key",
                    checkpoint=cp.seq,
                )
                continue
            self._check_key(cp, sorted(keys.index(k) for k in signers), keys)
            if opened.size != cp.size:
                self._problem(
                    f"checkpoint #{cp.seq} is stored with size {cp.size} but signs size "
                    f"{opened.size}",
                    checkpoint=cp.seq,
                )
            if largest is not None and opened.size < largest[1]:
                self._problem(
                    f"checkpoint #{cp.seq} commits to {opened.size} entries, fewer than "
                    f"checkpoint #{largest[0]} before it ({largest[1]}): the log went back",
                    checkpoint=cp.seq,
                )
            if largest is None or opened.size >= largest[1]:
                largest = (cp.seq, opened.size)
            self._pending.append(_Pending(cp.seq, opened.size, opened.root))
        self._pending.sort(key=lambda p: (p.size, p.seq))
        self._check_roots()  # checkpoints of the empty tree

    def _check_key(self, cp: StoredCheckpoint, ranks: list[int], keys: list[str]) -> None:
        """The key rule across rotations; ``ranks``: the signers' places in ``keys`` (0 is
        the newest key). The newest signer never goes back to an older key, and moves to a
        newer one only on a checkpoint also signed by the key before (the switch)."""
        newest = ranks[0]
        if self._era is None:
            self._era = (newest, cp.seq)
            return
        era, since = self._era
        if newest > era:
            self._problem(
                f"checkpoint #{cp.seq} (size {cp.size}) is signed only by the retired log key "
                f"{key_label(keys[newest])}, but log key {key_label(keys[era])} signs since "
                f"checkpoint #{since}: after a key switch only the new key may extend the log "
                "(the retired key may have been stolen)",
                checkpoint=cp.seq,
            )
        elif newest < era:
            if era not in ranks:
                self._problem(
                    f"checkpoint #{cp.seq} (size {cp.size}) is the first signed by log key "
                    f"{key_label(keys[newest])} but not by {key_label(keys[era])}, which signed "
                    "before it: a key switch must be cross-signed by the old and the new key "
                    "(`gateway log rotate-key`)",
                    checkpoint=cp.seq,
                )
            else:
                self.report.key_switches.append((cp.seq, cp.size))
            self._era = (newest, cp.seq)

    def _problem(
        self,
        message: str,
        *,
        start: int | None = None,
        end: int | None = None,
        checkpoint: int | None = None,
    ) -> None:
        self.report.problems.append(Problem(message, start, end, checkpoint))

    @property
    def entries_seen(self) -> int:
        return self._next

    def feed_rows(self, rows: Sequence[StoredLogRow]) -> None:
        """Rows with their search columns: each column checked against the entry's bytes,
        then the entries fed to the tree (``feed``). A column is checked even past a gap:
        it is evidence about its own row only."""
        self.columns_disagree(disagreeing_rows(rows))
        self.feed(rows)

    def columns_disagree(self, found: Sequence[tuple[int, tuple[str, ...]]]) -> None:
        """Rows whose search columns are not their bytes' (``disagreeing_rows``)."""
        for index, wrong in found:
            if wrong == UNPROJECTED:
                self._problem(
                    f"entry {index}: it is below the projection's high-water mark but has "
                    "no projected row (the row was deleted: searches and subject reports "
                    "would not find this entry); run `gateway log reindex`",
                    start=index,
                )
            elif wrong == ABOVE_MARK:
                self._problem(
                    f"entry {index}: it has a projected row at or above the projection's "
                    "high-water mark, which the projector never writes (the row was "
                    "inserted by something else); run `gateway log reindex`",
                    start=index,
                )
            elif wrong == COLUMNS:
                self._problem(
                    f"entry {index}: its bytes are not a log entry, so its search columns "
                    "cannot be checked (the entry was edited or written by something else)",
                    start=index,
                )
            elif wrong:
                self._problem(
                    f"entry {index}: its search column{'s' if len(wrong) > 1 else ''} "
                    f"{', '.join(wrong)} do{'' if len(wrong) > 1 else 'es'} not match the "
                    "entry's bytes (the column was edited: searches and subject reports "
                    "would hide or misattribute this entry)",
                    start=index,
                )

    def feed(self, records: Sequence[LogRecord | StoredLogRow]) -> None:
        """Rows in index order, continuing where the previous chunk stopped (what follows
        a row's leaf hash, if anything, is not read here)."""
        if self._broken or not records:
            return
        expected = self._next
        if records[0][0] != expected or records[-1][0] != expected + len(records) - 1:
            gap = next(i for i, row in enumerate(records) if row[0] != expected + i)
            self.missing(expected + gap, records[gap][0])
            records = records[:gap]
        sha = hashlib.sha256
        leaves = [sha(_LEAF_PREFIX + row[1]).digest() for row in records]
        for position, (row, computed) in enumerate(zip(records, leaves, strict=True)):
            index, stored = row[0], row[2]
            if stored is not None and stored != computed:
                self.edited(index)
                # The tree is checked over the stored hash, so one edit is one problem and
                # the signed roots still test every other leaf.
                leaves[position] = stored
        self._grow(leaves)

    @property
    def broken(self) -> bool:
        """A gap was found: the tree after it means nothing any more."""
        return self._broken

    def cut_sizes(self) -> list[int]:
        """The tree sizes whose roots must be compared (checkpoints not reached yet)."""
        return [p.size for p in self._pending]

    def missing(self, index: int, next_stored: int | None) -> None:
        """Entry `index` is not stored (the next one stored is `next_stored`)."""
        self._problem(
            f"entry {index} is missing: the next stored entry is {next_stored} "
            "(a row was deleted or renumbered)",
            start=index,
        )
        self._broken = True

    def edited(self, index: int) -> None:
        """Entry `index`'s bytes do not hash to its stored leaf hash."""
        self._problem(
            f"entry {index}: its bytes do not hash to its stored leaf hash (the entry was edited)",
            start=index,
        )

    def feed_hashed(self, pieces: Sequence[bytes | Sequence[bytes]]) -> None:
        """Leaf hashes already computed (``gateway.log.audit_pool``), continuing the tree:
        a ``bytes`` piece is the root of the next 256 leaves (a tile, starting at a tile
        border, with no checkpoint size inside it), a sequence is leaf hashes."""
        for piece in pieces:
            if self._broken:
                return
            if isinstance(piece, bytes):
                self._compare_nodes(self._tree.extend_tile(piece))
                self._check_roots()
            else:
                self._grow(piece)
        self._next = self._tree.size

    def _grow(self, leaves: Sequence[bytes]) -> None:
        position = 0
        while position < len(leaves):
            # Stop at the next checkpoint size inside this chunk to compare roots there.
            target = next((p.size for p in self._pending if p.size > self._tree.size), None)
            take = len(leaves) - position
            if target is not None:
                take = min(take, target - self._tree.size)
            self._compare_nodes(self._tree.extend(leaves[position : position + take]))
            position += take
            self._check_roots()
        self._next = self._tree.size

    def _compare_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        for level, index, node in nodes:
            stored_node = self._nodes.pop((level, index), None)
            if stored_node is not None and stored_node != node:
                self._problem(
                    f"entries {index << level}..{((index + 1) << level) - 1} do not "
                    f"produce their stored level-{level} tree hash (entries replaced, "
                    "swapped or reordered together with their leaf hashes)",
                    start=index << level,
                    end=(index + 1) << level,
                )

    def _check_roots(self) -> None:
        size = self._tree.size
        due = [p for p in self._pending if p.size == size]
        if not due:
            return
        root = self._tree.root()
        for p in due:
            self._pending.remove(p)
            if p.root == root:
                self._last_matched = max(self._last_matched, size)
                continue
            self._problem(
                f"checkpoint #{p.seq} (size {p.size}) does not match the entries: an entry "
                f"in {self._last_matched}..{p.size - 1} was changed, removed, inserted or "
                "reordered",
                start=self._last_matched,
                end=p.size,
                checkpoint=p.seq,
            )

    def finish(self, counted: int) -> AuditReport:
        """The report; `counted` is the number of entries the store says it has."""
        seen = self._next
        if not self._broken and counted > seen:
            self._problem(
                f"entries {seen}..{counted - 1} are missing: the store counts {counted} "
                f"entries but holds {seen} (the tail was removed)",
                start=seen,
            )
        for p in self._pending:
            if self._broken:
                message = (
                    f"checkpoint #{p.seq} (size {p.size}) cannot be checked: the entries "
                    f"break off at index {seen}"
                )
            else:
                message = (
                    f"checkpoint #{p.seq} commits to {p.size} entries but the log ends at "
                    f"{seen}: entries from index {seen} were removed"
                )
            self._problem(message, start=seen, checkpoint=p.seq)
        self._pending.clear()
        self.report.entries = seen
        self.report.root = self._tree.root()
        return self.report


class AuditStore(Protocol):
    async def checkpoints(self) -> list[StoredCheckpoint]: ...
    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]: ...
    async def read_tree_hashes(self, ranges: Sequence[tuple[int, int, int]]) -> list[TreeHash]: ...
    async def log_size(self) -> int: ...
    async def read_log_rows(self, start: int, limit: int) -> list[StoredLogRow]: ...
    async def projected_size(self) -> int: ...


async def audit_store(
    store: AuditStore,
    verifier_keys: str | Sequence[str],
    origin: str,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = READ_CHUNK,
    jobs: int = 1,
    opener: Opener | None = None,
) -> AuditReport:
    """Recompute the whole stored log, every row's search columns and every checkpoint
    (`gateway log verify`). ``verifier_keys``: the log's keys, newest first (one key
    for a log never rotated).

    Streams the rows in index order (keyset pages of `chunk` rows, the next read
    overlapping the hashing of the current one); `progress` is told how many entries
    were checked. With ``jobs`` > 1 and an `opener` of the same store, `jobs` worker
    processes check the rows in ranges (``gateway.log.audit_pool``): the same report.
    """
    checkpoints = await store.checkpoints()
    counts = await store.tree_node_counts(NODE_LEVELS)
    reads = [
        (level, start, min(count, start + NODE_READ_CHUNK))
        for level, count in zip(NODE_LEVELS, counts, strict=True)
        for start in range(0, count, NODE_READ_CHUNK)
    ]
    nodes = {
        (level, index): value
        for level, index, value in await store.read_tree_hashes(reads)
        if value is not None
    }
    auditor = Auditor(checkpoints, verifier_keys, origin, nodes)
    counted = await store.log_size()
    auditor.report.projected = await store.projected_size()
    if jobs > 1 and opener is not None:
        await _audit_in_pool(auditor, counted, jobs, opener, progress)
        return auditor.finish(counted)
    pending = asyncio.ensure_future(store.read_log_rows(0, chunk))
    try:
        while rows := await pending:
            pending = asyncio.ensure_future(store.read_log_rows(rows[-1][0] + 1, chunk))
            auditor.feed_rows(rows)
            if progress is not None:
                progress(auditor.entries_seen)
    finally:
        pending.cancel()
    return auditor.finish(counted)


async def audit_in_worker(
    opener: Opener, verifier_keys: str | Sequence[str], origin: str
) -> AuditReport:
    """`audit_store` over the store `opener` opens, in a worker process started for it
    and ended after: a serving gateway's periodic audit of a long log. The worker does
    the hashing and holds the rows, the serving process receives the report only. In
    the serving process, in pages of 1,000 rows, the audit of 330,000 entries put the
    soak's p99 at 1.95 s; with the rows hashed by `audit_pool` and their leaves sent
    back (around every checkpoint: one a second), its RSS grew by 160 MiB at 780,000.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[AuditReport] = loop.create_future()

    def settle(report: AuditReport | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(cast(AuditReport, report))

    # multiprocessing's Pool rather than an executor: its terminate() ends a worker still
    # auditing when the gateway stops (an executor's shutdown waits for it).
    workers = multiprocessing.get_context("spawn").Pool(1)
    try:
        workers.apply_async(
            _audit_opened,
            (opener, verifier_keys, origin),
            callback=lambda report: loop.call_soon_threadsafe(settle, report, None),
            error_callback=lambda exc: loop.call_soon_threadsafe(settle, None, exc),
        )
        return await done
    finally:
        await asyncio.to_thread(workers.terminate)


def _audit_opened(opener: Opener, verifier_keys: str | Sequence[str], origin: str) -> AuditReport:
    """In the worker: open the store, audit it, close it."""

    async def audit() -> AuditReport:
        store = await opener()
        try:
            return await audit_store(cast(AuditStore, store), verifier_keys, origin)
        finally:
            await store.close()

    return asyncio.run(audit())


async def _audit_in_pool(
    auditor: Auditor,
    counted: int,
    jobs: int,
    opener: Opener,
    progress: Callable[[int], None] | None,
) -> None:
    """The rows checked by `jobs` processes, range by range; their findings given to the
    auditor in index order, as the single-process audit would find them."""
    cuts = sorted(set(auditor.cut_sizes()))
    checked = 0
    with audit_pool.pool(jobs) as workers:
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(workers, audit_pool.check_range, opener, start, end, cuts)
            for start, end in audit_pool.ranges(counted, jobs)
        ]
        try:
            for future in futures:
                found = await future
                auditor.columns_disagree(found.columns)
                if not auditor.broken:
                    for index in found.edited:
                        auditor.edited(index)
                    auditor.feed_hashed(found.pieces)
                    if found.gap is not None:
                        auditor.missing(*found.gap)
                checked += found.rows
                if progress is not None:
                    progress(checked)
        finally:
            for future in futures:
                future.cancel()
