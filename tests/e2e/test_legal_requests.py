"""Lawful requests: registered, approved by two distinct reviewers, then honoured (III.1(b))."""

from __future__ import annotations

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000cccc"
REQUEST = {
    "authority": "Vientiane Capital Police",
    "reference": "VCP/2026/0042",
    "instrument": "court order 17/2026",
    "subjects": [SUBJECT],
    "partners": ["vientiane-police"],
    "received_at": "2026-11-20T09:00:00Z",
}
DISCLOSURE = {
    "partner": "vientiane-police",
    "operation": "lawful_disclosure",
    "purpose": "legal",
    "legal_basis": "legal_obligation",
    "subject": SUBJECT,
    "data": {"name": "N", "phone": "1", "password": "p"},
}


# policy: III.3 — legal_obligation only after two reviewers approved the lawful request.
async def test_two_distinct_reviewers_then_disclosure_passes(live, sandboxes, auth):
    r = await live.post("/v1/legal-requests", json=REQUEST, headers=auth("privacy-office"))
    assert r.status == 201, await r.text()
    record = await r.json()
    assert record["status"] == "pending" and record["registered_by"] == "privacy-office"
    lr = record["id"]
    disclosure = {**DISCLOSURE, "legal_request": lr}

    r = await live.post("/v1/disclosures", json=disclosure, headers=auth("legal-desk"))
    assert r.status == 403
    assert (await r.json(content_type=None))["type"].endswith("/legal_request_required")

    r = await live.post(f"/v1/legal-requests/{lr}/approve", headers=auth("reviewer-alice"))
    assert (await r.json())["status"] == "pending"
    again = await live.post(f"/v1/legal-requests/{lr}/approve", headers=auth("reviewer-alice"))
    assert again.status == 409
    r = await live.post(f"/v1/legal-requests/{lr}/approve", headers=auth("reviewer-bob"))
    approved = await r.json()
    assert approved["status"] == "approved" and len(approved["approvals"]) == 2

    r = await live.post("/v1/disclosures", json=disclosure, headers=auth("legal-desk"))
    assert r.status < 300, await r.text()
    assert len(sandboxes.received("vientiane-police")) == 1

    other_subject = {**disclosure, "subject": "someone-else"}
    r = await live.post("/v1/disclosures", json=other_subject, headers=auth("legal-desk"))
    assert r.status == 403


async def test_registrant_and_non_reviewers_cannot_approve(gateway, auth):
    r = await gateway.post("/v1/legal-requests", json=REQUEST, headers=auth("reviewer-alice"))
    lr = (await r.json())["id"]
    r = await gateway.post(f"/v1/legal-requests/{lr}/approve", headers=auth("reviewer-alice"))
    assert r.status == 403 and "registered" in (await r.json(content_type=None))["detail"]
    r = await gateway.post(f"/v1/legal-requests/{lr}/approve", headers=auth("legal-desk"))
    assert r.status == 403
    r = await gateway.post("/v1/legal-requests/LR-nope/approve", headers=auth("reviewer-bob"))
    assert r.status == 404
    listing = await (
        await gateway.get("/v1/legal-requests?status=pending", headers=auth("reviewer-bob"))
    ).json()
    assert [x["id"] for x in listing["legal_requests"]] == [lr]
    assert "subjects" not in listing["legal_requests"][0]


async def test_bad_lawful_requests_refused(gateway, auth):
    for bad in (
        {**REQUEST, "partners": ["nobody"]},
        {**REQUEST, "subjects": []},
        {**REQUEST, "authority": ""},
        {**REQUEST, "colour": "red"},
    ):
        r = await gateway.post("/v1/legal-requests", json=bad, headers=auth("privacy-office"))
        assert r.status == 400
    r = await gateway.post("/v1/legal-requests", json=REQUEST, headers=auth("sales-service"))
    assert r.status == 403


async def test_another_reviewer_rejects_with_a_reason(gateway, auth):
    older = {**REQUEST, "received_at": "2026-11-01T09:00:00Z"}
    r = await gateway.post("/v1/legal-requests", json=older, headers=auth("reviewer-alice"))
    first = (await r.json())["id"]
    r = await gateway.post("/v1/legal-requests", json=REQUEST, headers=auth("reviewer-alice"))
    second = (await r.json())["id"]
    url = f"/v1/legal-requests/{first}/reject"

    r = await gateway.post(url, json={"reason": "no seal"}, headers=auth("reviewer-alice"))
    assert r.status == 403 and "cannot also reject" in (await r.json(content_type=None))["detail"]
    r = await gateway.post(url, json={"reason": "no seal"}, headers=auth("privacy-office"))
    assert r.status == 403  # a rights officer registers, only reviewers decide
    for bad in ({}, {"reason": ""}, {"reason": "x" * 2001}, {"reason": "ok", "extra": 1}):
        r = await gateway.post(url, json=bad, headers=auth("reviewer-bob"))
        assert r.status == 400, bad
    r = await gateway.post(url, json={"reason": "no court seal"}, headers=auth("reviewer-bob"))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["status"] == "rejected" and body["rejection"]["reason"] == "no court seal"
    r = await gateway.post(url, json={"reason": "again"}, headers=auth("reviewer-bob"))
    assert r.status == 409
    r = await gateway.post(f"/v1/legal-requests/{first}/approve", headers=auth("reviewer-bob"))
    assert r.status == 409 and r.content_type == "application/problem+json"
    assert "rejected by reviewer-bob" in (await r.json(content_type=None))["detail"]
    r = await gateway.post(
        "/v1/legal-requests/LR-nope/reject", json={"reason": "x"}, headers=auth("reviewer-bob")
    )
    assert r.status == 404

    got = await (
        await gateway.get(f"/v1/legal-requests/{first}", headers=auth("reviewer-bob"))
    ).json()
    assert got["status"] == "rejected" and got["rejection"]["reviewer"] == "reviewer-bob"
    listing = await (await gateway.get("/v1/legal-requests", headers=auth("reviewer-bob"))).json()
    assert [(x["id"], x["status"]) for x in listing["legal_requests"]] == [
        (second, "pending"),
        (first, "rejected"),
    ]
    for status, ids in (("rejected", [first]), ("pending", [second]), ("approved", [])):
        r = await gateway.get(f"/v1/legal-requests?status={status}", headers=auth("reviewer-bob"))
        assert [x["id"] for x in (await r.json())["legal_requests"]] == ids
    r = await gateway.get("/v1/legal-requests?status=nope", headers=auth("reviewer-bob"))
    assert r.status == 400
