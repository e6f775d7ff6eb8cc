"""Disclosure log figures (issue targets): appends/s, verify, proofs and search at 1,000,000.

A figure, not a test: prints numbers, asserts nothing.

- appends per second through the group-commit writer, 64 concurrent writers each waiting
  for its entry to be durable (SQLite in WAL with synchronous=FULL, and PostgreSQL);
- `gateway log verify` (the same audit code) over 1,000,000 entries (target < 30 s);
- an inclusion proof and a subject search at 1,000,000 entries (target < 50 ms each).

Usage: ``python benchmarks/log.py [--entries N] [--append-seconds S] [--postgres-big]``.
PostgreSQL is ``$GATEWAY_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
in a scratch schema dropped afterwards; it is skipped when unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.canonical import canonical_json, timestamp
from gateway.crypto.subject_keys import LogKeys
from gateway.log.audit import audit_store
from gateway.log.merkle import leaf_hash, verify_inclusion
from gateway.log.search import Query, search, subject_refs
from gateway.log.service import LogService, LogSigner
from gateway.store import Store, open_store
from gateway.store.records import LogRow

POSTGRES_URL = os.environ.get(
    "GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ORIGIN = "bench.example/disclosures"
WRITERS = 64
T0 = datetime(2026, 6, 1, tzinfo=UTC)
SUBJECTS = 100_000


def intent(i: int, at: datetime, subject_ref: str) -> dict[str, object]:
    """A realistic intent entry (~650 bytes), as the pipeline writes it."""
    return {
        "v": 1,
        "kind": "intent",
        "time": timestamp(at),
        "disclosure_id": f"d-{uuid.UUID(int=i)}",
        "caller": "sales-service",
        "partner": "lao-credit-bureau",
        "partner_category": "credit_bureau",
        "operation": "credit_check",
        "method": "POST",
        "purpose": "service_provision",
        "legal_basis": "consent",
        "consent_id": f"c-{uuid.UUID(int=i // 3)}",
        "legal_request_id": None,
        "policy_version": "2024-09-30",
        "subject_ref": subject_ref,
        "fields": {"name": "keep", "date_of_birth": "year", "phone": "keep", "uuid": "pseudonym"},
        "withheld": ["email"],
        "data_digest": leaf_hash(str(i).encode()).hex(),
        "needs_review": False,
        "retention_days": 365,
    }


def outcome(i: int, at: datetime) -> dict[str, object]:
    return {
        "v": 1,
        "kind": "outcome",
        "time": timestamp(at),
        "disclosure_id": f"d-{uuid.UUID(int=i)}",
        "partner": "lao-credit-bureau",
        "outcome": "sent",
        "partner_status": 201,
        "attempts": 1,
        "problem": None,
        "maybe_received": None,
    }


def row_of_bytes(data: bytes) -> LogRow:
    # What the commit writes; the store's projector derives the search columns from `data`.
    return LogRow(data, leaf_hash(data))


class Templates:
    """Canonical entry bytes made by substitution: a million entries in seconds, not minutes.

    The template is canonical_json of an entry with marker values, so the result is
    exactly what canonical_json would give for the real values (ids, times and
    references are plain ASCII that JSON does not escape).
    """

    MARKERS = ("@@ID@@", "@@TIME@@", "@@REF@@", "@@CONSENT@@", "@@DIGEST@@")

    def __init__(self) -> None:
        self.intent = self._split(intent(0, T0, "@@REF@@"))
        self.outcome = self._split(outcome(0, T0))

    def _split(self, entry: dict[str, object]) -> bytes:
        entry = {**entry, "disclosure_id": "@@ID@@", "time": "@@TIME@@"}
        if entry["kind"] == "intent":
            entry.update(consent_id="@@CONSENT@@", data_digest="@@DIGEST@@")
        text = canonical_json(entry)
        for n, marker in enumerate(self.MARKERS):
            text = text.replace(marker.encode(), b"%(" + str(n).encode() + b")s")
        return text

    def rows(self, i: int, at: datetime, ref: str) -> tuple[LogRow, LogRow]:
        did = f"d-{uuid.UUID(int=i)}"
        values = {
            b"0": did.encode(),
            b"1": timestamp(at).encode(),
            b"2": ref.encode(),
            b"3": f"c-{uuid.UUID(int=i // 3)}".encode(),
            b"4": leaf_hash(str(i).encode()).hex().encode(),
        }
        return (
            row_of_bytes(self.intent % values),
            row_of_bytes(self.outcome % values),
        )


async def scratch_postgres() -> tuple[str, Callable[[], Awaitable[None]]] | None:
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}", file=sys.stderr)
        return None
    schema = f"gw_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"

    async def drop() -> None:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()

    return f"{POSTGRES_URL}{separator}search_path={schema}", drop


async def appends_per_second(store: Store, signer: LogSigner, seconds: float = 5.0) -> str:
    service = LogService(store, signer)
    done = 0
    stop = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop:
            at = datetime.now(UTC)
            await service.append(intent(i, at, f"ref-{i}"))
            done += 1
            i += WRITERS

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    elapsed = time.perf_counter() - started
    await service.stop(final_checkpoint=False)
    batches = service.writer.batches
    return (
        f"{done / elapsed:,.0f} appends/s ({done:,} in {elapsed:.1f}s, {batches:,} commits, "
        f"{done / max(batches, 1):.1f} entries per commit)"
    )


async def fill(service: LogService, keys: LogKeys, total: int) -> list[str]:
    """`total` entries (intent + outcome pairs) spread over six months; the subjects used."""
    rng = random.Random(7)
    subjects = [f"subject-{n:06d}" for n in range(SUBJECTS)]
    batch: list[LogRow] = []
    spread = timedelta(days=180) / max(total, 1)
    started = time.perf_counter()
    templates = Templates()
    for i in range(total // 2):
        at = T0 + spread * (2 * i)
        subject = subjects[rng.randrange(SUBJECTS)]
        batch += templates.rows(i, at, keys.subject_ref(subject, at))
        if len(batch) >= 20_000:
            await service.append_rows(batch)
            batch = []
            done = 2 * (i + 1)
            print(
                f"\r  filling {done:,}/{total:,} ({time.perf_counter() - started:.0f}s)",
                end="",
                file=sys.stderr,
            )
    if batch:
        await service.append_rows(batch)
    print(file=sys.stderr)
    return subjects


async def at_scale(label: str, store: Store, signer: LogSigner, keys: LogKeys, total: int) -> None:
    service = LogService(store, signer)
    started = time.perf_counter()
    subjects = await fill(service, keys, total)
    await store.project_log()  # the search columns, as the gateway's writer does
    size = await service.size()
    print(f"{label}: filled {size:,} entries in {time.perf_counter() - started:.1f}s (bulk)")

    started = time.perf_counter()
    await service.sync_nodes()
    checkpoint = await service.checkpoint()
    print(
        f"{label}: subtree hashes stored and checkpoint signed in "
        f"{time.perf_counter() - started:.1f}s"
    )

    started = time.perf_counter()
    report = await audit_store(store, signer.verifier_key, ORIGIN)
    elapsed = time.perf_counter() - started
    state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(
        f"{label}: `gateway log verify` over {report.entries:,} entries: {elapsed:.1f}s ({state})"
    )

    rng = random.Random(11)
    root = await service.root(size)
    timings = []
    for _ in range(200):
        index = rng.randrange(size)
        t = time.perf_counter()
        proof = await service.inclusion_proof(index, size)
        timings.append(time.perf_counter() - t)
        verify_inclusion(index, size, proof.leaf_hash, proof.hashes, root)
    print(
        f"{label}: inclusion proof at {size:,}: median {statistics.median(timings) * 1e3:.2f} ms, "
        f"p95 {sorted(timings)[189] * 1e3:.2f} ms (200 proofs, all verified)"
    )
    assert checkpoint.size == size

    timings, hits = [], 0
    for subject in rng.sample(subjects, 50):
        t = time.perf_counter()
        refs = await subject_refs(store, keys, subject)
        found = [f async for f in search(store, Query(subject_refs=refs))]
        timings.append(time.perf_counter() - t)
        hits += len(found)
    print(
        f"{label}: subject search at {size:,} ({len(refs)} period refs each): median "
        f"{statistics.median(timings) * 1e3:.1f} ms, p95 {sorted(timings)[47] * 1e3:.1f} ms "
        f"({hits / 50:.1f} disclosures per subject, outcomes included)"
    )
    await service.stop(final_checkpoint=False)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--append-seconds", type=float, default=5.0, help="seconds of appends per store"
    )
    parser.add_argument(
        "--postgres-big", action="store_true", help="also fill PostgreSQL with --entries (slow)"
    )
    args = parser.parse_args()
    signer = LogSigner(ORIGIN, Ed25519PrivateKey.generate())

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        keys = LogKeys.load(root / "keys")
        store = await open_store("sqlite:///append.db", root)
        try:
            print("sqlite: " + await appends_per_second(store, signer, args.append_seconds))
        finally:
            await store.close()
        postgres = await scratch_postgres()
        if postgres is not None:
            url, drop = postgres
            store = await open_store(url, root)
            try:
                print("postgresql: " + await appends_per_second(store, signer, args.append_seconds))
                if args.postgres_big:
                    await at_scale("postgresql", store, signer, keys, args.entries)
            finally:
                await store.close()
                await drop()

        store = await open_store("sqlite:///big.db", root)
        try:
            await at_scale("sqlite", store, signer, keys, args.entries)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
