"""Who a withdrawn consent's notices go to, read from the log without the subject's id
(gateway.rights.withdrawal.received_under), on SQLite and PostgreSQL: the intents under
that consent whose partner received the data or may have."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.canonical import timestamp
from gateway.log.entries import row_of
from gateway.rights.withdrawal import already_notified, received_under
from gateway.store import Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def intent(did: str, partner: str, consent_id: str | None, basis: str = "consent", **more):
    return {
        "v": 1,
        "kind": "intent",
        "time": timestamp(T0 + timedelta(minutes=int(did[2:]))),
        "disclosure_id": did,
        "partner": partner,
        "purpose": "service_provision",
        "legal_basis": basis,
        "consent_id": consent_id,
        "subject_ref": f"ref-{did}",
        **more,
    }


def outcome(did: str, partner: str, value: str, **more):
    return {
        "v": 1,
        "kind": "outcome",
        "time": timestamp(T0 + timedelta(minutes=int(did[2:]), seconds=1)),
        "disclosure_id": did,
        "partner": partner,
        "outcome": value,
        **more,
    }


async def test_the_partners_that_received_data_under_the_consent_or_may_have(store: Store):
    await store.migrate()
    entries = [
        intent("d-1", "sent-to", "c-1"),
        outcome("d-1", "sent-to", "sent"),
        intent("d-2", "refused-by", "c-1"),
        outcome("d-2", "refused-by", "failed", partner_status=422),
        intent("d-3", "timed-out", "c-1"),
        outcome("d-3", "timed-out", "failed", maybe_received=True),
        intent("d-4", "crashed", "c-1"),
        outcome("d-4", "crashed", "unknown"),
        intent("d-5", "in-flight", "c-1"),
        intent("d-6", "other-consent", "c-2"),
        outcome("d-6", "other-consent", "sent"),
        intent("d-7", "on-contract", None, basis="contract"),
        outcome("d-7", "on-contract", "sent"),
        intent("d-8", "sent-to", "c-1"),
        outcome("d-8", "sent-to", "sent"),
        # A notice already sent under the reference, carrying d-8's subject reference.
        intent("d-9", "sent-to", None, basis="legal_obligation", legal_request_id="CW-c-1")
        | {"subject_ref": "ref-d-8", "purpose": "legal"},
        outcome("d-9", "sent-to", "sent"),
    ]
    await store.append_log_entries([row_of(e) for e in entries])

    found = await received_under(store, "c-1", T0 - timedelta(days=1))

    assert {p: r.disclosure_ids for p, r in found.items()} == {
        "sent-to": ["d-1", "d-8"],
        "timed-out": ["d-3"],
        "crashed": ["d-4"],
        "in-flight": ["d-5"],
    }
    assert found["sent-to"].subject_ref == "ref-d-8"  # the latest disclosure's
    assert await received_under(store, "c-1", T0 + timedelta(days=1)) == {}
    refs = [r.subject_ref for r in found.values()]
    assert await already_notified(store, refs, "CW-c-1", T0) == {"sent-to"}
    assert await already_notified(store, refs, "CW-c-2", T0) == set()
    assert await already_notified(store, [], "CW-c-1", T0) == set()
