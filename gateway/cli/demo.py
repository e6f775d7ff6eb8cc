"""`gateway demo`: the whole flow on one machine in under a minute.

Starts the sandbox partners on their loopback ports and the gateway on a fresh
SQLite file, records consents, sends sample disclosures — allowed and refused
for different reasons — and prints what each partner actually received (field
names after decryption), then the log entries and a check of the log.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.config.model import Config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.generate import generate_missing
from gateway.crypto.seal import GatewayKeys
from gateway.log.audit import audit_store
from gateway.log.record import EntryRecord
from gateway.log.service import LogService
from gateway.net import is_loopback_host
from gateway.partners import load_partners
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.store.base import Store
from gateway.store.ports import LogRowStore
from gateway.web.app import create_app
from gateway.web.keys import LOG, STORE

ADULT = "demo-subject-0001"
CHILD = "demo-subject-0002"
PERSON = {
    "name": "Somchai Phommavong",
    "date_of_birth": "1990-04-02",
    "gender": "m",
    "phone": "+856 20 5555 1234",
    "email": "somchai@example.la",
    "uuid": "u-0001",
    "password": "never-leaves",
    "brand": "Toyota",
    "model": "Vios",
    "car_type": "sedan",
    "mileage": 42000,
    "cookie": "ck-123",
    "app_id": "kokkok-android",
    "device_model": "A54",
    "amount": 125000000,
    "currency": "LAK",
    "card_token": "tok_4242",
    "transaction_id": "t-77",
    "health_status": "none declared",
}

# (title, caller, body overrides) — sent in order; consents are granted before.
Sample = tuple[str, str, dict[str, Any]]


def samples() -> list[Sample]:
    def body(
        partner: str, operation: str, purpose: str, basis: str, subject: str = ADULT, **extra: Any
    ) -> dict[str, Any]:
        return {
            "partner": partner,
            "operation": operation,
            "purpose": purpose,
            "legal_basis": basis,
            "subject": subject,
            "data": PERSON,
            **extra,
        }

    return [
        (
            "credit check on consent (RSA-OAEP-256, PS256, OAuth2 client_secret_post)",
            "sales-service",
            body("lao-credit-bureau", "credit_check", "service_provision", "consent"),
        ),
        (
            "card payment under the sales contract (OAuth2 client_secret_basic)",
            "payments-service",
            body("bcel-payments", "charge", "service_provision", "contract"),
        ),
        (
            "insurance quote on consent (ECDH-ES+A256KW, Ed25519, API key)",
            "sales-service",
            body("lanexang-insurance", "quote", "service_provision", "consent"),
        ),
        (
            "identity check under contract (mTLS, ECDH-ES)",
            "sales-service",
            body("veriid", "verify_identity", "service_provision", "contract"),
        ),
        (
            "marketing audience on marketing consent",
            "marketing-service",
            body("adreach", "audience_upload", "marketing", "consent"),
        ),
        (
            "emergency disclosure to the police (vital interest: passes, queued for review)",
            "legal-desk",
            body("vientiane-police", "lawful_disclosure", "safety_security", "vital_interest"),
        ),
        ("-- the customer withdraws the marketing consent --", "", {}),
        (
            "marketing audience after the withdrawal",
            "marketing-service",
            body("adreach", "audience_upload", "marketing", "consent"),
        ),
        (
            "usage analytics with no consent",
            "marketing-service",
            body("insight-analytics", "usage_events", "research_development", "consent"),
        ),
        (
            "police request without an approved lawful request",
            "legal-desk",
            body("vientiane-police", "lawful_disclosure", "legal", "legal_obligation"),
        ),
        (
            "health underwriting without explicit consent for health data",
            "sales-service",
            body("lanexang-insurance", "health_underwriting", "service_provision", "consent"),
        ),
        (
            "credit check of a 12-year-old on consent",
            "sales-service",
            body(
                "lao-credit-bureau",
                "credit_check",
                "service_provision",
                "consent",
                subject=CHILD,
                data={**PERSON, "date_of_birth": "2014-05-05"},
            ),
        ),
        (
            "payments service asking the credit bureau (not in its allowlist)",
            "payments-service",
            body("lao-credit-bureau", "credit_check", "service_provision", "contract"),
        ),
    ]


def consents() -> list[dict[str, Any]]:
    base = {
        "subject": ADULT,
        "policy_version": "2024-09-30",
        "method": "app",
        "evidence": "consent-screen-v3",
    }
    return [
        {
            **base,
            "purposes": ["service_provision"],
            "partners": ["lao-credit-bureau", "lanexang-insurance"],
        },
        {**base, "purposes": ["marketing"], "partner_categories": ["advertising_marketing"]},
        {
            **base,
            "subject": CHILD,
            "purposes": ["service_provision"],
            "partners": ["lao-credit-bureau"],
        },
    ]


def free_port(host: str, preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind((host, preferred))
            return preferred
        except OSError:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])


def _port_taken(base_url: str) -> bool:
    """Whether a loopback base_url's port is in use (a partner elsewhere is not served)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if not is_loopback_host(host):
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return free_port(host, port) != port


async def run_demo(config: Config, *, out: Callable[[str], None] = print) -> int:
    generate_missing(config.keys_dir, config.partners_dir, base_dir=config.root)
    db = config.root / "var" / "demo.db"
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    demo_config = replace(config, storage_url=f"sqlite:///{db}")
    partners = load_partners(config.partners_dir, config.root)
    host = config.server.host
    port = free_port(host, config.server.port)
    jwks = GatewayKeys.load(config.keys_dir).jwks()

    # A sandbox whose usual port is taken (`make run` serves them too) moves to a free one.
    moved = {pid: 0 for pid, partner in partners.items() if _port_taken(partner.base_url)}
    cluster = await start_sandboxes(
        partners, config.keys_dir, jwks, {}, ports=moved, encrypt_responses=True
    )
    app = create_app(demo_config, partners={**partners, **cluster.partners})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    base = f"http://{host}:{port}"
    elsewhere = f" ({len(moved)} on free ports: their own were in use)" if moved else ""
    out(
        f"gateway on {base} (SQLite {db.relative_to(config.root)}), "
        f"{len(cluster.partners)} sandbox partners on loopback{elsewhere}\n"
    )
    try:
        async with aiohttp.ClientSession() as http:
            await _run_samples(http, base, config, cluster, out)
        # Refusals and outcomes are committed after their answer: wait for them, or the
        # listing stops short of the checkpoint verified below.
        await app[LOG].settle()
        await _show_log(app[STORE], out)
        await _verify_log(app[LOG], app[STORE], out)
    finally:
        await runner.cleanup()
        await cluster.close()
    return 0


def _token(config: Config, caller: str) -> dict[str, str]:
    return {
        "Authorization": "Bearer "
        + issue_dev_token(config.keys_dir, config.auth, caller, ttl_s=300)
    }


async def _run_samples(
    http: aiohttp.ClientSession,
    base: str,
    config: Config,
    cluster: SandboxCluster,
    out: Callable[[str], None],
) -> None:
    consent_ids = []
    for consent in consents():
        async with http.post(
            f"{base}/v1/consents", json=consent, headers=_token(config, "customer-app")
        ) as r:
            consent_ids.append((await r.json())["id"])
    out(f"recorded {len(consent_ids)} consents through POST /v1/consents\n")
    number = 0
    for title, caller, body in samples():
        if not caller:
            async with http.post(
                f"{base}/v1/consents/{consent_ids[1]}/withdraw",
                headers=_token(config, "customer-app"),
            ) as r:
                withdrawn = await r.json()
                out(f"{title}  (HTTP {r.status})")
                # The partners that received data under the consent are told (CONTRACT §4.4).
                for notice in withdrawn.get("notices", {}).get("notices", []):
                    out(
                        f"    {notice['partner']} told: consent_withdrawn notice "
                        f"{notice['status']} ({notice.get('disclosure_id', '-')})"
                    )
                out("")
            continue
        number += 1
        before = {pid: len(cluster.received(pid)) for pid in cluster.partners}
        async with http.post(
            f"{base}/v1/disclosures", json=body, headers=_token(config, caller)
        ) as r:
            answer = await r.read()
            status, disclosure_id = r.status, r.headers.get("Disclosure-Id", "-")
        partner = body["partner"]
        out(
            f"{number:2}. {title}\n    {caller} → {partner}/{body['operation']} "
            f"({body['purpose']}, {body['legal_basis']})"
        )
        if status < 300:
            got = cluster.received(partner)[before[partner] :]
            fields = ", ".join(got[0].fields) if got else "(nothing)"
            out(
                f"    ALLOWED  HTTP {status}  {disclosure_id}\n"
                f"    the partner decrypted, verified and received: {fields}\n"
            )
        else:
            problem = json.loads(answer)
            code = problem["type"].rsplit("/", 1)[-1]
            out(f"    REFUSED  HTTP {status}  {code}: {problem['detail']}\n")


async def _show_log(store: LogRowStore, out: Callable[[str], None]) -> None:
    size = await store.log_size()
    out(f"disclosure log: {size} entries (no personal values; subject as keyed HMAC)")
    for index, raw in await store.read_log(0, size):
        entry = EntryRecord.parse(index, raw)
        if entry.kind == "action":  # a person's act: who did what (gateway.log.actions)
            out(f"  #{index:<3} {'action':<8} {entry.actor} {entry.action} ({entry.credential})")
            continue
        what = entry.outcome or entry.problem or ",".join(entry.fields)
        out(
            f"  #{index:<3} {entry.kind!s:<8} {entry.disclosure_id[:14]}  "
            f"{entry.partner or '':<20} {what}"
        )


async def _verify_log(log_service: LogService, store: Store, out: Callable[[str], None]) -> None:
    checkpoint = await log_service.checkpoint()
    signer = log_service.signer
    out(f"\nsigned checkpoint (C2SP signed note; GET /v1/log/checkpoint):\n{checkpoint.note}")
    report = await audit_store(store, signer.verifier_keys, signer.name)
    verdict = "OK" if report.ok else f"FAILED: {report.first_bad}"
    out(
        f"log verified with only the public key {signer.verifier_key[:40]}…: {verdict} "
        f"({report.entries} entries, {report.checkpoints} checkpoint(s) recomputed)"
    )


def main(config: Config) -> int:
    import asyncio

    try:
        return asyncio.run(run_demo(config))
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()
