"""Group commit for the disclosure log.

Every disclosure waits for its intent to be durable before a byte leaves, so
the log's commit is on the hot path. Appends that arrive while a commit is in
flight are gathered and committed together in the next transaction: one
fsync (or PostgreSQL commit) serves many requests, and a lone request waits
for nothing but its own commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gateway.log.entries import row_of
from gateway.store.base import LogRow

__all__ = ["LogStore", "LogWriter"]


class LogStore(Protocol):
    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]: ...


class LogWriter:
    """Appends entries in shared transactions; each caller learns its entry's index."""

    def __init__(
        self,
        store: LogStore,
        *,
        max_batch: int = 512,
        on_commit: Callable[[Sequence[int]], None] | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._pending: list[tuple[LogRow, asyncio.Future[int]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.batches = 0  # for metrics: commits made
        self.appended = 0

    async def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry; return its index once it is durable. Raises the store's error."""
        return await self.append_row(row_of(entry))

    async def append_row(self, row: LogRow) -> int:
        """Append a row made by ``entries.row_of``; return its index once durable."""
        return await self._enqueue_row(row)

    def enqueue(self, entry: Mapping[str, Any]) -> asyncio.Future[int]:
        """Queue one entry for the next commit and return at once. The future gives its
        index once durable, or the store's error; `drain()` waits for it too."""
        return self._enqueue_row(row_of(entry))

    def _enqueue_row(self, row: LogRow) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                indexes = await self._store.append_log_entries([row for row, _ in batch])
            except Exception as exc:  # each waiter gets the store's own error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.appended += len(batch)
            if self._on_commit is not None:
                self._on_commit(indexes)
            for (_, future), index in zip(batch, indexes, strict=True):
                if not future.done():
                    future.set_result(index)

    async def drain(self) -> None:
        """Wait until every pending append has been committed or failed."""
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)
