"""The durable-commit floor: what one lone commit costs on this machine, with no gateway.

At one connection every disclosure waits for its intent's commit before a byte leaves,
so the added latency over a bare proxy cannot be below a lone commit's. This measures
it the way the stores commit: SQLite in WAL mode with ``synchronous=FULL`` (one row per
transaction, so one fdatasync each), and a one-row INSERT committed on one PostgreSQL
connection. `make bench` prints it beside the HTTP figures.

Usage: ``python benchmarks/commit_floor.py SECONDS DIRECTORY [POSTGRES_URL]``
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path
from statistics import quantiles

ROW = b"x" * 600  # about one intent entry


def sqlite_commits(directory: Path, seconds: float) -> list[float]:
    path = directory / "commit-floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL)")
        return _timed(seconds, lambda: _sqlite_commit(conn))
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sqlite_commit(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t (entry) VALUES (?)", (ROW,))
    conn.execute("COMMIT")


def _timed(seconds: float, commit: object) -> list[float]:
    assert callable(commit)
    took: list[float] = []
    deadline = time.perf_counter() + seconds
    while (started := time.perf_counter()) < deadline:
        commit()
        took.append(time.perf_counter() - started)
    return took


async def postgres_commits(url: str, seconds: float) -> list[float]:
    import asyncpg

    conn = await asyncpg.connect(url)
    table = f"commit_floor_{os.getpid()}"  # a real table: a temporary one writes no WAL
    try:
        await conn.execute(f"CREATE TABLE {table} (idx bigserial, entry bytea)")
        took: list[float] = []
        deadline = time.perf_counter() + seconds
        while (started := time.perf_counter()) < deadline:
            await conn.execute(f"INSERT INTO {table} (entry) VALUES ($1)", ROW)
            took.append(time.perf_counter() - started)
        return took
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


def summary(name: str, took: list[float]) -> str:
    if len(took) < 2:
        return f"{name}: too few commits to measure"
    cuts = quantiles(took, n=100)
    return (
        f"{name}: p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms "
        f"({len(took):,} commits)"
    )


def main() -> None:
    seconds, directory = float(sys.argv[1]), Path(sys.argv[2])
    print(
        summary(
            "sqlite (WAL, synchronous=FULL, one row per commit)",
            sqlite_commits(directory, seconds),
        )
    )
    if len(sys.argv) > 3:
        try:
            took = asyncio.run(postgres_commits(sys.argv[3], seconds))
        except (OSError, ImportError) as exc:
            print(f"postgresql: unreachable ({exc.__class__.__name__})")
        else:
            print(summary("postgresql (one row per commit, one connection)", took))


if __name__ == "__main__":
    main()
