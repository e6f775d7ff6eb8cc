"""`Store.ropa_counts` (gateway.store.ropa_sql) on SQLite and PostgreSQL: what counts as a
disclosure sent in the window, per row and per field, and the consents behind a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.crypto.subject_keys import LogKeys
from gateway.log.entries import intent_entry, outcome_entry, row_of
from gateway.partners.model import Partner
from gateway.policy.decide import Decision
from gateway.policy.facts import Consent
from gateway.policy.request import DisclosureRequest
from gateway.store.base import Store

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def disclosure(
    n: int,
    partner: Partner,
    operation: str,
    purpose: str,
    basis: str,
    fields: tuple[str, ...],
    keys: LogKeys,
    *,
    outcomes: tuple[str, ...] = ("sent",),
    consent_id: str | None = None,
    at: datetime = T0,
) -> list[dict[str, Any]]:
    op = partner.operations[operation]
    at = at + timedelta(minutes=n)
    request = DisclosureRequest(partner.id, operation, purpose, basis, f"s-{n}", {})
    decision = Decision(
        True, None, (), {f: op.fields[f] for f in fields}, (), False, consent_id=consent_id
    )
    intent = intent_entry(
        disclosure_id=f"d-{n}",
        caller="sales-service",
        request=request,
        partner=partner,
        operation=op,
        decision=decision,
        minimized={},
        at=at,
        keys=keys,
        policy_version="2024-09-30",
    )
    return [intent] + [
        outcome_entry(disclosure_id=f"d-{n}", outcome=o, at=at, partner=partner.id, attempts=1)
        for o in outcomes
    ]


def consent(cid: str, withdrawn: bool) -> Consent:
    return Consent(
        cid,
        f"subject-{cid}",
        frozenset({"service_provision"}),
        frozenset({"lao-credit-bureau"}),
        frozenset(),
        frozenset(),
        "2024-09-30",
        T0 - timedelta(days=1),
        withdrawn_at=T0 if withdrawn else None,
        method="app",
        evidence="screen",
    )


async def test_counts_sent_disclosures_in_the_window(
    store: Store, partners: dict[str, Partner], log_keys: LogKeys
) -> None:
    bureau = partners["lao-credit-bureau"]
    row = ("credit_check", "service_provision", "consent")
    for cid, withdrawn in (("c-1", True), ("c-2", True), ("c-3", False)):
        await store.add_consent(consent(cid, withdrawn))
    entries: list[dict[str, Any]] = []
    entries += disclosure(1, bureau, *row, ("name", "uuid"), log_keys, consent_id="c-1")
    entries += disclosure(2, bureau, *row, ("name",), log_keys, consent_id="c-1")
    entries += disclosure(3, bureau, *row, ("name", "phone"), log_keys, consent_id="c-2")
    entries += disclosure(4, bureau, *row, ("name",), log_keys, consent_id="c-3")
    # Not counted: failed, no outcome yet, before the window, after it.
    entries += disclosure(5, bureau, *row, ("date_of_birth",), log_keys, outcomes=("failed",))
    entries += disclosure(6, bureau, *row, ("date_of_birth",), log_keys, outcomes=())
    early = T0 - timedelta(days=30)
    entries += disclosure(7, bureau, *row, ("date_of_birth",), log_keys, at=early)
    entries += disclosure(8, bureau, *row, ("date_of_birth",), log_keys, at=T0 + timedelta(days=30))
    # Counted once although recovery wrote `unknown` before the `sent` arrived.
    entries += disclosure(9, bureau, *row, ("name",), log_keys, outcomes=("unknown", "sent"))
    entries += disclosure(
        10, bureau, "credit_check", "service_provision", "contract", ("uuid",), log_keys
    )
    await store.append_log_entries([row_of(e) for e in entries])

    counts = await store.ropa_counts(T0 - timedelta(days=1), T0 + timedelta(days=1))
    rows = {(r.operation, r.purpose, r.legal_basis): r for r in counts.rows}
    assert set(rows) == {row, ("credit_check", "service_provision", "contract")}
    consent_row = rows[row]
    assert consent_row.partner == "lao-credit-bureau"
    assert consent_row.disclosures == 5
    assert (consent_row.consents, consent_row.consents_withdrawn) == (3, 2)
    assert consent_row.first == T0 + timedelta(minutes=1)
    assert consent_row.last == T0 + timedelta(minutes=9)
    fields = {(f.legal_basis, f.field): f.disclosures for f in counts.fields}
    assert fields == {
        ("consent", "name"): 5,
        ("consent", "uuid"): 1,
        ("consent", "phone"): 1,
        ("contract", "uuid"): 1,
    }
    empty = await store.ropa_counts(T0 + timedelta(days=60), T0 + timedelta(days=61))
    assert empty.rows == () and empty.fields == ()
