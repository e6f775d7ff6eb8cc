"""The ten-million-entry store (issue #20): fill one fast, then measure it.

A figure, not a test: prints numbers, asserts nothing (``make bigbench``; not part of
``make test`` nor ``make bench``: about 10–20 GB a store at 10,000,000 entries).

Fill: realistic entries (``big_log_entries``: disclosures, refusals, acts; subjects from
a pool, partners and purposes from the sandbox partner files; real HMACs, leaf hashes),
made in a process pool and appended in bulk transactions without HTTP, their search
columns projected after each (schema 14), the stored subtree hashes kept up to date and a
checkpoint signed every ``--checkpoint-every`` entries.
Resumable: run it again and it continues from the store's size, or grows a store of
1,000,000 to 10,000,000 (the entries are a function of their position; the log key is
kept beside the store).

Then: ``gateway log verify``'s audit (``--jobs`` processes), an inclusion proof, a
subject report, a search, and the bytes on disk per disclosure (indexes included: the
SQLite file with its WAL, or ``pg_total_relation_size`` of every table).

Usage::

    python benchmarks/big_log.py --entries 10000000 --store sqlite --path /big/log.db
    python benchmarks/big_log.py --entries 10000000 --store postgresql \\
        --dsn postgresql://postgres@127.0.0.1:5432/big
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from big_log_entries import Entries

from gateway.crypto.subject_keys import LogKeys
from gateway.log.audit import audit_store
from gateway.log.merkle import verify_inclusion
from gateway.log.search import Query, search
from gateway.log.service import LogService, LogSigner
from gateway.rights.subjects import subject_report
from gateway.store import Store, open_store
from gateway.store.records import LogRow

ORIGIN = "bench.example/disclosures"
BATCH_GROUPS = 5_000  # 10,000 entries per transaction


def _rows(keys_dir: str, subjects: int, start: int, end: int) -> list[LogRow]:
    """Groups [start, end) as rows (in a pool process)."""
    entries = Entries(LogKeys.load(Path(keys_dir)), subjects)
    return [row for group in range(start, end) for row in entries.rows(group)]


def _signer(keys_dir: Path) -> LogSigner:
    """The bench log's key, kept beside the store so that a fill resumes under it."""
    path = keys_dir / "big-log.ed25519"
    if path.exists():
        key = Ed25519PrivateKey.from_private_bytes(path.read_bytes())
    else:
        key = Ed25519PrivateKey.generate()
        keys_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    return LogSigner(ORIGIN, key)


async def fill(
    store: Store, signer: LogSigner, keys_dir: Path, args: argparse.Namespace, jobs: int
) -> int:
    service = LogService(store, signer)
    size = await service.size()
    if size % 2:
        raise SystemExit(f"the store holds {size} entries, an odd number: not a big_log store")
    groups = args.entries // 2
    every = max(2, args.checkpoint_every)
    spans = [(g, min(g + BATCH_GROUPS, groups)) for g in range(size // 2, groups, BATCH_GROUPS)]
    if not spans:
        print(f"store already holds {size:,} entries: nothing to fill")
        return size
    started, written = time.perf_counter(), 0
    with ProcessPoolExecutor(jobs) as pool:
        futures = iter([pool.submit(_rows, str(keys_dir), args.subjects, a, b) for a, b in spans])
        ahead = [next(futures) for _ in range(min(2 * jobs, len(spans)))]
        while ahead:
            rows = await asyncio.wrap_future(ahead.pop(0))
            if (more := next(futures, None)) is not None:
                ahead.append(more)
            await service.append_rows(rows)
            await store.project_log()  # the search columns, as the gateway's writer does
            before, size = size, size + len(rows)
            written += len(rows)
            if size // every > before // every or size == args.entries:
                await service.sync_nodes()
                await service.checkpoint()
            elapsed = time.perf_counter() - started
            print(
                f"\r  filled {size:,}/{args.entries:,}: {written / elapsed:,.0f} entries/s",
                end="",
                file=sys.stderr,
            )
    # Cancelled futures of an interrupted run are dropped with the pool.
    print(file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"fill: {written:,} entries in {elapsed:.1f}s ({written / elapsed:,.0f} entries/s)")
    await service.stop(final_checkpoint=False)
    return size


async def timed(count: int, work: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """Median and p95 of `count` runs of `work(n)`, in milliseconds."""
    timings = []
    for n in range(count):
        t = time.perf_counter()
        await work(n)
        timings.append((time.perf_counter() - t) * 1e3)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1 if count > 1 else 0]


async def measure(
    store: Store,
    signer: LogSigner,
    keys: LogKeys,
    args: argparse.Namespace,
    where: tuple[str, Path],
) -> None:
    jobs = max(1, args.jobs)
    url, root = where
    service = LogService(store, signer)
    size = await service.size()
    entries = Entries(keys, args.subjects)
    started = time.perf_counter()
    opener = functools.partial(open_store, url, root)
    report = await audit_store(store, signer.verifier_key, ORIGIN, jobs=jobs, opener=opener)
    state = "ok" if report.ok else f"{len(report.problems)} problem(s): {report.problems[0]}"
    print(
        f"verify: {report.entries:,} entries, {report.checkpoints} checkpoints in "
        f"{time.perf_counter() - started:.1f}s with {jobs} process(es) ({state})"
    )
    rng = random.Random(11)
    root = await service.root(size)

    async def proof(_: int) -> None:
        index = rng.randrange(size)
        found = await service.inclusion_proof(index, size)
        verify_inclusion(index, size, found.leaf_hash, found.hashes, root)

    median, p95 = await timed(200, proof)
    print(f"inclusion proof at {size:,}: median {median:.2f} ms, p95 {p95:.2f} ms (verified)")

    groups = max(size // 2, 1)
    found: list[int] = []

    async def report_of(_: int) -> None:
        rows = await subject_report(store, keys, {}, entries.subject(rng.randrange(groups)))
        found.append(len(rows))

    median, p95 = await timed(50, report_of)
    print(
        f"subject report: median {median:.1f} ms, p95 {p95:.1f} ms "
        f"({statistics.mean(found):.1f} disclosures per subject)"
    )

    async def partner_hour(_: int) -> None:
        since = entries.at(rng.randrange(groups))
        query = Query(partner="lao-credit-bureau", since=since, until=since + timedelta(hours=1))
        page = 0
        async for _found in search(store, query):
            page += 1
            if page == 50:
                break

    median, p95 = await timed(50, partner_hour)
    print(f"search (a partner, one hour, first 50): median {median:.1f} ms, p95 {p95:.1f} ms")
    disclosures, used = await disk_figures(args)
    print(
        f"on disk: {used / 2**20:,.1f} MiB for {size:,} entries, {disclosures:,} disclosures: "
        f"{used / max(disclosures, 1):,.0f} bytes per disclosure (indexes included)"
    )


async def disk_figures(args: argparse.Namespace) -> tuple[int, int]:
    """(disclosures, bytes on disk with indexes): what a disclosure costs includes its
    outcome and its share of the refusals and acts around it."""
    intents = "SELECT count(*) FROM log_index WHERE kind = 'intent'"
    if args.store == "sqlite":
        path = Path(args.path)
        with contextlib.closing(sqlite3.connect(path)) as db:
            disclosures = db.execute(intents).fetchone()[0]
        files = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        return disclosures, sum(p.stat().st_size for p in files if p.exists())
    conn = await asyncpg.connect(args.dsn)
    try:
        used = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = current_schema()"
        )
        return int(await conn.fetchval(intents)), int(used)
    finally:
        await conn.close()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--path", default="big_log/log.db", help="the SQLite file")
    parser.add_argument("--dsn", help="the PostgreSQL database (its search_path schema is used)")
    parser.add_argument("--keys", help="log keys directory (default: beside the store)")
    parser.add_argument("--subjects", type=int, default=1_000_000, help="customer pool")
    parser.add_argument("--checkpoint-every", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-measure", action="store_true", help="fill only")
    args = parser.parse_args(argv)
    if args.entries % 2:
        parser.error("--entries must be even (entries come in pairs)")
    if args.store == "sqlite":
        path = Path(args.path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url, root = f"sqlite:///{path}", path.parent
        keys_dir = Path(args.keys) if args.keys else path.parent / f"{path.name}.keys"
    else:
        if not args.dsn:
            parser.error("--store postgresql needs --dsn")
        url, root = args.dsn, Path.cwd()
        keys_dir = Path(args.keys) if args.keys else Path("big_log/postgresql.keys")
    keys = LogKeys.load(keys_dir)
    signer = _signer(keys_dir)
    store = await open_store(url, root)
    try:
        await fill(store, signer, keys_dir, args, max(1, args.jobs))
        if not args.no_measure:
            await measure(store, signer, keys, args, (url, root))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
