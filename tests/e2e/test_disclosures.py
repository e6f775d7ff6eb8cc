"""POST /v1/disclosures end to end: real gateway, real sandbox partners that decrypt and verify."""

from __future__ import annotations

import json

import pytest
from e2e.conftest import canary, consent_of
from support.log import logged

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000bbbb"
PERSON = canary(email="canary@example.com", password="CANARY-PW", gender="f")


def body(
    partner: str,
    operation: str,
    *,
    purpose: str = "service_provision",
    basis: str = "consent",
    data: dict | None = None,
    **extra: str,
) -> dict:
    return {
        "partner": partner,
        "operation": operation,
        "purpose": purpose,
        "legal_basis": basis,
        "subject": SUBJECT,
        "data": data if data is not None else PERSON,
        **extra,
    }


async def grant(client, auth, **fields) -> str:
    consent = consent_of(SUBJECT, **fields)
    r = await client.post("/v1/consents", json=consent, headers=auth("customer-app"))
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def log_of(client, disclosure_id: str) -> list[dict]:
    return await logged(client.server.app, disclosure_id)


async def test_credit_check_delivered_minimized_signed_encrypted(live, sandboxes, auth):
    await grant(live, auth, partners=["lao-credit-bureau"])
    r = await live.post(
        "/v1/disclosures",
        json=body("lao-credit-bureau", "credit_check"),
        headers=auth("sales-service"),
    )
    assert r.status in (200, 201), await r.text()
    disclosure_id = r.headers["Disclosure-Id"]
    assert r.headers["Disclosure-Fields"] == "name,date_of_birth,phone,uuid"
    answer = await r.json()
    assert answer["received_fields"] == ["date_of_birth", "name", "phone", "uuid"]
    received = sandboxes.received("lao-credit-bureau")
    assert [x.disclosure_id for x in received] == [disclosure_id]
    assert received[0].fields == ["date_of_birth", "name", "phone", "uuid"]
    entries = await log_of(live, disclosure_id)
    assert [e["kind"] for e in entries] == ["intent", "outcome"]
    assert entries[1]["outcome"] == "sent" and entries[1]["attempts"] == 1
    assert entries[0]["fields"]["date_of_birth"] == "year"
    raw = json.dumps(entries)
    assert "CANARY" not in raw and SUBJECT not in raw and "1990-04-02" not in raw


@pytest.mark.parametrize(
    "partner,operation,caller,basis,purpose,consent",
    [
        ("bcel-payments", "charge", "payments-service", "contract", "service_provision", None),
        (
            "lanexang-insurance",
            "quote",
            "sales-service",
            "consent",
            "service_provision",
            "lanexang-insurance",
        ),
        ("veriid", "verify_identity", "sales-service", "contract", "service_provision", None),
        (
            "mekong-collections",
            "open_case",
            "payments-service",
            "contract",
            "service_provision",
            None,
        ),
        ("adreach", "audience_upload", "marketing-service", "consent", "marketing", "adreach"),
        (
            "insight-analytics",
            "usage_events",
            "marketing-service",
            "consent",
            "research_development",
            "insight-analytics",
        ),
        (
            "vientiane-police",
            "lawful_disclosure",
            "legal-desk",
            "vital_interest",
            "safety_security",
            None,
        ),
    ],
)
async def test_every_partner_kind_receives(
    live, sandboxes, auth, partner, operation, caller, basis, purpose, consent
):
    if consent:
        await grant(live, auth, partners=[consent], purposes=[purpose])
    data = {
        **PERSON,
        "amount": 1000,
        "currency": "LAK",
        "card_token": "tok_1",
        "transaction_id": "t-1",
        "cookie": "ck",
        "app_id": "app",
        "device_model": "X",
        "os": "android",
        "ip_address": "192.0.2.10",
        "visit_time": "2026-11-01T10:00:00Z",
    }
    r = await live.post(
        "/v1/disclosures",
        json=body(partner, operation, purpose=purpose, basis=basis, data=data),
        headers=auth(caller),
    )
    assert r.status < 300, await r.text()
    received = sandboxes.received(partner)
    assert len(received) == 1
    sent = r.headers["Disclosure-Fields"].split(",")
    assert sorted(sent) == received[0].fields
    assert "password" not in received[0].fields


async def test_refusal_sends_nothing_and_is_logged(live, sandboxes, auth):
    r = await live.post(
        "/v1/disclosures",
        json=body("lao-credit-bureau", "credit_check"),
        headers=auth("sales-service"),
    )
    assert r.status == 403
    doc = await r.json(content_type=None)
    assert doc["type"].endswith("/consent_required")
    assert doc["disclosure_id"] == r.headers["Disclosure-Id"]
    assert "CANARY" not in json.dumps(doc)
    assert sandboxes.received("lao-credit-bureau") == []
    entries = await log_of(live, doc["disclosure_id"])
    assert [(e["kind"], e["problem"]) for e in entries] == [("refused", "consent_required")]


# policy: VII.4 — a withdrawal is effective for the very next disclosure.
async def test_withdrawal_effective_at_once(live, sandboxes, auth):
    consent_id = await grant(live, auth, partners=["lao-credit-bureau"])
    request = body("lao-credit-bureau", "credit_check")
    assert (
        await live.post("/v1/disclosures", json=request, headers=auth("sales-service"))
    ).status < 300
    await live.post(f"/v1/consents/{consent_id}/withdraw", headers=auth("customer-app"))
    r = await live.post("/v1/disclosures", json=request, headers=auth("sales-service"))
    assert r.status == 403
    # Nothing disclosed after the withdrawal; the one notice of it is all the bureau got.
    received = sandboxes.received("lao-credit-bureau")
    assert [r.notice for r in received] == [None, "consent_withdrawn"]


async def test_idempotency_key_sends_once(live, sandboxes, auth):
    await grant(live, auth, partners=["lao-credit-bureau"])
    headers = {**auth("sales-service"), "Idempotency-Key": "order-42"}
    request = body("lao-credit-bureau", "credit_check")
    first = await live.post("/v1/disclosures", json=request, headers=headers)
    second = await live.post("/v1/disclosures", json=request, headers=headers)
    assert first.status == second.status < 300
    assert first.headers["Disclosure-Id"] == second.headers["Disclosure-Id"]
    assert second.headers.get("Idempotency-Replayed") == "true"
    assert await first.read() == await second.read()
    assert len(sandboxes.received("lao-credit-bureau")) == 1
    other = await live.post(
        "/v1/disclosures", json={**request, "purpose": "safety_security"}, headers=headers
    )
    assert other.status == 409


async def test_retry_after_503_then_delivered(live, sandboxes, auth):
    await grant(live, auth, partners=["lao-credit-bureau"])
    sandboxes.partner("lao-credit-bureau").fail_next(1, status=503)
    r = await live.post(
        "/v1/disclosures",
        json=body("lao-credit-bureau", "credit_check"),
        headers=auth("sales-service"),
    )
    assert r.status < 300
    entries = await log_of(live, r.headers["Disclosure-Id"])
    assert entries[-1]["outcome"] == "sent" and entries[-1]["attempts"] == 2


async def test_partner_failing_gives_502_and_failed_outcome(live, sandboxes, auth):
    await grant(live, auth, partners=["lao-credit-bureau"])
    sandboxes.partner("lao-credit-bureau").fail_next(5, status=503)
    r = await live.post(
        "/v1/disclosures",
        json=body("lao-credit-bureau", "credit_check"),
        headers=auth("sales-service"),
    )
    assert r.status == 502
    assert r.headers["Retry-After"] == "8"  # transient: the longest pause between tries
    doc = await r.json(content_type=None)
    assert doc["type"] == "/problems/partner_unavailable"
    entries = await log_of(live, doc["disclosure_id"])
    assert [e["kind"] for e in entries] == ["intent", "outcome"]
    assert entries[1]["outcome"] == "failed" and entries[1]["attempts"] == 3
    assert entries[1]["problem"] == "partner_unavailable"


async def test_caller_headers_never_forwarded(live, sandboxes, auth):
    await grant(live, auth, partners=["lao-credit-bureau"])
    headers = {**auth("sales-service"), "Cookie": "session=abc", "X-Internal-Trace": "t-1"}
    r = await live.post(
        "/v1/disclosures", json=body("lao-credit-bureau", "credit_check"), headers=headers
    )
    assert r.status < 300
    seen = {h.lower() for h in sandboxes.received("lao-credit-bureau")[0].headers}
    assert "cookie" not in seen and "x-internal-trace" not in seen
    assert "idempotency-key" in seen
