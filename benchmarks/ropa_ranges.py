"""`gateway ropa --verify` and `--rebuild`'s count on a big store, range by range (issue #20).

A figure, not a test: prints numbers, asserts nothing. On an existing store (one of
``benchmarks/big_log.py``: ``--path`` or ``--dsn`` as there), times the recount of the
per-day counts (`Store.check_rollup`, `RECOUNT_RANGE` entries a range: every rollup's
statement over the range) and, with ``--rebuild``, the count of every entry again
(`Store.rebuild_rollup`, `ROLLUP_BATCH` entries a transaction: what the first read after an
upgrade does); the total, and the slowest and median range or batch. No statement may come
near PostgreSQL's 30 s timeout, however long the log.

Usage::

    python benchmarks/ropa_ranges.py --path /big/log.db --rebuild
    python benchmarks/ropa_ranges.py --dsn postgresql://postgres@127.0.0.1:5432/big1m
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.store import open_store
from gateway.store.rollup_sql import Progress
from gateway.store.sql_store import RECOUNT_RANGE, ROLLUP_BATCH


async def timed(what: str, work: Callable[[Progress], Awaitable[object]]) -> None:
    steps: list[float] = []
    last = time.perf_counter()

    def told(_done: int, _total: int) -> None:
        nonlocal last
        now = time.perf_counter()
        steps.append(now - last)
        last = now

    started = time.perf_counter()
    result = await work(told)
    print(
        f"{what}: {time.perf_counter() - started:.1f} s, {len(steps)} steps, slowest "
        f"{max(steps, default=0):.2f} s, median {statistics.median(steps or [0]):.2f} s "
        f"({result})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", help="the SQLite file")
    parser.add_argument("--dsn", help="the PostgreSQL database")
    parser.add_argument("--rebuild", action="store_true", help="also count every entry again")
    args = parser.parse_args()
    if bool(args.path) == bool(args.dsn):
        parser.error("give one of --path or --dsn")
    url = f"sqlite:///{Path(args.path).resolve()}" if args.path else args.dsn
    store = await open_store(url, Path.cwd())
    try:
        await timed(f"verify, {RECOUNT_RANGE:,} entries a range", store.check_rollup)
        if args.rebuild:
            await timed(f"rebuild's count, {ROLLUP_BATCH:,} a batch", store.rebuild_rollup)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
