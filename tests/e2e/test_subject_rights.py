"""Subject rights: "who received my data" (VII.1, VII.5) and erasure notices (VII.2)."""

from __future__ import annotations

import asyncio
import csv
import io

from e2e.conftest import granted, person
from support.log import logged

from gateway.web.keys import STORE

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000dddd"
PERSON = person(SUBJECT)


async def send(
    client,
    auth,
    caller,
    partner,
    operation,
    basis="contract",
    purpose="service_provision",
    subject=SUBJECT,
):
    body = {
        "partner": partner,
        "operation": operation,
        "purpose": purpose,
        "legal_basis": basis,
        "subject": subject,
        "data": PERSON,
    }
    return await client.post("/v1/disclosures", json=body, headers=auth(caller))


async def disclose_to_three(live, auth):
    await granted(live, auth("customer-app"), SUBJECT, ["veriid"])
    assert (
        await send(live, auth, "sales-service", "lao-credit-bureau", "credit_check")
    ).status < 300
    assert (await send(live, auth, "payments-service", "bcel-payments", "charge")).status < 300
    assert (await send(live, auth, "sales-service", "veriid", "verify_identity")).status < 300
    # a refusal (not a disclosure) and another subject's disclosure
    assert (
        await send(live, auth, "sales-service", "lanexang-insurance", "quote", basis="consent")
    ).status == 403
    assert (
        await send(
            live, auth, "sales-service", "lao-credit-bureau", "credit_check", subject="someone-else"
        )
    ).status < 300


# policy: VII.1 access and copy; VII.5 portability as JSON and CSV.
async def test_subject_report_lists_every_recipient(live, sandboxes, auth):
    await disclose_to_three(live, auth)
    r = await live.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("privacy-office"))
    assert r.status == 200, await r.text()
    rows = (await r.json())["disclosures"]
    assert [x["partner"] for x in rows] == ["lao-credit-bureau", "bcel-payments", "veriid"]
    first = rows[0]
    assert first["partner_category"] == "credit_bureau" and first["outcome"] == "sent"
    assert first["fields"]["date_of_birth"] == "year" and first["retention_days"] == 365
    assert first["purpose"] == "service_provision" and first["legal_basis"] == "contract"
    r = await live.get(
        f"/v1/subjects/{SUBJECT}/disclosures?format=csv", headers=auth("privacy-office")
    )
    assert r.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(await r.text())))
    assert [x["partner"] for x in table] == ["lao-credit-bureau", "bcel-payments", "veriid"]
    r = await live.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("sales-service"))
    assert r.status == 403


# policy: VII.2 erasure notices reach exactly the partners that received the data, logged.
async def test_erasure_reaches_exactly_the_recipients(live, sandboxes, auth):
    await disclose_to_three(live, auth)
    before = {p: len(sandboxes.received(p)) for p in sandboxes.partners}
    r = await live.post(
        f"/v1/subjects/{SUBJECT}/erasure", json={"kind": "erasure"}, headers=auth("privacy-office")
    )
    assert r.status == 200, await r.text()
    result = await r.json()
    sent = {n["partner"]: n for n in result["notices"]}
    assert set(sent) == {"lao-credit-bureau", "bcel-payments"}
    assert all(n["status"] == "sent" for n in sent.values())
    assert [m["partner"] for m in result["manual_follow_up"]] == ["veriid"]
    assert result["manual_follow_up"][0]["privacy_contact"] == "privacy@veriid.example"
    after = {p: len(sandboxes.received(p)) for p in sandboxes.partners}
    grew = {p for p in after if after[p] > before[p]}
    assert grew == {"lao-credit-bureau", "bcel-payments"}
    notice = sandboxes.received("bcel-payments")[-1]
    assert notice.operation == "erasure" and notice.legal_basis == "legal_obligation"
    assert notice.fields == ["uuid"]
    for n in sent.values():
        entries = await logged(live.server.app, n["disclosure_id"])
        assert [e["kind"] for e in entries] == ["intent", "outcome"]
        intent = entries[0]
        assert intent["caller"] == "privacy-office"
        assert intent["legal_request_id"] == result["reference"]
    r = await live.post(
        f"/v1/subjects/{SUBJECT}/erasure", json={"kind": "erasure"}, headers=auth("reviewer-alice")
    )
    assert r.status == 403


async def test_erasure_of_unknown_subject_notifies_nobody(live, sandboxes, auth):
    r = await live.post(
        "/v1/subjects/nobody/erasure",
        json={"kind": "rectification"},
        headers=auth("privacy-office"),
    )
    assert (await r.json())["notices"] == []
    r = await live.post(
        "/v1/subjects/nobody/erasure", json={"kind": "shred"}, headers=auth("privacy-office")
    )
    assert r.status == 400


async def test_report_subject_cli(live, sandboxes, auth, tmp_config, tmp_path, capsys):
    import asyncio
    import re

    from gateway.cli.main import main

    await disclose_to_three(live, auth)
    text = tmp_config.path.read_text(encoding="utf-8")
    text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{tmp_config.storage_url}"', text)
    config_file = tmp_config.root / f"config-{tmp_path.name}.toml"
    config_file.write_text(text, encoding="utf-8")
    try:
        code = await asyncio.to_thread(
            main, ["--config", str(config_file), "report", "subject", SUBJECT, "--format", "csv"]
        )
    finally:
        config_file.unlink()
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("time,disclosure_id,partner") and len(lines) == 4


# Outcome entries commit while the answer goes back; this instance's reads wait for them.
async def test_a_report_asked_right_after_the_answer_shows_the_outcome(live, sandboxes, auth):
    store = live.server.app[STORE]
    commit = store.append_log_entries

    async def slow_commit(rows):
        await asyncio.sleep(0.3)  # a slow disk: the outcome is still committing when answered
        return await commit(rows)

    store.append_log_entries = slow_commit
    r = await send(live, auth, "sales-service", "lao-credit-bureau", "credit_check")
    assert r.status < 300, await r.text()
    r = await live.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("privacy-office"))
    assert [(x["partner"], x["outcome"]) for x in (await r.json())["disclosures"]] == [
        ("lao-credit-bureau", "sent")
    ]
