"""The HTTP API without partners: authentication, consent endpoints, decisions, bad input."""

from __future__ import annotations

import io
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.store.records import StoreUnavailable
from gateway.web.keys import STORE
from gateway.web.routes.ops import readyz

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000aaaa"
CONSENT = {
    "subject": SUBJECT,
    "purposes": ["service_provision"],
    "partners": ["lao-credit-bureau"],
    "policy_version": "2024-09-30",
    "obtained_at": "2026-01-01T00:00:00Z",
    "method": "app",
    "evidence": "screen-v3",
}
BODY = {
    "partner": "lao-credit-bureau",
    "operation": "credit_check",
    "purpose": "service_provision",
    "legal_basis": "consent",
    "subject": SUBJECT,
    "data": {
        "name": "CANARY-NAME",
        "date_of_birth": "1990-04-02",
        "uuid": "u",
        "password": "CANARY-PW",
    },
}


def assert_problem(response, status: int, code: str) -> None:
    assert response.status == status
    assert response.content_type == "application/problem+json"


async def problem(response) -> dict:
    doc = json.loads(await response.read())
    assert doc["type"].startswith("/problems/")
    assert {"type", "title", "status", "detail"} <= set(doc)
    return doc


async def test_health_and_jwks(gateway):
    assert (await gateway.get("/healthz")).status == 200
    ready = await gateway.get("/readyz")
    assert ready.status == 200
    jwks = await (await gateway.get("/.well-known/jwks.json")).json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])


async def test_unauthenticated_and_wrong_role(gateway, auth):
    r = await gateway.post("/v1/decisions", json=BODY)
    assert r.status == 401
    assert (await problem(r))["type"].endswith("/unauthenticated")
    r = await gateway.post("/v1/decisions", json=BODY, headers=auth("customer-app"))
    assert r.status == 403
    assert "discloser" in (await problem(r))["detail"]


# policy: VII.4 withdraw consent — effective for the next decision.
async def test_consent_grant_decide_withdraw(gateway, auth):
    r = await gateway.post("/v1/consents", json=CONSENT, headers=auth("customer-app"))
    assert r.status == 201, await r.text()
    consent_id = (await r.json())["id"]
    r = await gateway.post("/v1/decisions", json=BODY, headers=auth("sales-service"))
    decision = await r.json()
    assert decision["allowed"] is True and decision["consent_id"] == consent_id
    assert "password" in decision["withheld"]
    r = await gateway.post(f"/v1/consents/{consent_id}/withdraw", headers=auth("customer-app"))
    assert r.status == 200 and (await r.json())["withdrawn_at"]
    decision = await (
        await gateway.post("/v1/decisions", json=BODY, headers=auth("sales-service"))
    ).json()
    assert decision["problem"] == "consent_withdrawn"
    listing = await (
        await gateway.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("customer-app"))
    ).json()
    assert listing["consents"][0]["withdrawn_at"]


async def test_restriction_and_profile(gateway, auth):
    await gateway.post("/v1/consents", json=CONSENT, headers=auth("customer-app"))
    r = await gateway.put(
        f"/v1/subjects/{SUBJECT}/restriction",
        json={"restricted": True, "reason": "objection"},
        headers=auth("privacy-office"),
    )
    assert r.status == 200
    decision = await (
        await gateway.post("/v1/decisions", json=BODY, headers=auth("sales-service"))
    ).json()
    assert decision["problem"] == "subject_restricted"
    await gateway.put(
        f"/v1/subjects/{SUBJECT}/restriction",
        json={"restricted": False},
        headers=auth("privacy-office"),
    )
    r = await gateway.put(
        f"/v1/subjects/{SUBJECT}/profile",
        json={"date_of_birth": "2016-01-01"},
        headers=auth("customer-app"),
    )
    assert r.status == 200
    body = {**BODY, "data": {"name": "x", "uuid": "u"}}
    decision = await (
        await gateway.post("/v1/decisions", json=body, headers=auth("sales-service"))
    ).json()
    assert decision["problem"] == "subject_under_age"
    # The payload's adult date of birth does not override the stored child's, on the
    # dry run nor on a real disclosure (issue 16 item 1).
    adult = {**BODY, "data": {"name": "x", "uuid": "u", "date_of_birth": "1990-04-02"}}
    decision = await (
        await gateway.post("/v1/decisions", json=adult, headers=auth("sales-service"))
    ).json()
    assert decision["problem"] == "subject_under_age"
    sent = await gateway.post("/v1/disclosures", json=adult, headers=auth("sales-service"))
    assert sent.status == 403
    assert (await sent.json())["type"].endswith("/subject_under_age")
    await gateway.put(
        f"/v1/subjects/{SUBJECT}/profile",
        json={"date_of_birth": "1991-01-01"},
        headers=auth("customer-app"),
    )
    decision = await (
        await gateway.post("/v1/decisions", json=adult, headers=auth("sales-service"))
    ).json()
    assert decision["problem"] == "date_of_birth_conflict"


async def test_bad_input_is_problem_json(gateway, auth):
    headers = {**auth("sales-service"), "Content-Type": "application/json"}
    cases = [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (json.dumps({**BODY, "purpose": "fun"}).encode(), 400),
        (json.dumps({**BODY, "legal_basis": 7}).encode(), 400),
        (json.dumps({**BODY, "data": []}).encode(), 400),
        (b"[" * 100 + b"]" * 100, 400),
        (b"[" * 100000 + b"]" * 100000, 400),
        (b"NaN", 400),
    ]
    for raw, status in cases:
        r = await gateway.post("/v1/decisions", data=io.BytesIO(raw), headers=headers)
        assert r.status == status, raw[:20]
        doc = await problem(r)
        assert "CANARY" not in doc["detail"]
    r = await gateway.post("/v1/decisions", data=io.BytesIO(b"x" * 2_000_000), headers=headers)
    assert r.status == 413
    assert (await problem(r))["type"].endswith("/payload_too_large")


async def test_unknown_route_and_method(gateway):
    r = await gateway.get("/v1/nothing")
    assert r.status == 404 and r.content_type == "application/problem+json"
    r = await gateway.get("/v1/disclosures")
    assert r.status == 405 and r.content_type == "application/problem+json"


class StoreDown:
    """A store whose database cannot be reached."""

    async def ping(self) -> None:
        raise StoreUnavailable("connection refused by the database")


async def test_readyz_503_says_when_to_ask_again():
    app = web.Application()
    app[STORE] = StoreDown()
    app.router.add_get("/readyz", readyz)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/readyz")
        assert answer.status == 503
        assert answer.headers["Retry-After"] == "5"
        assert (await answer.json())["status"] == "unavailable"
