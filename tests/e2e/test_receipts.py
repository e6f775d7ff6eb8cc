"""Receipts end to end (CONTRACT §4.6): a disclosure through the real gateway to a sandbox
partner, the Link to its receipt, 202 until a checkpoint covers it, then the receipt and
its entry fetched as the calling service and checked by `gateway receipt verify` in a
process of its own, with no config and no database — only the log's public key in a
policy file."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from e2e.conftest import canary, consent_of, credit_check
from support.receipts import verify

import gateway_client as gc
from gateway.log.checkpoint import verifier_key
from gateway.web.keys import LOG

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000cccc"
PERSON = canary()
DISCLOSURE = credit_check(SUBJECT, PERSON)


async def grant_consent(client: TestClient, auth) -> None:
    consent = consent_of(SUBJECT, partners=["lao-credit-bureau"])
    r = await client.post("/v1/consents", json=consent, headers=auth("customer-app"))
    assert r.status == 201, await r.text()


async def test_a_receipt_is_fetched_and_verified_offline(live, auth, tmp_path: Path) -> None:
    await grant_consent(live, auth)
    r = await live.post("/v1/disclosures", json=DISCLOSURE, headers=auth("sales-service"))
    assert r.status in (200, 201), await r.text()
    disclosure_id = r.headers["Disclosure-Id"]
    link = f'</v1/disclosures/{disclosure_id}/receipt>; rel="receipt"'
    assert r.headers["Link"] == link
    url = f"/v1/disclosures/{disclosure_id}/receipt"

    # No checkpoint covers the intent entry yet.
    pending = await live.get(url, headers=auth("sales-service"))
    assert pending.status == 202, await pending.text()
    assert pending.headers["Retry-After"] == "60"
    body = await pending.json()
    assert body["status"] == "pending" and body["retry_after"] == 60
    index = body["index"]

    await live.server.app[LOG].checkpoint()
    got = await live.get(url, headers=auth("sales-service"))
    assert got.status == 200, await got.text()
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert f'filename="{disclosure_id}.tlog-proof"' in got.headers["Content-Disposition"]
    assert got.headers["Link"] == f'</v1/log/entries/{index}>; rel="entry"'
    receipt = await got.text()
    assert receipt.startswith(f"c2sp.org/tlog-proof@v1\nindex {index}\n")
    assert "CANARY" not in receipt and SUBJECT not in receipt

    entry = await live.get(f"/v1/log/entries/{index}", headers=auth("sales-service"))
    assert entry.status == 200, await entry.text()
    entry_text = await entry.text()
    assert "CANARY" not in entry_text and SUBJECT not in entry_text
    key = (await (await live.get("/v1/log/key")).text()).strip()

    (tmp_path / "d.tlog-proof").write_text(receipt, encoding="utf-8")
    (tmp_path / "entry.json").write_text(entry_text, encoding="utf-8")
    (tmp_path / "policy.txt").write_text(f"log {key}\nquorum none\n", encoding="utf-8")
    done = verify(tmp_path, "d.tlog-proof", "--policy", "policy.txt", "--entry", "entry.json")
    assert done.returncode == 0, done.stdout + done.stderr
    origin = key.split("+")[0]
    assert done.stdout.startswith(f"ok: entry {index} of {origin} is in the tree of size ")
    assert done.stdout.strip().endswith("cosigned by no witness (quorum none met)")
    assert done.stdout.count("\n") == 1

    # One proof hash changed (or, with a one-entry tree, the entry): refused, exit 1.
    lines = receipt.split("\n")
    if lines[2]:
        lines[2] = "A" * 43 + "="
        (tmp_path / "bad.tlog-proof").write_text("\n".join(lines), encoding="utf-8")
        bad = verify(tmp_path, "bad.tlog-proof", "--policy", "policy.txt", "--entry", "entry.json")
        assert bad.returncode == 1 and bad.stdout.startswith("FAILED: inclusion: "), bad.stdout
    # A policy of another log (or another key for this origin): refused, exit 1.
    stranger = Ed25519PrivateKey.generate().public_key()
    for name, says in (("other.example/log", "from another log"), (origin, "no signature by")):
        (tmp_path / "other.txt").write_text(f"log {verifier_key(name, stranger)}\nquorum none\n")
        wrong = verify(tmp_path, "d.tlog-proof", "--policy", "other.txt", "--entry", "entry.json")
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert wrong.stdout.startswith("FAILED: log signature: ") and says in wrong.stdout
    # Unusable input: exit 2.
    missing = verify(tmp_path, "nope.tlog-proof", "--policy", "policy.txt", "--entry", "entry.json")
    assert missing.returncode == 2 and "cannot read the receipt" in missing.stderr

    # A reviewer may fetch it too.
    assert (await live.get(url, headers=auth("reviewer-alice"))).status == 200


async def test_other_callers_cannot_fetch_a_receipt_or_its_entry(live, auth) -> None:
    await grant_consent(live, auth)
    r = await live.post("/v1/disclosures", json=DISCLOSURE, headers=auth("sales-service"))
    assert r.status in (200, 201), await r.text()
    disclosure_id = r.headers["Disclosure-Id"]
    receipt_url = f"/v1/disclosures/{disclosure_id}/receipt"
    pending = await live.get(receipt_url, headers=auth("sales-service"))
    index = (await pending.json())["index"]

    for path in (f"/v1/disclosures/{disclosure_id}/receipt", f"/v1/log/entries/{index}"):
        other = await live.get(path, headers=auth("payments-service"))
        assert other.status == 404, await other.text()
        assert other.content_type == "application/problem+json"
    unknown = await live.get("/v1/disclosures/d-unknown/receipt", headers=auth("payments-service"))
    assert unknown.status == 404
    # The outcome entry names no caller: the service whose disclosure it is reads it (its
    # intent says whose), a reviewer too, another service gets the 404 of no such entry.
    outcome_url = f"/v1/log/entries/{index + 1}"
    outcome = await live.get(outcome_url, headers=auth("sales-service"))
    assert outcome.status == 200, await outcome.text()
    assert (await outcome.json())["entry"]["kind"] == "outcome"
    assert (await live.get(outcome_url, headers=auth("reviewer-alice"))).ok
    other = await live.get(outcome_url, headers=auth("payments-service"))
    assert other.status == 404
    no_role = await live.get(
        f"/v1/disclosures/{disclosure_id}/receipt", headers=auth("customer-app")
    )
    assert no_role.status == 403


async def test_a_refused_disclosure_has_no_receipt(live, auth) -> None:
    r = await live.post("/v1/disclosures", json=DISCLOSURE, headers=auth("sales-service"))
    assert r.status == 403, await r.text()
    assert "Link" not in r.headers
    disclosure_id = r.headers["Disclosure-Id"]
    got = await live.get(f"/v1/disclosures/{disclosure_id}/receipt", headers=auth("sales-service"))
    assert got.status == 404
    assert "was refused" in (await got.json())["detail"]


async def test_the_sdk_fetches_a_receipt(live, auth, token) -> None:
    await grant_consent(live, auth)
    async with gc.GatewayClient(str(live.make_url("")), token=token("sales-service")) as sdk:
        answer = await sdk.disclose(**DISCLOSURE)
        with pytest.raises(gc.ReceiptPending) as pending:
            await sdk.receipt(answer.disclosure_id)
        assert pending.value.retry_after == 60
        await live.server.app[LOG].checkpoint()
        receipt = await sdk.receipt(answer.disclosure_id)
        assert receipt.startswith("c2sp.org/tlog-proof@v1\nindex ")
        with pytest.raises(gc.NotFound):
            await sdk.receipt("d-unknown")
