"""`gateway db vacuum`: the space the store no longer uses, given back (issue #20).

SQLite's upgrade to schema 14 rebuilds ``log_entries`` without the search columns (a new
table, the rows copied, the old one dropped): the old table's pages stay in the file as
free pages, so the file about doubles and stays so. SQLite's VACUUM rewrites the file
without them. It holds the database for as long as it takes (minutes at millions of
entries: every disclosure would wait), so it runs only on a store no gateway serves,
refused like `gateway db restore` while the config folder's pid file names a live gateway
or an instance heartbeats on the store.

PostgreSQL: VACUUM (ANALYZE) of the gateway's tables, beside the gateways serving (see
``gateway.store.postgres.vacuum_tables``). It makes dead rows' space reusable and
refreshes the planner's statistics; the files shrink only by their empty last pages. The
columns schema 14 drops on PostgreSQL keep their bytes in the old rows until those are
rewritten (VACUUM FULL, under a lock every read and write waits for: not done here).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.config.model import Config
from gateway.ops.backup import live_instances, running_gateway
from gateway.ops.reload import pid_file_of
from gateway.store import SQLITE_PREFIX, open_store, sqlite_path

__all__ = ["VacuumError", "VacuumRefused", "Vacuumed", "sqlite_bytes", "vacuum_store"]


class VacuumError(Exception):
    """There is nothing to vacuum where storage.url points (a usage problem: exit 2)."""


class VacuumRefused(Exception):
    """A gateway serves the SQLite store: VACUUM would stop its disclosures (exit 1)."""


@dataclass(frozen=True)
class Vacuumed:
    """What a vacuum went over (the database file, or the schema's tables), and the bytes
    it took before and after."""

    backend: str  # "sqlite" or "postgresql"
    target: str
    bytes_before: int
    bytes_after: int


def sqlite_bytes(path: Path) -> int:
    """The bytes of the database at `path`: its file and its write-ahead log."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


async def vacuum_store(config: Config, now: datetime) -> Vacuumed:
    """Vacuum the configured store (see the module docstring). VacuumRefused while a
    gateway serves a SQLite store; VacuumError when storage.url names no database file."""
    if not config.storage_url.startswith(SQLITE_PREFIX):
        from gateway.store.postgres import vacuum_tables

        tables, before, after = await vacuum_tables(config.storage_url)
        return Vacuumed("postgresql", f"{len(tables)} tables", before, after)
    path = sqlite_path(config.storage_url, config.root)
    if not isinstance(path, Path):
        raise VacuumError("storage.url names an in-memory database: there is no file to vacuum")
    if not path.is_file():
        raise VacuumError(f"there is no database file at {path}: nothing to vacuum")
    pid = running_gateway(config)
    if pid is not None:
        raise VacuumRefused(
            f"a gateway is running (pid {pid}, {pid_file_of(config)}): SQLite's VACUUM "
            "holds the database until it is done, and every disclosure would wait; stop "
            "every instance on this store, then vacuum"
        )
    # Opening the store applies a missing migration, as `gateway db upgrade` does: the
    # upgrade that leaves the free pages, then the vacuum that gives them back.
    store = await open_store(config.storage_url, config.root)
    try:
        alive = live_instances(await store.list_instances(), now, config.log.instance_timeout_s)
    finally:
        await store.close()
    if alive:
        first = alive[0]
        raise VacuumRefused(
            f"{len(alive)} gateway instance(s) still heartbeat on this store (instance "
            f"{first.id} on {first.host}, pid {first.pid}): stop every instance, wait "
            f"{config.log.instance_timeout_s:g} s, then vacuum"
        )
    from gateway.store.sqlite_connection import vacuum_database

    before = sqlite_bytes(path)
    await asyncio.to_thread(vacuum_database, path)
    return Vacuumed("sqlite", str(path), before, sqlite_bytes(path))
