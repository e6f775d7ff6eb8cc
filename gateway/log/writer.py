"""Group commit for the disclosure log.

Every disclosure waits for its intent to be durable before a byte leaves, so
the log's commit is on the hot path. Appends that arrive while a commit is in
flight are gathered and committed together in the next transaction: one
fsync (or PostgreSQL commit) serves many requests, and a lone request waits
for nothing but its own commit. Entries nobody waits for (outcomes, refusals)
are queued: they join the next awaited commit, or commit after a short linger.

A commit writes each entry's bytes and leaf hash only; the search columns are projected
from them after it (``store.project_log``, gateway.store.projection), in a task of its own,
so a disclosure never waits for it. A pass starts `project_delay_s` after the first commit
that needs one, and covers every commit since; commits during a pass start the next one a
delay later, not at its end: a pass costs reads and a write of its own, so one per batch
(two per disclosure when requests come one at a time) doubled the gateway's CPU per
disclosure at one connection. Readers lose nothing by the delay: every read of the
columns projects what is missing first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gateway.log.entries import row_of
from gateway.store.records import LogRow

__all__ = ["LogStore", "LogWriter"]

log = logging.getLogger(__name__)


class LogStore(Protocol):
    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]: ...
    async def project_log(self) -> int: ...


class LogWriter:
    """Appends entries in shared transactions; each caller learns its entry's index."""

    def __init__(
        self,
        store: LogStore,
        *,
        max_batch: int = 512,
        linger_s: float = 0.01,
        project_delay_s: float = 0.1,
        on_commit: Callable[[Sequence[int]], None] | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._lingering: asyncio.TimerHandle | None = None
        self._on_commit = on_commit
        self._pending: list[tuple[LogRow, asyncio.Future[int]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.batches = 0  # for metrics: commits made
        self.appended = 0
        self._committing = 0  # entries of the batch whose commit is under way
        self._project_delay_s = project_delay_s
        self._project_timer: asyncio.TimerHandle | None = None
        self._projecting: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Entries appended and not yet committed (or failed): the commit queue a new
        disclosure would join (gateway.disclosure.limits sheds load beyond a bound)."""
        return len(self._pending) + self._committing

    async def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry; return its index once it is durable. Raises the store's error."""
        future = self._queue(row_of(entry))
        self._start_flush()
        return await future

    def append_later(self, entry: Mapping[str, Any]) -> asyncio.Future[int]:
        """Queue one entry for the next commit and return at once. The future gives its
        index once durable, or the store's error; `settle()` waits for it too.

        Nobody waits on a queued entry, so it rides with the next awaited append, or
        commits on its own after `linger_s`: one commit instead of two per disclosure
        when requests come one at a time."""
        future = self._queue(row_of(entry))
        if self._lingering is None and not self._flush_running():
            self._lingering = asyncio.get_running_loop().call_later(
                self._linger_s, self._start_flush
            )
        return future

    def _queue(self, row: LogRow) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        return future

    def _flush_running(self) -> bool:
        return self._flushing is not None and not self._flushing.done()

    def _start_flush(self) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        if self._pending and not self._flush_running():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._committing = len(batch)
            try:
                indexes = await self._store.append_log_entries([row for row, _ in batch])
            except Exception as exc:  # each waiter gets the store's own error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._committing = 0
            self.batches += 1
            self.appended += len(batch)
            self._project_soon()
            if self._on_commit is not None:
                self._on_commit(indexes)
            for (_, future), index in zip(batch, indexes, strict=True):
                if not future.done():
                    future.set_result(index)

    def _project_soon(self) -> None:
        if self._project_timer is None:
            self._project_timer = asyncio.get_running_loop().call_later(
                self._project_delay_s, self._start_project
            )

    def _start_project(self) -> None:
        if self._project_timer is not None:
            self._project_timer.cancel()
            self._project_timer = None
        if self._projecting is None or self._projecting.done():
            self._projecting = asyncio.create_task(self._project())
        else:  # a pass is under way: the next one a delay after, not back to back
            self._project_soon()

    async def _project(self) -> None:
        try:
            await self._store.project_log()
        except Exception as exc:  # the next commit's pass, or any read, projects them
            log.warning(
                "projecting the log's search columns failed (%s); the next pass or "
                "read projects them",
                type(exc).__name__,
            )

    async def settle(self) -> None:
        """Wait until every pending append has been committed or failed, and the
        projection pass its commits started has ended."""
        self._start_flush()
        while (flushing := self._flushing) is not None and not flushing.done():
            await asyncio.shield(flushing)
        while True:
            if (projecting := self._projecting) is not None and not projecting.done():
                await asyncio.shield(projecting)
            elif self._project_timer is not None:  # not worth waiting the delay for
                self._start_project()
            else:
                return
