"""Two-sided receipts end to end (issue #18 item 6): the gateway against the sandbox partners,
lao-credit-bureau acknowledging with a signed JWS (its shipped file says acknowledgement =
"jws"), lanexang-insurance without the option."""

from __future__ import annotations

import json

import pytest
from support.log import logged

from gateway.cli.main import main
from gateway.crypto.acknowledgement import ACK_STATUS_HEADER, verify_acknowledgement
from gateway.web.keys import LOG, STORE

CREDIT = "lao-credit-bureau"
SUBJECT = "6f1c2a7e-0000-4000-8000-00000000acc0"
PERSON = {
    "name": "CANARY-Somchai",
    "date_of_birth": "1990-04-02",
    "phone": "+85620CANARY",
    "uuid": "CANARY-UUID",
    "gender": "f",
}


def body(partner: str, operation: str, data: dict | None = None) -> dict:
    return {
        "partner": partner,
        "operation": operation,
        "purpose": "service_provision",
        "legal_basis": "consent",
        "subject": SUBJECT,
        "data": data if data is not None else PERSON,
    }


async def grant(client, auth, partners: list[str]) -> None:
    consent = {
        "subject": SUBJECT,
        "purposes": ["service_provision"],
        "partners": partners,
        "policy_version": "2024-09-30",
        "obtained_at": "2026-01-01T00:00:00Z",
        "method": "app",
    }
    r = await client.post("/v1/consents", json=consent, headers=auth("customer-app"))
    assert r.status == 201, await r.text()


async def _disclose(live, auth) -> tuple[str, object]:
    await grant(live, auth, partners=[CREDIT])
    r = await live.post(
        "/v1/disclosures", json=body(CREDIT, "credit_check"), headers=auth("sales-service")
    )
    assert r.status == 201, await r.text()
    return r.headers["Disclosure-Id"], r


async def _outcome(live, auth, disclosure_id: str) -> dict:
    """The outcome entry as a reviewer reads it: GET /v1/log/entries/{index}."""
    app = live.server.app
    await app[LOG].settle()
    rows = await app[STORE].log_entries_for_disclosure(disclosure_id)
    index = next(i for i, raw in rows if json.loads(raw)["kind"] == "outcome")
    r = await live.get(f"/v1/log/entries/{index}", headers=auth("reviewer-alice"))
    assert r.status == 200, await r.text()
    return await r.json()


async def test_a_valid_acknowledgement_is_recorded_and_verifies_offline(
    live, sandboxes, auth, config, tmp_path, capsys
):
    disclosure_id, r = await _disclose(live, auth)
    assert r.headers[ACK_STATUS_HEADER] == "valid"
    answer = await _outcome(live, auth, disclosure_id)
    entry = answer["entry"]
    assert entry["outcome"] == "sent" and "ack_reason" not in entry
    assert entry["ack"].count(".") == 2  # the compact JWS the partner signed
    raw = json.dumps(answer)
    assert "CANARY" not in raw and SUBJECT not in raw and "1990-04-02" not in raw
    public = json.loads((config.root / "keys/partners/lao-credit-bureau.ack.jwk.json").read_text())
    ack = verify_acknowledgement(answer, public)
    assert ack.disclosure_id == disclosure_id
    # The CLI, offline, on the entry as the API answered it.
    saved = tmp_path / "outcome.json"
    saved.write_text(json.dumps(answer), encoding="utf-8")
    key = str(config.root / "keys/partners/lao-credit-bureau.ack.jwk.json")
    capsys.readouterr()
    assert main(["ack", "verify", str(saved), "--partner-key", key]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {CREDIT} acknowledged disclosure {disclosure_id} (received_sha256")
    assert main(["ack", "verify", str(saved), "--partner-key", key, "--sent-hash", "A" * 43]) == 1
    assert "wrong_hash" in capsys.readouterr().out


async def test_a_partner_without_the_option_answers_as_before(live, sandboxes, auth):
    await grant(live, auth, partners=["lanexang-insurance"])
    data = {**PERSON, "brand": "Toyota", "model": "Vios", "car_type": "sedan", "mileage": 1}
    r = await live.post(
        "/v1/disclosures",
        json=body("lanexang-insurance", "quote", data=data),
        headers=auth("sales-service"),
    )
    assert r.status in (200, 201), await r.text()
    assert ACK_STATUS_HEADER not in r.headers
    entries = await logged(live.server.app, r.headers["Disclosure-Id"])
    outcome = entries[-1]
    assert outcome["kind"] == "outcome" and "ack" not in outcome and "ack_reason" not in outcome


@pytest.mark.parametrize(
    "spoil,status",
    [
        ("wrong_hash", "invalid; reason=wrong_hash"),
        ("wrong_key", "invalid; reason=bad_signature"),
        ("wrong_disclosure", "invalid; reason=wrong_disclosure"),
        ("malformed", "invalid; reason=malformed"),
        ("missing", "missing"),
    ],
)
async def test_a_bad_acknowledgement_is_delivered_recorded_invalid_and_counted(
    live, sandboxes, auth, spoil, status
):
    sandboxes.partner(CREDIT).bad_ack(1, spoil)
    disclosure_id, r = await _disclose(live, auth)
    assert r.headers[ACK_STATUS_HEADER] == status  # the status is the partner's, unchanged
    assert [x.disclosure_id for x in sandboxes.received(CREDIT)] == [disclosure_id]
    entry = (await _outcome(live, auth, disclosure_id))["entry"]
    result = "missing" if spoil == "missing" else "invalid"
    reason = status.rsplit("=", 1)[-1]
    assert entry["outcome"] == "sent"
    assert entry["ack"] == result and entry["ack_reason"] == reason
    metrics = await (await live.get("/metrics")).text()
    line = (
        f'gateway_partner_acknowledgements_total{{partner="{CREDIT}",reason="{reason}",'
        f'result="{result}"}} 1.0'
    )
    assert line in metrics
