"""The overview page's counts at scale: each GROUP BY query over a log of N entries.

A figure, not a test: prints numbers, asserts nothing. Fills a scratch SQLite store (and
PostgreSQL when reachable, in a scratch schema dropped afterwards) with N entries spread
over 60 days — disclosures (intent + outcome) and refusals — then times each query of
`LogSummaryStore` over the overview's 30-day window (best of 5).

Usage: ``python benchmarks/overview.py [--entries N]`` (default 100 000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

from benchmarks.log import scratch_postgres  # noqa: E402
from gateway.canonical import timestamp  # noqa: E402
from gateway.store import Store, open_store  # noqa: E402
from gateway.store.records import LogRow  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SPAN = timedelta(days=60)
PARTNERS = [f"partner-{n}" for n in range(40)]
OUTCOMES = ["sent"] * 90 + ["failed"] * 6 + ["unknown"] * 4
PROBLEMS = ["consent_required", "purpose_not_allowed", "partner_suspended", "agreement_expired"]
LEAF = b"\x00" * 32
BATCH = 5000


def rows(total: int) -> list[LogRow]:
    rnd = random.Random(19)
    made: list[LogRow] = []
    n = 0
    while len(made) < total:
        n += 1
        at = NOW - SPAN * (1 - len(made) / total)
        partner = rnd.choice(PARTNERS)
        did = f"d-{n}"
        if rnd.random() < 0.15:
            data = {"kind": "refused", "partner": partner, "problem": rnd.choice(PROBLEMS)}
            made.append(_row(data, did, partner, at))
            continue
        made.append(_row({"kind": "intent"}, did, partner, at))
        outcome = rnd.choice(OUTCOMES)
        made.append(_row({"kind": "outcome", "outcome": outcome}, did, partner, at))
    return made[:total]


def _row(data: dict[str, str], did: str, partner: str, at: datetime) -> LogRow:
    # The projector derives the search columns from these bytes alone (schema 14).
    members = {"disclosure_id": did, "subject_ref": "ref", "partner": partner, **data}
    return LogRow(json.dumps({**members, "time": timestamp(at)}).encode(), LEAF)


async def measure(label: str, store: Store, total: int) -> None:
    made = rows(total)
    for start in range(0, len(made), BATCH):
        await store.append_log_entries(made[start : start + BATCH])
    since = NOW - timedelta(days=30)
    queries = {
        "decisions_by_day": lambda: store.decisions_by_day(since),
        "refusals_by_problem": lambda: store.refusals_by_problem(since),
        "decisions_by_partner": lambda: store.decisions_by_partner(since, 8),
    }
    for name, query in queries.items():
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            await query()
            best = min(best, time.perf_counter() - t0)
        print(f"{label:10} {total:>9} entries  {name:22} {best * 1000:8.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
        try:
            await measure("SQLite", store, args.entries)
        finally:
            await store.close()
    scratch = await scratch_postgres()
    if scratch is None:
        return
    url, drop = scratch
    try:
        store = await open_store(url, Path("."))
        try:
            await measure("PostgreSQL", store, args.entries)
        finally:
            await store.close()
    finally:
        await drop()


if __name__ == "__main__":
    asyncio.run(main())
