"""The durable commit a disclosure waits for: one intent row appended alone, as the store
commits it (issue #20). A figure, not a test.

Appends `COUNT` realistic intent rows (``big_log_entries``), one transaction each, to a
fresh store and prints the median and p90 wall time per commit and this process's CPU per
commit (SQLite's writer thread included). Where the store projects its search columns
after the commit (schema 14), it then times one projection pass over all of them.

Run it from a tree's root with that tree's interpreter, to compare two trees::

    python benchmarks/log_commit.py sqlite:////tmp/commit/log.db 2000
    python benchmarks/log_commit.py "postgresql://postgres@127.0.0.1:5432/db?search_path=s" 2000
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, "benchmarks")
from big_log_entries import Entries

from gateway.crypto.subject_keys import LogKeys
from gateway.store import open_store


async def main(url: str, count: int) -> None:
    entries = Entries(LogKeys.load(Path(tempfile.mkdtemp())), 1000)
    rows = [entries.rows(group)[0] for group in range(count)]
    store = await open_store(url, Path(tempfile.mkdtemp()))
    try:
        walls = []
        cpu = time.process_time()
        for row in rows:
            started = time.perf_counter()
            await store.append_log_entries([row])
            walls.append((time.perf_counter() - started) * 1e3)
        cpu_us = (time.process_time() - cpu) / count * 1e6
        projected = ""
        if hasattr(store, "project_log"):
            cpu, started = time.process_time(), time.perf_counter()
            await store.project_log()
            cpu_each = (time.process_time() - cpu) / count * 1e6
            wall_each = (time.perf_counter() - started) / count * 1e3
            projected = (
                f"; the projection after, one pass: CPU {cpu_each:.0f} us, "
                f"wall {wall_each:.3f} ms per entry"
            )
        p90 = statistics.quantiles(walls, n=10)[-1]
        print(
            f"{url.split(':')[0]}: commit median {statistics.median(walls):.3f} ms, "
            f"p90 {p90:.3f} ms, CPU {cpu_us:.0f} us per commit{projected}"
        )
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
