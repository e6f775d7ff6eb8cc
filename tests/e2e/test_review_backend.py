"""The review page's backend over the real log: emergency queue, justifications, integrity."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.web.keys import LOG
from gateway.web.review.backend import REVIEW_BACKEND

EMERGENCY = {
    "partner": "vientiane-police",
    "operation": "lawful_disclosure",
    "purpose": "safety_security",
    "legal_basis": "vital_interest",
    "subject": "s-emergency",
    "data": {"name": "N", "phone": "1"},
}


# policy: III.3 — vital interest passes at once but waits in the queue for a justification.
async def test_emergency_queue_until_justified(live, sandboxes, auth):
    r = await live.post("/v1/disclosures", json=EMERGENCY, headers=auth("legal-desk"))
    assert r.status < 300
    disclosure_id = r.headers["Disclosure-Id"]
    public = {**EMERGENCY, "legal_basis": "public_interest"}
    assert (
        await live.post("/v1/disclosures", json=public, headers=auth("legal-desk"))
    ).status < 300
    backend = live.server.app[REVIEW_BACKEND]
    queue = await backend.review_queue()
    assert [item.legal_basis for item in queue] == ["vital_interest", "public_interest"]
    assert queue[0].disclosure_id == disclosure_id and not queue[0].overdue(queue[0].time)

    done = await backend.justify(disclosure_id, "alice", "ambulance request, case 17")
    assert done.reviewer_id == "alice"
    assert [item.disclosure_id for item in await backend.review_queue()] == [queue[1].disclosure_id]
    assert (await backend.justification(disclosure_id)).text == "ambulance request, case 17"
    with pytest.raises(GatewayError) as exc:
        await backend.justify(disclosure_id, "bob", "again")
    assert exc.value.code == "conflict"
    with pytest.raises(GatewayError) as exc:
        await backend.justify("d-unknown", "bob", "x")
    assert exc.value.code == "not_found"


async def test_integrity_and_entry_proof(live, sandboxes, auth):
    r = await live.post("/v1/disclosures", json=EMERGENCY, headers=auth("legal-desk"))
    assert r.status < 300
    backend = live.server.app[REVIEW_BACKEND]
    assert (await backend.verify_entry(0)).status == "pending"
    await live.server.app[LOG].checkpoint()
    check = await backend.verify_entry(0)
    assert check.status == "verified" and check.tree_size == 2
    await backend.audit()
    status = await backend.integrity()
    assert status.ok is True and status.log_size == 2 and status.checkpoint_size == 2
    assert status.root_hash and "2 entries" in status.detail


async def test_metrics_after_a_known_sequence(live, sandboxes, auth):
    assert (
        await live.post("/v1/disclosures", json=EMERGENCY, headers=auth("legal-desk"))
    ).status < 300
    refused = {**EMERGENCY, "legal_basis": "legal_obligation", "purpose": "legal"}
    assert (
        await live.post("/v1/disclosures", json=refused, headers=auth("legal-desk"))
    ).status == 403
    assert (await live.post("/v1/disclosures", json=EMERGENCY)).status == 401
    text = await (await live.get("/metrics")).text()
    assert (
        'gateway_disclosures_total{legal_basis="vital_interest",outcome="sent",'
        'partner="vientiane-police",purpose="safety_security"} 1.0'
    ) in text
    assert 'gateway_refusals_total{problem="legal_request_required"} 1.0' in text
    assert 'gateway_refusals_total{problem="unauthenticated"} 1.0' in text
    assert 'gateway_breaker_state{partner="vientiane-police",state="closed"} 1.0' in text
    assert "gateway_log_append_seconds_count 1.0" in text
    assert "N" not in [line.split(" ")[-1] for line in text.splitlines()]
    assert "s-emergency" not in text
