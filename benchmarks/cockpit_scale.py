"""The legal cockpit at scale: the record of processing, the overview and a breach scope
over a log of N entries (issue #19).

A figure, not a test: prints numbers, asserts nothing. Fills a scratch SQLite store (and
PostgreSQL when reachable, in a scratch schema dropped afterwards) straight through the
store port — no HTTP, no signing — with N entries spread over a year: disclosures (an
intent with its operation, purpose, basis, fields and, for consent, a consent id, then an
outcome) and refusals. Then times:

- `ropa first`: the record of processing over the default window (a year up to now,
  neither end at midnight), counting every entry into the per-day rollups first — what
  the first read after an upgrade (or `gateway ropa --rebuild`) pays, once;
- `ropa`: the same read again, as a person clicking it pays; `ropa +1000`: after 1,000
  more entries (the reader counts them first);
- `overview`: the overview page's three counts over its 30 days;
- `exposure`: one partner's breach scope over the year (totals, fields, categories)
  and its first page of 50 subject references;
- `verify counts`: `gateway ropa --verify`'s comparison of the rollups with the entries.

Reads are the best of 3. Usage: ``python benchmarks/cockpit_scale.py [--entries N ...]``
(default 100 000; e.g. ``--entries 100000 1000000``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

from benchmarks.log import scratch_postgres  # noqa: E402
from gateway.canonical import timestamp  # noqa: E402
from gateway.policy.facts import Consent  # noqa: E402
from gateway.store import Store, open_store  # noqa: E402
from gateway.store.records import LogRow  # noqa: E402

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
SPAN = timedelta(days=365)
PARTNERS = [f"partner-{n}" for n in range(40)]
OPERATIONS = ["credit_check", "payment", "kyc", "marketing", "claims"]
PURPOSES = ["service_provision", "fraud_prevention", "marketing"]
BASES = ["contract", "consent", "legal_obligation", "legitimate_interest"]
FIELDS = ["name", "phone", "email", "date_of_birth", "uuid", "address", "ip_address"]
OUTCOMES = ["sent"] * 90 + ["failed"] * 6 + ["unknown"] * 4
PROBLEMS = ["consent_required", "purpose_not_allowed", "partner_suspended", "agreement_expired"]
# As partner files declare them: each partner two or three operations, each for one
# purpose on one basis with its fields (about a hundred rows of the record in all).
DECLARED = {
    p: [
        (
            OPERATIONS[(n + k) % len(OPERATIONS)],
            PURPOSES[(n + k) % len(PURPOSES)],
            BASES[(n * 3 + k) % len(BASES)],
            FIELDS[k : k + 3 + n % 3],
        )
        for k in range(2 + n % 2)
    ]
    for n, p in enumerate(PARTNERS)
}
LEAF = b"\x00" * 32
BATCH = 5000
BEST_OF = 3


def consents_of(total: int) -> int:
    """How many consents the disclosures on basis consent are made under."""
    return max(1, total // 20)


async def add_consents(store: Store, total: int) -> None:
    """The consents behind the log's consent ids, one in ten withdrawn since."""
    obtained = NOW - SPAN - timedelta(days=1)
    made = [
        Consent(
            f"c-{n}",
            f"subject-{n}",
            frozenset(PURPOSES),
            frozenset(PARTNERS),
            frozenset(),
            frozenset(),
            "2024-09-30",
            obtained,
            withdrawn_at=NOW - timedelta(days=n % 300) if n % 10 == 0 else None,
            method="app",
            evidence="screen",
        )
        for n in range(consents_of(total))
    ]
    for start in range(0, len(made), 100):
        await asyncio.gather(*(store.add_consent(c) for c in made[start : start + 100]))


def rows(total: int, end: datetime, seed: int) -> Iterator[LogRow]:
    """`total` entries logged evenly up to `end`, a disclosure's intent and outcome together."""
    rnd = random.Random(seed)
    made = 0
    n = 0
    while made < total:
        n += 1
        at = end - SPAN * (1 - made / total)
        partner = rnd.choice(PARTNERS)
        did = f"d-{seed}-{n}"
        ref = f"ref-{rnd.randrange(200_000)}"
        if rnd.random() < 0.15:
            data = {"kind": "refused", "partner": partner, "problem": rnd.choice(PROBLEMS)}
            yield _row(data, did, ref, partner, at)
            made += 1
            continue
        operation, purpose, basis, declared = rnd.choice(DECLARED[partner])
        intent: dict[str, Any] = {
            "kind": "intent",
            "partner": partner,
            "operation": operation,
            "purpose": purpose,
            "legal_basis": basis,
            # Mostly every declared field; now and then one is left out.
            "fields": {f: "keep" for f in declared if rnd.random() < 0.95},
        }
        if basis == "consent":
            intent["consent_id"] = f"c-{rnd.randrange(consents_of(total))}"
        yield _row(intent, did, ref, partner, at)
        outcome = rnd.choice(OUTCOMES)
        data = {"kind": "outcome", "outcome": outcome, "maybe_received": outcome == "failed"}
        yield _row(data, did, ref, partner, at + timedelta(seconds=1))
        made += 2


def _row(data: dict[str, Any], did: str, ref: str, partner: str, at: datetime) -> LogRow:
    # The projector derives the search columns from these bytes alone (schema 14).
    members = {"disclosure_id": did, "subject_ref": ref, "partner": partner, **data}
    return LogRow(json.dumps({**members, "time": timestamp(at)}).encode(), LEAF)


async def fill(store: Store, total: int, end: datetime, seed: int) -> None:
    batch: list[LogRow] = []
    for row in rows(total, end, seed):
        batch.append(row)
        if len(batch) == BATCH:
            await store.append_log_entries(batch)
            batch = []
    if batch:
        await store.append_log_entries(batch)


async def timed(read: Callable[[], Awaitable[object]], times: int = BEST_OF) -> float:
    best = float("inf")
    for _ in range(times):
        t0 = time.perf_counter()
        await read()
        best = min(best, time.perf_counter() - t0)
    return best


async def measure(label: str, store: Store, total: int) -> None:
    await store.migrate()
    t0 = time.perf_counter()
    await add_consents(store, total)
    await fill(store, total, NOW, seed=19)
    print(f"{label:10} {total:>9} entries  filled in {time.perf_counter() - t0:6.1f} s")
    since, until = NOW - SPAN, NOW
    first = NOW.replace(hour=0, minute=0) - timedelta(days=29)
    partner = PARTNERS[0]

    async def overview() -> None:
        await store.decisions_by_day(first)
        await store.refusals_by_problem(first)
        await store.decisions_by_partner(first, 8)

    async def exposure() -> None:
        await store.partner_exposure(partner, since, until)
        await store.exposure_subject_refs(partner, since, until, "", 51)

    figures = {
        "ropa first": await timed(lambda: store.ropa_counts(since, until), times=1),
        "ropa": await timed(lambda: store.ropa_counts(since, until)),
    }
    await fill(store, 1000, NOW, seed=20)
    figures["ropa +1000"] = await timed(lambda: store.ropa_counts(since, until), times=1)
    figures["overview"] = await timed(overview)
    figures["exposure"] = await timed(exposure)
    figures["verify counts"] = await timed(store.check_rollup, times=1)
    for name, seconds in figures.items():
        print(f"{label:10} {total:>9} entries  {name:14} {seconds * 1000:9.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[100_000])
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    for total in args.entries:
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
            try:
                await measure("SQLite", store, total)
            finally:
                await store.close()
        scratch = None if args.skip_postgres else await scratch_postgres()
        if scratch is None:
            continue
        url, drop = scratch
        try:
            store = await open_store(url, Path("."))
            try:
                await measure("PostgreSQL", store, total)
            finally:
                await store.close()
        finally:
            await drop()


if __name__ == "__main__":
    asyncio.run(main())
