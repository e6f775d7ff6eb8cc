"""Finding a consent's recipients without the subject's id, at scale.

A figure, not a test: prints numbers, asserts nothing. Fills a scratch SQLite store (and
PostgreSQL when reachable, in a scratch schema dropped afterwards) with N consent-based
disclosures (intent + outcome) spread over 60 days and 2 000 consents, then times
`gateway.rights.withdrawal.received_under` for one consent obtained at the start of the
window, best of 3 (the first includes projecting the fill).

Usage: ``python benchmarks/withdrawal.py [--disclosures N]`` (default 50 000). Measured
on the shared 2-core box (README, "The legal cockpit at scale"): before schema 16 every
consent-based intent since the consent was read and checked against its bytes (100,000
disclosures: SQLite 0.99 s, PostgreSQL 4.1 s); by the consent's index 2-3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
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
from gateway.log.entries import row_of  # noqa: E402
from gateway.rights.withdrawal import received_under  # noqa: E402
from gateway.store import Store, open_store  # noqa: E402
from gateway.store.records import LogRow  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SPAN = timedelta(days=60)
PARTNERS = [f"partner-{n}" for n in range(40)]
CONSENTS = [f"c-{n}" for n in range(2000)]
BATCH = 5000


def rows(disclosures: int) -> list[LogRow]:
    rnd = random.Random(19)
    made: list[LogRow] = []
    for n in range(disclosures):
        at = NOW - SPAN * (1 - n / disclosures)
        common = {
            "v": 1,
            "time": timestamp(at),
            "disclosure_id": f"d-{n}",
            "partner": rnd.choice(PARTNERS),
            "purpose": "service_provision",
            "legal_basis": "consent",
            "subject_ref": f"ref-{rnd.randrange(20000)}",
        }
        made.append(row_of({**common, "kind": "intent", "consent_id": rnd.choice(CONSENTS)}))
        made.append(row_of({**common, "kind": "outcome", "outcome": "sent"}))
    return made


async def fill(store: Store, made: list[LogRow]) -> None:
    for start in range(0, len(made), BATCH):
        await store.append_log_entries(made[start : start + BATCH])


async def measure(name: str, store: Store, disclosures: int) -> None:
    await store.migrate()
    await fill(store, rows(disclosures))
    best = float("inf")
    found = {}
    for _ in range(3):
        started = time.perf_counter()
        found = await received_under(store, CONSENTS[7], NOW - SPAN - timedelta(days=1))
        best = min(best, time.perf_counter() - started)
    count = sum(len(r.disclosure_ids) for r in found.values())
    print(
        f"{name}: {disclosures} consent-based disclosures, recipients of one consent "
        f"({len(found)} partners, {count} disclosures) found in {best * 1000:.0f} ms"
    )


async def main(disclosures: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = await open_store(f"sqlite:///{Path(folder) / 'bench.db'}", Path(folder))
        try:
            await measure("SQLite", store, disclosures)
        finally:
            await store.close()
    scratch = await scratch_postgres()
    if scratch is None:
        return
    url, drop = scratch
    store = await open_store(url, Path("."))
    try:
        await measure("PostgreSQL", store, disclosures)
    finally:
        await store.close()
        await drop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disclosures", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().disclosures))
