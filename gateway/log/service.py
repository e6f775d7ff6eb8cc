"""The disclosure log as one object: appends, the Merkle tree over the store, proofs, checkpoints.

:class:`LogService` owns the tree that ``gateway.log.merkle`` defines over the rows the
store keeps. It appends through the group-commit :class:`~gateway.log.writer.LogWriter`
(each row carries its leaf hash, computed here), keeps the stored subtree hashes of
``gateway.log.tree`` up to date (in the background after appends, and before any proof
or checkpoint), and answers from them: the root at any size, inclusion and consistency
proofs (a few hundred stored hashes read in one query, at any log size), and signed
checkpoints.

A checkpoint is never signed for a tree that is not an extension of the latest stored
one: the service reads the latest checkpoint, checks its signature, proves consistency
from it to the new tree with the stored hashes and verifies that proof, then stores the
new checkpoint only if the latest is still the one it checked against (compare-and-set
in the store). Several instances on one PostgreSQL database therefore build a single
chain: the loser of a race re-reads and checks against the winner's checkpoint.

Damage found on the way (a missing row, a leaf hash that is not there, a stored hash
that does not lead to the signed root) is a :class:`LogIntegrityError`: nothing is
signed, and ``gateway log verify`` names the entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import utc_now
from gateway.crypto.keyring import KeyPaths
from gateway.crypto.subject_keys import LogKeys, Period
from gateway.errors import (
    GatewayError,
    InternalServerError,
    InvalidRequestError,
    LogUnavailableError,
    NotFoundError,
)
from gateway.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    add_signature,
    key_label,
    open_checkpoint_by_any,
    sign_checkpoint,
    split_note,
    verifier_key,
)
from gateway.log.key_history import RetiredLogKey, read_log_key, retired_keys
from gateway.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    consistency_proof_from_ranges,
    inclusion_proof_from_ranges,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from gateway.log.tree import NODE_LEVELS, TILE, TILE_HEIGHT, RangePlan, nodes_above
from gateway.log.writer import LogWriter
from gateway.store.records import LogEntry, LogRecord, LogRow, StoredCheckpoint, TreeHash

__all__ = [
    "CheckpointWitnessing",
    "EntryCheck",
    "LogIntegrityError",
    "LogService",
    "LogSigner",
    "Proof",
    "TreeStore",
]

log = logging.getLogger("gateway.log")

SYNC_CHUNK: Final = 256 * TILE  # hashes read per query while storing nodes (2 MiB)
BACKFILL_CHUNK: Final = 10_000
CHECKPOINT_ATTEMPTS: Final = 10
KEY_DROP_S: Final = 60.0  # an idle checkpoint loop still wakes this often to drop old keys
_PLACEHOLDER: Final = bytes(HASH_SIZE)


class LogIntegrityError(InternalServerError):
    """The stored log does not hold together; nothing is signed until it is repaired."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}; the disclosure log is damaged: run `gateway log verify`")


class CheckpointWitnessing(Protocol):
    """What the log service asks of the witnessing beside it (``outbound.witness_runner``,
    a layer above: the log knows it only as this)."""

    def checkpoint_signed(self, checkpoint: StoredCheckpoint) -> None:
        """A new checkpoint was stored: submit it to the witnesses soon, without waiting."""

    async def witnessed_checkpoint(self) -> StoredCheckpoint | None:
        """The latest checkpoint whose cosigned note meets the witness policy's quorum."""


class TreeStore(Protocol):
    """What the log needs from the storage port (gateway.store.base.Store has it all)."""

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]: ...
    async def project_log(self) -> int: ...
    async def log_size(self) -> int: ...
    async def read_log_records(self, start: int, limit: int) -> list[LogRecord]: ...
    async def log_rows_without_leaf_hash(self, limit: int) -> list[LogEntry]: ...
    async def set_leaf_hashes(self, hashes: Sequence[tuple[int, bytes]]) -> None: ...
    async def read_tree_hashes(self, ranges: Sequence[tuple[int, int, int]]) -> list[TreeHash]: ...
    async def add_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None: ...
    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]: ...
    async def add_checkpoint_after(
        self, previous_seq: int | None, size: int, note: str, at: datetime
    ) -> bool: ...
    async def latest_checkpoint(self) -> StoredCheckpoint | None: ...
    async def checkpoints(self) -> list[StoredCheckpoint]: ...


class LogSigner:
    """The log's Ed25519 key and name (the checkpoint origin, CONTRACT §4.6), and the keys
    that signed the log before a rotation (gateway.log.key_history).

    With a ``successor`` it is the signer of a key switch (``gateway log rotate-key``):
    every note it signs carries the current key's and the successor's signature.
    """

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        *,
        retired: Sequence[RetiredLogKey] = (),
        successor: Ed25519PrivateKey | None = None,
    ) -> None:
        self.name = name
        self._private_key = private_key
        self.verifier_key = verifier_key(name, private_key.public_key())
        self.retired = tuple(retired)  # newest first
        self._successor = successor
        self.successor_key = (
            None if successor is None else verifier_key(name, successor.public_key())
        )

    @property
    def verifier_keys(self) -> list[str]:
        """Every key of this log, newest first: the successor during a switch, the current
        key, then the retired ones (GET /v1/log/key, ``gateway log verify``)."""
        keys = [self.verifier_key, *(r.vkey for r in self.retired)]
        return keys if self.successor_key is None else [self.successor_key, *keys]

    @classmethod
    def load(cls, keys_dir: Path, name: str) -> LogSigner:
        """The key in ``keys/log-signing.private.pem`` (``gateway keys generate`` makes it)
        and the retired ones in ``keys/log-signing.previous/``."""
        key = read_log_key(KeyPaths(keys_dir).log_signing)
        return cls(name, key, retired=retired_keys(keys_dir, name))

    def switching(self, successor: Ed25519PrivateKey) -> LogSigner:
        """This signer, cross-signing with ``successor`` (the switch checkpoint)."""
        return LogSigner(self.name, self._private_key, retired=self.retired, successor=successor)

    def sign(self, checkpoint: Checkpoint) -> str:
        note = sign_checkpoint(checkpoint, self.name, self._private_key)
        if self._successor is not None:
            note = add_signature(note, self.name, self._successor)
        return note

    def open(self, note: str) -> Checkpoint:
        """Verify a stored note with a key of this log and its origin; CheckpointError
        otherwise (``gateway log verify`` checks which key may sign where)."""
        return open_checkpoint_by_any(note, self.verifier_keys, expected_origin=self.name)[0]

    def open_to_extend(self, note: str, seq: int) -> Checkpoint:
        """The latest stored checkpoint (#``seq``), verified as one this signer may extend.

        It must carry the current key's signature: one signed only by a retired key came
        after its switch (a stolen old key must not extend the log), and one also signed by
        a key of this log that this instance does not hold means the key was rotated
        (LogUnavailableError: nothing is signed until it has the new key files)."""
        held = {key_label(k) for k in self.verifier_keys}
        _, lines = split_note(note)
        unknown = [
            f"{line.name}+{line.key_id.hex()}"
            for line in lines
            if line.name == self.name and f"{line.name}+{line.key_id.hex()}" not in held
        ]
        if unknown:
            # Not damage: the log is fine, this instance is behind (LogUnavailableError, so
            # the checkpoint loop logs it and tries again; a reload or restart ends it).
            raise LogUnavailableError(
                f"checkpoint #{seq} is signed by log key {unknown[0]}, which this instance does "
                "not hold: the log key was rotated (`gateway log rotate-key`); copy the keys "
                "directory to this instance and reload (SIGHUP) or restart it"
            )
        checkpoint, signers = open_checkpoint_by_any(
            note, self.verifier_keys, expected_origin=self.name
        )
        if self.verifier_key not in signers:
            raise CheckpointError(
                f"checkpoint #{seq} is signed only by retired log key(s) "
                f"{', '.join(key_label(k) for k in signers)}, not by the current key "
                f"{key_label(self.verifier_key)}: after a key switch only the new key extends "
                "the log (a retired key may have been stolen)"
            )
        return checkpoint


@dataclass(frozen=True)
class EntryCheck:
    """One entry checked against the latest signed checkpoint, as a reviewer sees it.

    ``verified``: its bytes hash to a leaf whose inclusion proof leads to the root of a
    checkpoint whose signature verifies; ``pending``: no checkpoint covers it yet;
    ``failed``: something does not verify (`detail` says what was expected and what was
    found): tampering or a bug, to escalate. The review page's ``verify_entry`` answers it.
    """

    index: int
    status: Literal["verified", "pending", "failed"]
    detail: str
    tree_size: int | None = None
    checkpoint_at: datetime | None = None


@dataclass(frozen=True)
class Proof:
    """An inclusion proof: the leaf, where it is, and the sibling hashes (RFC 9162 order)."""

    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]


class LogService:
    """The disclosure log over a store; see the module docstring."""

    def __init__(
        self,
        store: TreeStore,
        signer: LogSigner,
        *,
        keys: LogKeys | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_batch: int = 512,
    ) -> None:
        self._store = store
        self.signer = signer
        self._keys = keys
        self._clock = clock
        self.writer = LogWriter(store, max_batch=max_batch, on_commit=self._committed)
        self._counts: dict[int, int] = dict.fromkeys(NODE_LEVELS, 0)
        self._sync_lock = asyncio.Lock()
        self._checkpoint_lock = asyncio.Lock()
        self._sync_wanted = False
        self._sync_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._appended = asyncio.Event()  # set by every commit: the checkpoint loop wakes
        self.witnessing: CheckpointWitnessing | None = None
        """Set by the composition root when a witness policy names witnesses."""

    @property
    def origin(self) -> str:
        return self.signer.name

    # -- appending -------------------------------------------------------------------------

    async def prepare(self) -> int:
        """Fill in leaf hashes of rows stored before they were kept; return how many. Then
        project the entries a crash left unprojected (committed, the process gone before
        its projection pass), so that crash recovery, which runs next, reads them all."""
        await self._store.project_log()
        filled = 0
        while rows := await self._store.log_rows_without_leaf_hash(BACKFILL_CHUNK):
            await self._store.set_leaf_hashes([(i, leaf_hash(entry)) for i, entry in rows])
            filled += len(rows)
        if filled:
            log.warning(
                "computed the leaf hashes of %d log entries written before schema 2", filled
            )
        return filled

    async def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry (group commit); its index once it is durable."""
        return await self.writer.append(entry)

    def append_later(self, entry: Mapping[str, Any]) -> asyncio.Future[int]:
        """Queue one entry for the next group commit without waiting for it (see
        ``LogWriter.append_later``)."""
        return self.writer.append_later(entry)

    async def settle(self) -> None:
        """Commit every entry queued so far and wait for it (or its failure): then a read
        sees it."""
        await self.writer.settle()

    async def append_rows(self, rows: Sequence[LogRow]) -> list[int]:
        """Append many rows in one transaction (imports, benchmarks); their indexes."""
        indexes = await self._store.append_log_entries(rows)
        self._committed(indexes)
        return indexes

    async def size(self) -> int:
        return await self._store.log_size()

    async def record(self, index: int) -> LogRecord:
        """The entry at `index` with its leaf hash; GatewayError not_found if there is none."""
        rows = await self._store.read_log_records(index, 1) if index >= 0 else []
        if not rows or rows[0][0] != index:
            raise NotFoundError(f"no log entry with index {index}; indexes start at 0")
        return rows[0]

    def _committed(self, indexes: Sequence[int]) -> None:
        if indexes:
            self._appended.set()
        # A batch that completed a tile of 256 leaves: store its node soon, off the hot path.
        if indexes and (indexes[-1] + 1) // TILE > indexes[0] // TILE:
            self._sync_wanted = True
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.create_task(self._background_sync())

    async def _background_sync(self) -> None:
        while self._sync_wanted:
            self._sync_wanted = False
            try:
                await self.sync_nodes()
            except GatewayError as exc:  # the next proof or checkpoint tries again
                log.warning("log tree nodes not stored: %s", exc.detail)
                return

    # -- the tree --------------------------------------------------------------------------

    async def sync_nodes(self, size: int | None = None) -> None:
        """Store the hash of every complete subtree of a stored level up to `size` (now)."""
        async with self._sync_lock:
            if size is None:
                size = await self._store.log_size()
            counts = dict(
                zip(NODE_LEVELS, await self._store.tree_node_counts(NODE_LEVELS), strict=True)
            )
            for level in NODE_LEVELS:
                lower = level - TILE_HEIGHT
                have, want = counts[level], (size >> lower) >> TILE_HEIGHT
                start = have << TILE_HEIGHT
                while have < want:
                    end = min(want << TILE_HEIGHT, start + SYNC_CHUNK)
                    hashes = await self._run(lower, start, end)
                    nodes = nodes_above(lower, start, hashes)
                    await self._store.add_tree_nodes(nodes)
                    have += len(nodes)
                    start = end
                counts[level] = max(counts[level], have)
                if want == 0:
                    break  # no higher level can have a complete node either
            self._counts = counts

    async def _run(self, level: int, start: int, end: int) -> list[bytes]:
        """The stored hashes ``start .. end - 1`` of one level, all of them, in order."""
        rows = await self._store.read_tree_hashes([(level, start, end)])
        found = {index: value for _, index, value in rows}
        hashes: list[bytes] = []
        for index in range(start, end):
            value = found.get(index)
            if value is None:
                what = "entry" if level == 0 else f"level-{level} tree node"
                problem = "is missing" if index not in found else "has no leaf hash"
                raise LogIntegrityError(f"{what} {index} {problem}")
            hashes.append(value)
        return hashes

    async def _plan(self, tree_size: int) -> RangePlan:
        if self._counts[NODE_LEVELS[0]] < tree_size >> TILE_HEIGHT:
            await self.sync_nodes()
        return RangePlan(self._counts)

    async def _hashes(
        self, tree_size: int, ranges: Sequence[tuple[int, int]]
    ) -> tuple[RangePlan, dict[tuple[int, int], bytes]]:
        plan = await self._plan(tree_size)
        rows = await self._store.read_tree_hashes(plan.reads(ranges))
        return plan, {(level, index): h for level, index, h in rows if h is not None}

    async def _check_size(self, tree_size: int, what: str) -> None:
        size = await self._store.log_size()
        if tree_size > size:
            raise InvalidRequestError(
                f"{what} {tree_size} is larger than the log, which has {size} entries",
            )

    async def root(self, tree_size: int) -> bytes:
        """The Merkle tree hash of the first `tree_size` entries."""
        if tree_size == 0:
            return EMPTY_ROOT
        plan, found = await self._hashes(tree_size, [(0, tree_size)])
        try:
            return plan.hash_range(0, tree_size, found)
        except ProofError as exc:
            raise LogIntegrityError(str(exc)) from None

    async def inclusion_proof(self, index: int, tree_size: int) -> Proof:
        """Proof that entry `index` is in the tree of `tree_size` entries."""
        if not 0 <= index < tree_size:
            raise InvalidRequestError(
                f"index {index} is not in a tree of size {tree_size}: expected "
                "0 <= index < tree_size",
            )
        await self._check_size(tree_size, "tree_size")
        asked: list[tuple[int, int]] = [(index, index + 1)]
        inclusion_proof_from_ranges(index, tree_size, _recorder(asked))
        plan, found = await self._hashes(tree_size, asked)
        try:
            leaf = plan.hash_range(index, index + 1, found)
            hashes = inclusion_proof_from_ranges(
                index, tree_size, lambda a, b: plan.hash_range(a, b, found)
            )
        except ProofError as exc:
            raise LogIntegrityError(str(exc)) from None
        return Proof(index, tree_size, leaf, hashes)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Proof that the tree of `second` entries extends the tree of `first` entries."""
        if not 0 < first <= second:
            raise InvalidRequestError(
                f"no consistency proof from size {first} to {second}: expected "
                "0 < first <= second (every tree extends the empty one)",
            )
        await self._check_size(second, "second")
        asked: list[tuple[int, int]] = []
        consistency_proof_from_ranges(first, second, _recorder(asked))
        plan, found = await self._hashes(second, asked)
        try:
            return consistency_proof_from_ranges(
                first, second, lambda a, b: plan.hash_range(a, b, found)
            )
        except ProofError as exc:
            raise LogIntegrityError(str(exc)) from None

    async def check_entry(self, index: int) -> EntryCheck:
        """Entry `index` checked from its bytes up to the latest checkpoint's signature."""
        _, entry, _ = await self.record(index)
        latest = await self._store.latest_checkpoint()
        if latest is None or index >= latest.size:
            return EntryCheck(index, "pending", "no signed checkpoint covers this entry yet")
        try:
            checkpoint = self.signer.open(latest.note)
            proof = await self.inclusion_proof(index, checkpoint.size)
            verify_inclusion(
                index, checkpoint.size, leaf_hash(entry), proof.hashes, checkpoint.root
            )
        except (CheckpointError, ProofError, LogIntegrityError) as exc:
            detail = exc.detail if isinstance(exc, GatewayError) else str(exc)
            return EntryCheck(index, "failed", detail, latest.size, latest.at)
        return EntryCheck(
            index,
            "verified",
            f"the entry's leaf hash and its {len(proof.hashes)}-hash inclusion proof give the "
            f"root signed in the checkpoint of size {checkpoint.size}",
            checkpoint.size,
            latest.at,
        )

    # -- checkpoints -----------------------------------------------------------------------

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint stored last; its ``cosigned`` note has the cosignatures it got."""
        return await self._store.latest_checkpoint()

    async def witnessed_checkpoint(self) -> StoredCheckpoint | None:
        """The latest stored checkpoint whose cosigned note meets the witness policy's
        quorum, its ``note`` the note WITH the cosignature lines; with no witness policy
        (or quorum ``none``) simply the latest checkpoint. None when there is none yet."""
        if self.witnessing is None:
            return await self._store.latest_checkpoint()
        return await self.witnessing.witnessed_checkpoint()

    async def checkpoint(self, *, reissue: bool = False) -> StoredCheckpoint:
        """Sign and store a checkpoint of the whole log now (the latest if nothing is new,
        unless `reissue`: a key switch signs one even then, gateway.log.rotation).

        Raises LogIntegrityError rather than sign a tree that does not extend the latest
        stored checkpoint. Entries this instance has queued are committed first, so the
        checkpoint covers every disclosure already answered.
        """
        await self.writer.settle()
        async with self._checkpoint_lock:
            for _ in range(CHECKPOINT_ATTEMPTS):
                latest = await self._store.latest_checkpoint()
                size = await self._store.log_size()
                previous = self._open_latest(latest)
                if previous is not None and previous.size > size:
                    raise LogIntegrityError(
                        f"the log has {size} entries but checkpoint #{latest.seq if latest else 0}"
                        f" commits to {previous.size}: entries from index {size} were removed"
                    )
                root = await self.root(size)
                if previous is not None:
                    await self._check_extends(previous, size, root)
                    if previous.size == size and latest is not None and not reissue:
                        return latest
                at = self._clock()
                note = self.signer.sign(Checkpoint(self.origin, size, root))
                seq = None if latest is None else latest.seq
                if await self._store.add_checkpoint_after(seq, size, note, at):
                    stored = await self._store.latest_checkpoint() or StoredCheckpoint(
                        size, note, at
                    )
                    if self.witnessing is not None:
                        self.witnessing.checkpoint_signed(stored)
                    return stored
                # Another instance stored one in between: check against that one.
            raise LogUnavailableError(
                f"no checkpoint stored after {CHECKPOINT_ATTEMPTS} attempts: other instances "
                "kept storing theirs first; try again",
            )

    def _open_latest(self, latest: StoredCheckpoint | None) -> Checkpoint | None:
        if latest is None:
            return None
        try:
            opened = self.signer.open_to_extend(latest.note, latest.seq)
        except CheckpointError as exc:
            raise LogIntegrityError(
                f"the latest stored checkpoint (#{latest.seq}) does not verify with the log "
                f"key: {exc}"
            ) from None
        if opened.size != latest.size:
            raise LogIntegrityError(
                f"checkpoint #{latest.seq} is stored with size {latest.size} but signs "
                f"{opened.size}"
            )
        return opened

    async def _check_extends(self, previous: Checkpoint, size: int, root: bytes) -> None:
        if previous.size == 0:
            return  # every tree extends the empty tree
        proof = await self.consistency_proof(previous.size, size)
        try:
            verify_consistency(previous.size, size, proof, previous.root, root)
        except ProofError as exc:
            raise LogIntegrityError(
                f"the stored entries are not consistent with the latest checkpoint "
                f"(size {previous.size}): {exc}"
            ) from None

    async def run_checkpoints(self, interval_s: float) -> None:
        """Sign a checkpoint soon after entries are committed, at most once every
        `interval_s` seconds, and none while nothing is appended (until cancelled).

        The loop sleeps until this instance commits an entry, then signs; what commits
        during the signing and the pause after it rides the next checkpoint. Entries
        committed by another instance are signed by that instance's loop.
        """
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that
            # meets an append's wake-up, and the loop then ran on: a stop waited on it for
            # ever (seen once in the e2e suite).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEY_DROP_S):
                    await self._appended.wait()
            if self._appended.is_set():
                self._appended.clear()
                try:
                    await self.checkpoint()
                except GatewayError as exc:
                    log.error("no checkpoint signed: %s", exc.detail)
            if self._keys is not None:
                # Only this month's key is written with (and last month's, for requests
                # that straddle the turn of the month): older ones leave memory.
                self._keys.drop_before(Period.of(self._clock()).previous())
            await asyncio.sleep(interval_s)

    def start(self, interval_s: float) -> None:
        """Start the checkpoint loop (call from a running event loop)."""
        if self._loop_task is None:
            self._appended.set()  # entries a crashed run left unsigned are signed at once
            self._loop_task = asyncio.create_task(self.run_checkpoints(interval_s))

    async def stop(self, *, final_checkpoint: bool = True) -> None:
        """Stop the loop, finish pending appends and node storing, and sign the tail."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self.writer.settle()
        if self._sync_task is not None:
            with contextlib.suppress(GatewayError):
                await self._sync_task
        if final_checkpoint:
            try:
                await self.checkpoint()
            except GatewayError as exc:
                log.error("no final checkpoint signed: %s", exc.detail)


def _recorder(asked: list[tuple[int, int]]) -> Callable[[int, int], bytes]:
    """A hash_range that notes each range a proof needs (the proof's shape ignores values)."""

    def record(start: int, end: int) -> bytes:
        asked.append((start, end))
        return _PLACEHOLDER

    return record
