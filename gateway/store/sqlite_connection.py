"""The SQLite store's connections: how they open, run a transaction and fail.

Three connections to one file (see :mod:`gateway.store.sqlite` for why three), and a
fourth opened when first needed:

- aiosqlite's, for most statements, on its own thread;
- :class:`Inline`, a plain sqlite3 connection for reads on the event loop's own thread:
  microseconds, no trip. It has no busy handler, which would block the loop: a
  statement meeting another process's lock is retried after an asyncio sleep;
- :class:`Writer`, a plain sqlite3 connection in a thread of its own for the log's
  appends, one trip per transaction (the group-commit batch), so the commit's fsync
  never blocks the loop while other requests have work to do;
- the background reader (:func:`open_background_reader`), aiosqlite's too, for reads that
  take long (a range of the log counted for the rollups): on the first connection, the
  statements of disclosures (an idempotency key's claim) queued behind one for 300 ms.

sqlite3's and the file system's exceptions are translated here, once
(:func:`failures`), into :class:`~gateway.store.records.StoreUnavailable`; a duplicate
id becomes ``conflict`` (:func:`unique`).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from gateway.errors import ConflictError, GatewayError
from gateway.store.records import StoreUnavailable

__all__ = [
    "InTransaction",
    "Inline",
    "Writer",
    "copy_database",
    "failures",
    "make_single_file",
    "open_background_reader",
    "open_connections",
    "unique",
    "vacuum_database",
]

_T = TypeVar("_T")

_UNIQUE_VIOLATIONS: Final = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}
)


def _describe(exc: BaseException) -> str:
    # The class and SQLite's error name only: messages may quote values.
    name = getattr(exc, "sqlite_errorname", None)
    return type(exc).__name__ + (f", {name}" if name else "")


@contextmanager
def failures(action: str) -> Iterator[None]:
    """Translate a database or file-system failure while doing `action` into StoreUnavailable."""
    try:
        yield
    except GatewayError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnavailable(
            f"could not {action} in the SQLite database ({_describe(exc)}); check that the "
            "file named by storage.url is in a writable directory with free space and not "
            "locked by another program"
        ) from exc


@contextmanager
def unique(what: str) -> Iterator[None]:
    """A duplicate primary or unique key while inside becomes a ConflictError."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode in _UNIQUE_VIOLATIONS:
            raise ConflictError(f"a {what} with this id already exists; use a new id") from None
        raise


async def _enter_wal_mode(conn: aiosqlite.Connection, busy_timeout: float) -> None:
    # Switching the journal mode needs a moment alone with the file, and SQLite answers
    # SQLITE_BUSY at once (no busy handler) while another process is opening it too.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


_RETRIED: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class Inline:
    """A plain sqlite3 connection for reads, behind the awaitable methods of aiosqlite's.

    Statements run at once on the calling (event loop) thread; see the module docstring.
    """

    def __init__(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self._conn = conn
        self._busy_timeout = busy_timeout

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def _retrying(self, statement: Callable[[], _T]) -> _T:
        deadline: float | None = None
        delay = 0.001
        while True:
            try:
                return statement()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _RETRIED:
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self._busy_timeout
                if now > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return await self._retrying(lambda: self._conn.execute(sql, parameters))

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        return await self._retrying(lambda: self._conn.execute(sql, parameters).fetchall())

    async def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


_Job = tuple[
    asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[sqlite3.Connection], Any], bool
]


class Writer:
    """A plain sqlite3 connection in a thread of its own, one write transaction per trip.

    A queue and a thread rather than an executor: a ThreadPoolExecutor's submit takes
    locks the worker thread also takes, and under load each trip then waited on the GIL.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # A daemon: a store never closed must not keep the process from exiting, and a
        # transaction cut short there is rolled back by SQLite.
        self._thread = threading.Thread(
            target=self._serve, name="gateway-sqlite-writer", daemon=True
        )
        self._thread.start()

    def run(
        self, work: Callable[[sqlite3.Connection], _T], *, durable: bool = True
    ) -> asyncio.Future[_T]:
        """`work` in one transaction, in the writer thread; its result as a future.

        Not `durable`: committed without an fsync (``synchronous = NORMAL``, which in WAL
        mode keeps the database consistent): for rows derived from durable ones, which
        the next durable commit's fsync makes durable too."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((loop, future, work, durable))
        return future

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, work, durable = job
            try:
                if durable:
                    result = self._transaction(work)
                else:
                    self.conn.execute("PRAGMA synchronous = NORMAL")
                    try:
                        result = self._transaction(work)
                    finally:
                        self.conn.execute("PRAGMA synchronous = FULL")
            except BaseException as exc:  # handed to the waiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(self.conn)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.rollback()
            raise
        return result

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self.conn.close()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _connect(path: Path | str, timeout: float, setup_timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=timeout, check_same_thread=False)
    # The first statement reads the WAL index; while another process recovers the WAL it
    # answers SQLITE_BUSY_RECOVERY at once, busy handler or not: try again for a while.
    deadline = time.monotonic() + setup_timeout
    try:
        while True:
            try:
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA secure_delete = ON")
                return conn
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _RETRIED or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)  # only while the store opens, before it serves anything
    except BaseException:
        conn.close()
        raise


class InTransaction:
    """Statements of one transaction already begun on an aiosqlite connection
    (a :class:`~gateway.store.sql_store.Transaction`)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def run_many(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, params)


async def open_connections(
    path: Path | str, busy_timeout: float
) -> tuple[aiosqlite.Connection, Inline | None, Writer | None]:
    """aiosqlite's connection to `path` in WAL mode, with the inline reader and the
    writer beside it (none for ``":memory:"``: another connection would see another
    database)."""
    with failures("open the database file"):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun and ended explicitly.
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        inline: sqlite3.Connection | None = None
        writer: sqlite3.Connection | None = None
        try:
            await _enter_wal_mode(conn, busy_timeout)
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
            # Freed pages are zeroed: a value replaced by its sealed form (or erased)
            # leaves no clear copy in the file.
            await conn.execute("PRAGMA secure_delete = ON")
            if path != ":memory:":
                # No busy handler on the loop's thread; the writer's thread may wait.
                inline = _connect(path, timeout=0, setup_timeout=busy_timeout)
                writer = _connect(path, timeout=busy_timeout, setup_timeout=busy_timeout)
        except BaseException:
            for opened in (inline, writer):
                if opened is not None:
                    opened.close()
            await conn.close()
            raise
    if inline is None or writer is None:
        return conn, None, None
    return conn, Inline(inline, busy_timeout), Writer(writer)


async def open_background_reader(path: Path | str, busy_timeout: float) -> aiosqlite.Connection:
    """A read-only aiosqlite connection to `path` (a file already in WAL mode), on a
    thread of its own."""
    with failures("open the database file"):
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        try:
            await conn.execute("PRAGMA query_only = ON")
        except BaseException:
            await conn.close()
            raise
    return conn


def copy_database(source: Path, target: Path, *, busy_timeout: float = 30.0) -> None:
    """Copy the database at `source` over the one at `target` (created if missing), as one
    consistent snapshot, with SQLite's online backup API (blocking: run it in a thread).

    A plain file copy of a database in WAL mode is not a backup: the newest commits may sit
    in the ``-wal`` file, and a copy taken during a commit mixes two states. The backup API
    reads one snapshot under a read transaction (writers of other connections carry on;
    WAL lets them) and writes it under the target's write lock, through the target's own
    journal, so a reader of the target sees the old database or the new one, never half.
    A new target takes the source's journal mode (see :func:`make_single_file`).
    """
    with failures("copy the database"):
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(source, timeout=busy_timeout)
        try:
            dst = sqlite3.connect(target, timeout=busy_timeout)
            try:
                # pages=-1: the whole database in one step, so one snapshot (copied in
                # steps, a write by another connection in between restarts the copy).
                src.backup(dst, pages=-1)
            finally:
                dst.close()
        finally:
            src.close()


def make_single_file(path: Path) -> None:
    """Switch the (closed) database at `path` to rollback-journal mode: one self-contained
    file, nothing in a ``-wal`` beside it (a backup). The gateway puts a store back in WAL
    mode when it opens it."""
    with failures("close the database copy"):
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            conn.close()


def vacuum_database(path: Path, *, busy_timeout: float = 30.0) -> None:
    """Rewrite the database at `path` without its free pages (SQLite's VACUUM), then fold
    the WAL back into it and empty it, so the file shrinks now rather than at the next
    checkpoint (blocking: run it in a thread). Every other connection waits meanwhile:
    only for a store no gateway serves."""
    with failures("vacuum the database"):
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
