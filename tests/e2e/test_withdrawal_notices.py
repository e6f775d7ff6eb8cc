"""A withdrawn consent reaches exactly the partners that received data under it (policy
VII.4, issue #19 item 3), and a notice a partner did not accept waits in the outbox until
the partner is back (gateway.rights.outbox), sent once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from e2e.conftest import person, start_gateway
from support.log import logged
from support.sandboxes import SANDBOX_SECRETS

from gateway.crypto.seal import GatewayKeys
from gateway.partners.model import Operation
from gateway.sandbox import start_sandboxes
from gateway.web.keys import LOG, NOTICES, STORE

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000eeee"
PERSON = person(SUBJECT)
UNDER_CONSENT = ("lanexang-insurance", "lao-credit-bureau")


@pytest.fixture
async def live(tmp_config, sandboxes):
    """The gateway against the sandboxes; its outbox loop is left to the test (a long
    interval), which runs rounds itself on a clock it moves."""
    config = replace(tmp_config, notices=replace(tmp_config.notices, interval_s=3600.0))
    client = await start_gateway(config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    yield client
    await client.close()


async def send(client, auth, caller, partner, operation, basis, purpose="service_provision"):
    body = {
        "partner": partner,
        "operation": operation,
        "purpose": purpose,
        "legal_basis": basis,
        "subject": SUBJECT,
        "data": PERSON,
    }
    r = await client.post("/v1/disclosures", json=body, headers=auth(caller))
    assert r.status < 300, await r.text()


async def disclose_under_consent(live, auth) -> str:
    """Two partners receive the subject's data under one consent (and veriid, without a
    notice operation), one on contract, one under another consent of the subject."""
    r = await live.post(
        "/v1/consents",
        json={
            "subject": SUBJECT,
            "purposes": ["service_provision"],
            "partners": [*UNDER_CONSENT, "veriid"],
            "policy_version": "2024-09-30",
        },
        headers=auth("customer-app"),
    )
    assert r.status == 201, await r.text()
    consent_id = (await r.json())["id"]
    await send(live, auth, "sales-service", "lanexang-insurance", "quote", "consent")
    await send(live, auth, "sales-service", "lao-credit-bureau", "credit_check", "consent")
    # veriid receives data under the consent too, but has no operation to take a notice.
    await send(live, auth, "sales-service", "veriid", "verify_identity", "consent")
    await send(live, auth, "payments-service", "bcel-payments", "charge", "contract")
    r = await live.post(
        "/v1/consents",
        json={
            "subject": SUBJECT,
            "purposes": ["marketing"],
            "partners": ["adreach"],
            "policy_version": "2024-09-30",
        },
        headers=auth("customer-app"),
    )
    assert r.status == 201, await r.text()
    marketer = "marketing-service"
    await send(live, auth, marketer, "adreach", "audience_upload", "consent", "marketing")
    return consent_id


def consent_disclosures(sandboxes, partner):
    return [r.disclosure_id for r in sandboxes.received(partner) if r.notice is None]


def notices_to(sandboxes, partner):
    return [r for r in sandboxes.received(partner) if r.notice is not None]


async def withdraw(live, auth, consent_id, body=None):
    """Without the subject's id (the log names the partners), unless `body` names it."""
    r = await live.post(
        f"/v1/consents/{consent_id}/withdraw", json=body, headers=auth("customer-app")
    )
    assert r.status == 200, await r.text()
    return await r.json()


# policy: VII.4 — only the partners that received data under the consent are told.
async def test_withdrawal_notifies_exactly_the_partners_under_that_consent(live, sandboxes, auth):
    consent_id = await disclose_under_consent(live, auth)
    answer = await withdraw(live, auth, consent_id)
    assert answer["withdrawn_at"] is not None
    notices = answer["notices"]
    assert notices["kind"] == "consent_withdrawn"
    assert notices["reference"] == f"CW-{consent_id}"
    sent = {n["partner"]: n for n in notices["notices"]}
    assert set(sent) == set(UNDER_CONSENT)
    assert all(n["status"] == "sent" for n in sent.values())
    [manual] = notices["manual_follow_up"]
    assert manual["partner"] == "veriid" and manual["status"] == "manual"
    assert manual["privacy_contact"] == "privacy@veriid.example"
    for partner in UNDER_CONSENT:
        [notice] = notices_to(sandboxes, partner)
        assert notice.notice == "consent_withdrawn" and notice.operation == "erasure"
        # It names what the partner received under the consent, not whom: no data field.
        assert notice.legal_basis == "legal_obligation" and notice.fields == []
        assert notice.about == consent_disclosures(sandboxes, partner)
    assert notices_to(sandboxes, "bcel-payments") == []  # received data on contract: not told
    assert notices_to(sandboxes, "adreach") == []  # received data under another consent
    assert consent_disclosures(sandboxes, "adreach") != []
    assert notices_to(sandboxes, "veriid") == []
    for n in sent.values():
        entries = await logged(live.server.app, n["disclosure_id"])
        assert [e["kind"] for e in entries] == ["intent", "outcome"]
        assert entries[0]["legal_request_id"] == f"CW-{consent_id}"
    # The subject report shows each notice and its outcome.
    r = await live.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("privacy-office"))
    rows = (await r.json())["disclosures"]
    shown = [(x["partner"], x["outcome"]) for x in rows if x.get("notice") == "consent_withdrawn"]
    assert sorted(shown) == sorted((p, "sent") for p in UNDER_CONSENT)
    # Withdrawing again tells nobody twice: the log shows who was told under the reference.
    again = await withdraw(live, auth, consent_id)
    assert again["notices"]["notices"] == []
    assert again["notices"]["notified_before"] == sorted(UNDER_CONSENT)
    assert all(len(notices_to(sandboxes, p)) == 1 for p in UNDER_CONSENT)


async def test_withdrawal_with_the_wrong_subject_is_refused_and_changes_nothing(
    live, sandboxes, auth
):
    consent_id = await disclose_under_consent(live, auth)
    r = await live.post(
        f"/v1/consents/{consent_id}/withdraw",
        json={"subject": "someone-else"},
        headers=auth("customer-app"),
    )
    assert r.status == 404
    assert "is one of this subject's" in (await r.json(content_type=None))["detail"]
    consents = await live.server.app[STORE].consents_for_subject(SUBJECT)
    assert consents[0].withdrawn_at is None
    assert all(notices_to(sandboxes, p) == [] for p in sandboxes.partners)


async def test_a_refused_withdrawal_leaves_no_action_entry(live, auth):
    """An unknown consent, or a subject the consent is not about, is refused before the
    withdrawal's action entry is written: the log records no act that did not happen."""
    consent_id = await disclose_under_consent(live, auth)
    log = live.server.app[LOG]
    await log.settle()
    size = await log.size()
    for consent, body in (("c-unknown", None), (consent_id, {"subject": "someone-else"})):
        r = await live.post(
            f"/v1/consents/{consent}/withdraw", json=body, headers=auth("customer-app")
        )
        assert r.status == 404
    await log.settle()
    assert await log.size() == size


async def test_a_partner_down_longer_than_the_retries_gets_its_notice_once_back(
    live, sandboxes, auth
):
    consent_id = await disclose_under_consent(live, auth)
    down = sandboxes.partner("lanexang-insurance")
    down.fail_next(down.partner.max_attempts, 503)  # every try of the first attempt
    # Naming the subject still works (and is checked against the consent).
    answer = await withdraw(live, auth, consent_id, {"subject": SUBJECT})
    by_partner = {n["partner"]: n for n in answer["notices"]["notices"]}
    assert by_partner["lao-credit-bureau"]["status"] == "sent"
    kept = by_partner["lanexang-insurance"]
    assert kept["status"] == "failed"
    assert kept["outbox_id"] == f"n-CW-{consent_id}-lanexang-insurance"
    assert notices_to(sandboxes, "lanexang-insurance") == []

    outbox = live.server.app[NOTICES]
    now = datetime.now(UTC)
    outbox.clock = lambda: now
    [row] = await live.server.app[STORE].outbox_notices()
    assert (row.status, row.attempts, row.partner) == ("pending", 1, "lanexang-insurance")
    assert row.last_error == "partner_unavailable"
    assert SUBJECT not in row.payload  # sealed at rest

    now += timedelta(seconds=30)  # not due yet: the first step is a minute
    assert await outbox.run_due() == []
    now += timedelta(seconds=31)  # due; the partner is back
    [done] = await outbox.run_due()
    assert (done.status, done.attempts) == ("sent", 2)
    [notice] = notices_to(sandboxes, "lanexang-insurance")
    assert notice.notice == "consent_withdrawn" and notice.disclosure_id == done.disclosure_id
    assert notice.about == consent_disclosures(sandboxes, "lanexang-insurance")
    # A second withdrawal while it waited would have queued none: one row per partner.
    again = await withdraw(live, auth, consent_id)
    assert again["notices"]["notices"] == []
    assert len(await live.server.app[STORE].outbox_notices()) == 1
    # Nothing is sent twice: later rounds, and a retry by a person, find nothing to send.
    now += timedelta(days=8)
    assert await outbox.run_due() == []
    assert await outbox.retry() == []
    assert len(notices_to(sandboxes, "lanexang-insurance")) == 1
    assert len(notices_to(sandboxes, "lao-credit-bureau")) == 1
    # The subject report shows the failed first attempt and the delivered one.
    r = await live.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("privacy-office"))
    rows = (await r.json())["disclosures"]
    outcomes = [
        x["outcome"]
        for x in rows
        if x.get("notice") == "consent_withdrawn" and x["partner"] == "lanexang-insurance"
    ]
    assert outcomes == ["failed", "sent"]


async def test_an_erasure_notice_not_accepted_waits_in_the_outbox_too(live, sandboxes, auth):
    await disclose_under_consent(live, auth)
    down = sandboxes.partner("bcel-payments")
    down.fail_next(down.partner.max_attempts, 503)
    r = await live.post(
        f"/v1/subjects/{SUBJECT}/erasure",
        json={"kind": "rectification"},
        headers=auth("privacy-office"),
    )
    assert r.status == 200, await r.text()
    result = await r.json()
    by_partner = {n["partner"]: n for n in result["notices"]}
    assert by_partner["bcel-payments"]["status"] == "failed"
    [row] = await live.server.app[STORE].outbox_notices()
    assert row.id == by_partner["bcel-payments"]["outbox_id"]
    assert (row.kind, row.partner, row.reference) == (
        "rectification",
        "bcel-payments",
        result["reference"],
    )
    assert all(n["status"] == "sent" for p, n in by_partner.items() if p != "bcel-payments")
    outbox = live.server.app[NOTICES]
    now = datetime.now(UTC) + timedelta(minutes=2)
    outbox.clock = lambda: now
    [done] = await outbox.run_due()
    assert done.status == "sent"
    [notice] = [r for r in sandboxes.received("bcel-payments") if r.notice is not None]
    assert notice.notice == "rectification"


async def test_a_partner_file_s_notice_operation_takes_the_withdrawal_notice(
    tmp_config, config, partners, auth
):
    # veriid has no erasure operation: without a notice_operation it is left for a person.
    route = Operation(
        "consent_notices",
        "POST",
        "/v2/consent-notices",
        frozenset({"legal"}),
        frozenset({"legal_obligation"}),
        {"uuid": "pseudonym"},
    )
    veriid = partners["veriid"]
    veriid = replace(
        veriid,
        operations={**veriid.operations, route.name: route},
        notice_operation=route.name,
    )
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    routed = {**partners, "veriid": veriid}
    sandboxes = await start_sandboxes(
        routed, config.keys_dir, jwks, SANDBOX_SECRETS, ports=dict.fromkeys(routed, 0)
    )
    settings = replace(tmp_config, notices=replace(tmp_config.notices, interval_s=3600.0))
    live = await start_gateway(settings, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    try:
        consent_id = await disclose_under_consent(live, auth)
        answer = await withdraw(live, auth, consent_id)
    finally:
        await live.close()
        await sandboxes.close()
    by_partner = {n["partner"]: n for n in answer["notices"]["notices"]}
    assert set(by_partner) == {*UNDER_CONSENT, "veriid"}
    assert answer["notices"]["manual_follow_up"] == []
    assert by_partner["veriid"]["status"] == "sent"
    [notice] = notices_to(sandboxes, "veriid")
    assert (notice.notice, notice.operation) == ("consent_withdrawn", "consent_notices")
    assert notice.about == consent_disclosures(sandboxes, "veriid") and notice.fields == []
    # The others still get theirs through their erasure operation.
    assert [n.operation for n in notices_to(sandboxes, "lanexang-insurance")] == ["erasure"]
