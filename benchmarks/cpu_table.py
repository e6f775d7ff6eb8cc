"""Where a disclosure's CPU goes: each piece of the hot path measured alone, in this process.

The floor of each piece (issue #20): what it costs with nothing else running, in µs of this
process's CPU time per call (best of a few repeats, so a busy machine inflates it less than
wall time). Against these, the gateway's CPU per disclosure under load (``benchmarks/run.py``
prints it, and with ``--profile`` its split by concern) shows what the pieces cost together
and what is overhead between them (the event loop, the aiohttp server, tasks).

The pieces, for the bench's first scenario (bcel-payments charge, RSA-OAEP-256 + ES256)
unless named: caller JWT verify (a full check, and the cache hit every later request of a
token gets), the request body (JSON and the disclosure request), decide, minimize, seal per
shipped algorithm pair, the intent and outcome entries (build with their HMACs, and row:
canonical bytes and leaf hash), the consent query of a subject with one consent
(SQLite, the at-rest layer included), one durable SQLite commit (the floor: the gateway's own
append does more), one application-log request line, and one aiohttp round trip to a loopback
echo (client and server both in this process: what the bare proxy also pays, twice over).

Usage: ``python benchmarks/cpu_table.py [--quick] [--project DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import io
import json
import logging
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from benchmarks.commit_floor import ROW  # noqa: E402
from benchmarks.run import SCENARIOS, Scenario  # noqa: E402
from gateway.callers.tokens import CallerAuthenticator  # noqa: E402
from gateway.canonical import canonical_json  # noqa: E402
from gateway.config.model import Config, load_config  # noqa: E402
from gateway.crypto.dev_tokens import issue_dev_token  # noqa: E402
from gateway.crypto.seal import GatewayKeys, claims_for, load_partner_key_file  # noqa: E402
from gateway.crypto.subject_keys import LogKeys, Period  # noqa: E402
from gateway.log.entries import intent_entry, outcome_entry, row_of  # noqa: E402
from gateway.log.merkle import leaf_hash  # noqa: E402
from gateway.observe.app_log import JsonFormatter, PersonalDataFilter  # noqa: E402
from gateway.partners import Partner, load_partners  # noqa: E402
from gateway.policy.decide import decide  # noqa: E402
from gateway.policy.facts import Consent, SubjectFacts  # noqa: E402
from gateway.policy.minimize import FieldPlan, minimize  # noqa: E402
from gateway.policy.request import DisclosureRequest, parse_disclosure_request  # noqa: E402
from gateway.store.protected import open_protected_store  # noqa: E402
from gateway.web.problems import parse_json_text  # noqa: E402

NOW = datetime.now(UTC)
SUBJECT = "bench-subject-00001"


def cpu_us(call: Callable[[], object], calls: int, repeats: int = 3) -> float:
    """µs of process CPU per call, the best of `repeats` runs of `calls` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            call()
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


def cpu_us_async(
    loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[object]], calls: int
) -> float:
    async def batch() -> None:
        for _ in range(calls):
            await call()

    return cpu_us(lambda: loop.run_until_complete(batch()), 1) / calls


def the_request(scenario: Scenario) -> DisclosureRequest:
    return DisclosureRequest(
        scenario.partner,
        scenario.operation,
        "service_provision",
        scenario.legal_basis,
        SUBJECT,
        scenario.data,
    )


def body_of(scenario: Scenario) -> bytes:
    request = {
        "partner": scenario.partner,
        "operation": scenario.operation,
        "purpose": "service_provision",
        "legal_basis": scenario.legal_basis,
        "subject": SUBJECT,
        "data": scenario.data,
    }
    return json.dumps(request).encode()


def consent_for(partners: list[str]) -> Consent:
    return Consent(
        "c-1",
        SUBJECT,
        frozenset({"service_provision"}),
        frozenset(partners),
        frozenset(),
        frozenset(),
        "2024-09-30",
        NOW - timedelta(days=3),
    )


def seal_rows(
    config: Config, partners: dict[str, Partner], keys: GatewayKeys, n: int
) -> list[tuple[str, float]]:
    rows = []
    for scenario in SCENARIOS:
        partner = partners[scenario.partner]
        enc = partner.encryption
        assert enc.public_key is not None
        recipient = load_partner_key_file(enc.public_key, alg=enc.alg)

        def seal(enc: Any = enc, recipient: Any = recipient, scenario: Scenario = scenario) -> str:
            claims = claims_for(
                issuer=config.log.origin,
                partner_id=scenario.partner,
                disclosure_id="d-1",
                purpose="service_provision",
                legal_basis=scenario.legal_basis,
                data=scenario.minimized,
                now=NOW,
            )
            return keys.seal(
                claims, sign_alg=enc.sign_alg, recipient=recipient, alg=enc.alg, enc=enc.enc
            )

        rows.append(
            (f"seal: {enc.sign_alg} inside {enc.alg} ({scenario.partner})", cpu_us(seal, n))
        )
    return rows


def log_rows(config: Config, partners: dict[str, Partner], n: int) -> list[tuple[str, float]]:
    scenario = SCENARIOS[0]
    partner = partners[scenario.partner]
    request = the_request(scenario)
    facts = SubjectFacts(consents=(consent_for([scenario.partner]),))
    decision = decide(request, config.callers[scenario.caller], partners, facts, config.policy, NOW)
    keys = LogKeys(b"k" * 32)
    key = keys.key_for(Period.of(NOW))

    def intent() -> dict[str, Any]:
        return intent_entry(
            disclosure_id="d-1",
            caller=scenario.caller,
            request=request,
            partner=partner,
            operation=partner.operations[scenario.operation],
            decision=decision,
            minimized=scenario.minimized,
            at=NOW,
            keys=keys,
            policy_version=config.policy.version,
            instance="i-1",
        )

    def outcome() -> dict[str, Any]:
        return outcome_entry(
            disclosure_id="d-1",
            outcome="sent",
            at=NOW,
            partner=scenario.partner,
            partner_status=201,
            attempts=1,
        )

    entry, done = intent(), outcome()
    data = canonical_json(entry)
    message = b"subject\x00" + SUBJECT.encode()
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    return [
        ("intent entry: build, with its two HMACs", cpu_us(intent, n)),
        (
            "  of which one HMAC (hmac.digest, one-shot)",
            cpu_us(lambda: hmac.digest(key, message, "sha256"), n),
        ),
        ("  one HMAC from a keyed object (.copy())", cpu_us(lambda: _copied(keyed, message), n)),
        ("intent row: canonical bytes, leaf hash", cpu_us(lambda: row_of(entry), n)),
        ("  of which the leaf hash", cpu_us(lambda: leaf_hash(data), n)),
        ("outcome entry: build", cpu_us(outcome, n)),
        ("outcome row: canonical bytes, leaf hash", cpu_us(lambda: row_of(done), n)),
    ]


def _copied(keyed: hmac.HMAC, message: bytes) -> bytes:
    one = keyed.copy()
    one.update(message)
    return one.digest()


def sqlite_commit_us(directory: Path, n: int) -> float:
    conn = sqlite3.connect(directory / "commit.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL)")

    def commit() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (entry) VALUES (?)", (ROW,))
        conn.execute("COMMIT")

    try:
        return cpu_us(commit, n)
    finally:
        conn.close()


def request_line_us(n: int) -> float:
    """One request line through the application log's filter and JSON formatter."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger("gateway.request.bench")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    extra = {"method": "POST", "route": "/v1/disclosures", "status": 201, "duration_ms": 2.1}
    return cpu_us(
        lambda: logger.info("%s %s %s%s", "POST", "/v1/disclosures", "201", "", extra=extra), n
    )


async def consent_query(config: Config, directory: Path, scenario: Scenario) -> Any:
    store = await open_protected_store(f"sqlite:///{directory}/gw.db", directory, config.keys_dir)
    consent = consent_for([s.partner for s in SCENARIOS])
    await store.add_consent(consent)
    return store


async def round_trip_us(calls: int) -> float:
    """One POST of an intent-sized body to a loopback echo and its answer, both sides."""
    runner, url = await echo_server()
    headers = {"Content-Type": "application/jose"}
    try:
        async with aiohttp.ClientSession() as session:
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                for _ in range(calls):
                    async with session.post(url, data=ROW, headers=headers) as answer:
                        await answer.read()
                best = min(best, (time.process_time() - started) / calls)
            return best * 1e6
    finally:
        await runner.cleanup()


async def echo_server() -> tuple[web.AppRunner, str]:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ok"}, status=201)

    app = web.Application()
    app.router.add_post("/echo", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/echo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per piece")
    parser.add_argument("--project", type=Path, default=ROOT)
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    config = load_config(args.project / "config.toml")
    partners = load_partners(config.partners_dir, config.root)
    keys = GatewayKeys.load(config.keys_dir)
    scenario = SCENARIOS[0]
    caller = config.callers[scenario.caller]
    request = the_request(scenario)
    facts = SubjectFacts(consents=(consent_for([scenario.partner]),))
    decision = decide(request, caller, partners, facts, config.policy, NOW)
    plan = FieldPlan(decision.disclosed, decision.withheld_reasons)
    body = body_of(scenario)
    token = issue_dev_token(config.keys_dir, config.auth, scenario.caller)
    header = f"Bearer {token}"

    rows: list[tuple[str, float]] = []
    loop = asyncio.new_event_loop()
    try:
        full = CallerAuthenticator(config.auth, config.callers, None, cache_size=0)
        cached = CallerAuthenticator(config.auth, config.callers, None)
        rows.append(
            (
                "caller JWT verify, full check",
                cpu_us_async(loop, lambda: full.authenticate(header), n),
            )
        )
        rows.append(
            (
                "caller JWT verify, cached (every later request)",
                cpu_us_async(loop, lambda: cached.authenticate(header), n),
            )
        )
        rows.append(
            (
                "request body: JSON text to a DisclosureRequest",
                cpu_us(lambda: parse_disclosure_request(parse_json_text(body.decode(), 32)), n),
            )
        )
        rows.append(
            (
                "decide",
                cpu_us(lambda: decide(request, caller, partners, facts, config.policy, NOW), n),
            )
        )
        rows.append(
            (
                "minimize",
                cpu_us(
                    lambda: minimize(
                        scenario.data, plan, pseudonym_key=b"p" * 32, today=NOW.date()
                    ),
                    n,
                ),
            )
        )
        rows += seal_rows(config, partners, keys, max(n // 4, 50))
        rows += log_rows(config, partners, n)
        with tempfile.TemporaryDirectory(prefix="gw-cpu-") as scratch:
            store = loop.run_until_complete(consent_query(config, Path(scratch), scenario))
            try:
                rows.append(
                    (
                        "consent query: one subject, one consent (SQLite, at rest)",
                        cpu_us_async(loop, lambda: store.subject_facts(SUBJECT, None), n),
                    )
                )
            finally:
                loop.run_until_complete(store.close())
            rows.append(
                (
                    "one durable SQLite commit, one row (the floor)",
                    sqlite_commit_us(Path(scratch), max(n // 4, 50)),
                )
            )
        rows.append(("one application-log request line (JSON)", request_line_us(n)))
        rows.append(
            (
                "aiohttp round trip to a loopback echo (client + server)",
                loop.run_until_complete(round_trip_us(n)),
            )
        )
    finally:
        loop.close()
    width = max(len(name) for name, _ in rows)
    print(f"{'piece':<{width}}  µs CPU per call")
    for name, us in rows:
        print(f"{name:<{width}}  {us:>8.1f}")


if __name__ == "__main__":
    main()
