"""Log entries hold no personal value; subject references are keyed per month and forgettable;
read back, an entry is a typed record of its bytes."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.canonical import canonical_json
from gateway.crypto.subject_keys import (
    FIRST_PERIOD,
    ForgottenPeriod,
    LogKeys,
    Period,
    forget_before,
    key_file,
)
from gateway.log.columns import columns_of_bytes
from gateway.log.entries import (
    intent_entry,
    outcome_entry,
    refused_entry,
    refused_without_request,
    row_of,
)
from gateway.log.merkle import leaf_hash
from gateway.log.record import ENTRY_MEMBERS, EntryRecord, NotAnEntry
from gateway.partners.model import Partner
from gateway.policy.decide import Decision
from gateway.policy.request import DisclosureRequest

NOV = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
DEC = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
SUBJECT = "CANARY-SUBJECT-6f1c2a7e"
DATA = {
    "name": "CANARY-Somchai Phommasane",
    "phone": "+856 20 CANARY 11",
    "email": "canary.person@example.com",
    "date_of_birth": "1990-04-02",
}
CANARIES = [SUBJECT, "CANARY", "Somchai", "+856", "canary.person", "1990-04-02"]


@pytest.fixture
def keys(tmp_path: Path) -> LogKeys:
    return LogKeys.load(tmp_path / "keys")


def request() -> DisclosureRequest:
    return DisclosureRequest(
        partner="lao-credit-bureau",
        operation="credit_check",
        purpose="service_provision",
        legal_basis="consent",
        subject=SUBJECT,
        data=DATA,
    )


def decision(allowed: bool = True) -> Decision:
    return Decision(
        allowed=allowed,
        problem=None if allowed else "consent_required",
        reasons=() if allowed else ("no consent of the subject covers lao-credit-bureau",),
        disclosed={"name": "keep", "phone": "keep", "date_of_birth": "year"} if allowed else {},
        withheld=("email",),
        needs_review=False,
        consent_id="c-1" if allowed else None,
    )


def entries(keys: LogKeys, partners: dict[str, Partner]) -> list[dict[str, object]]:
    partner = partners["lao-credit-bureau"]
    common = {"disclosure_id": "d-1", "caller": "sales-service", "request": request()}
    return [
        intent_entry(
            **common,  # type: ignore[arg-type]
            partner=partner,
            operation=partner.operations["credit_check"],
            decision=decision(),
            minimized={"name": DATA["name"], "phone": DATA["phone"], "date_of_birth": "1990"},
            at=NOV,
            keys=keys,
            policy_version="2024-09-30",
        ),
        outcome_entry(
            disclosure_id="d-1", outcome="sent", at=NOV, partner=partner.id, partner_status=201
        ),
        refused_entry(
            **common,  # type: ignore[arg-type]
            partner=partner,
            decision=decision(allowed=False),
            at=NOV,
            keys=keys,
            policy_version="2024-09-30",
        ),
    ]


def test_no_personal_value_reaches_the_entry_bytes(
    keys: LogKeys, partners: dict[str, Partner]
) -> None:
    for entry in entries(keys, partners):
        raw = row_of(entry).entry.decode("utf-8")
        for canary in CANARIES:
            assert canary not in raw, (entry["kind"], canary)
    intent = entries(keys, partners)[0]
    assert intent["subject_ref"] == keys.subject_ref(SUBJECT, NOV)
    assert intent["fields"] == {"name": "keep", "phone": "keep", "date_of_birth": "year"}
    assert intent["data_digest"] == keys.data_digest(
        {"name": DATA["name"], "phone": DATA["phone"], "date_of_birth": "1990"}, NOV
    )


def test_the_row_is_the_bytes_and_leaf_hash_its_columns_are_projected_from(
    keys: LogKeys, partners: dict[str, Partner]
) -> None:
    rows = [row_of(e) for e in entries(keys, partners)]
    assert all(row.leaf_hash == leaf_hash(row.entry) for row in rows)
    intent, outcome, refused = (columns_of_bytes(row.entry) for row in rows)
    assert (intent.kind, intent.purpose, intent.legal_basis, intent.outcome) == (
        "intent",
        "service_provision",
        "consent",
        None,
    )
    assert (outcome.kind, outcome.outcome, outcome.subject_ref) == ("outcome", "sent", None)
    assert refused.outcome == "refused"
    assert intent.time == NOV


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "note", "disclosure_id": "d", "time": "2026-11-24T00:00:00Z"}, "kind"),
        ({"kind": "intent", "time": "2026-11-24T00:00:00Z"}, "disclosure_id"),
        ({"kind": "intent", "disclosure_id": "d", "time": "2026-11-24T00:00:00"}, "time zone"),
        ({"kind": "intent", "disclosure_id": "d", "time": "yesterday"}, "time zone"),
    ],
)
def test_an_entry_the_projector_could_not_read_is_never_a_row(
    entry: dict[str, str], message: str
) -> None:
    # The log cannot take it back, and `log verify` would name it forever.
    with pytest.raises(ValueError, match=message):
        row_of(entry)


def test_entry_bytes_are_canonical_and_reproducible(
    keys: LogKeys, partners: dict[str, Partner]
) -> None:
    for entry in entries(keys, partners):
        raw = row_of(entry).entry
        assert canonical_json(json.loads(raw)) == raw
        assert raw.startswith(b'{"') and b'": ' not in raw and b'", "' not in raw


def test_references_are_keyed_per_month(keys: LogKeys) -> None:
    assert keys.subject_ref(SUBJECT, NOV) == keys.subject_ref(SUBJECT, NOV.replace(day=1))
    assert keys.subject_ref(SUBJECT, NOV) != keys.subject_ref(SUBJECT, DEC)
    assert keys.subject_ref(SUBJECT, NOV) != keys.subject_ref("another subject", NOV)
    assert keys.data_digest({"a": 1}, NOV) != keys.data_digest({"a": 1}, DEC)
    assert keys.data_digest({"a": 1}, NOV) != keys.subject_ref('{"a":1}', NOV)


def test_key_file_is_private_and_shared_by_every_loader(tmp_path: Path) -> None:
    first, second = LogKeys.load(tmp_path), LogKeys.load(tmp_path)
    mode = stat.S_IMODE(key_file(tmp_path).stat().st_mode)
    assert mode == 0o600
    assert first.first_period == FIRST_PERIOD
    assert first.subject_ref(SUBJECT, NOV) == second.subject_ref(SUBJECT, NOV)
    assert LogKeys.load(tmp_path / "other").subject_ref(SUBJECT, NOV) != first.subject_ref(
        SUBJECT, NOV
    )


def test_subject_refs_cover_every_period_still_held(keys: LogKeys) -> None:
    refs = keys.subject_refs(SUBJECT, until=NOV)
    months = (2026 - FIRST_PERIOD.year) * 12 + 11 - FIRST_PERIOD.month + 1
    assert len(refs) == months
    assert refs[-1] == keys.subject_ref(SUBJECT, NOV)
    assert keys.subject_refs(SUBJECT, since=NOV, until=DEC) == [
        keys.subject_ref(SUBJECT, NOV),
        keys.subject_ref(SUBJECT, DEC),
    ]


def test_forget_before_destroys_earlier_keys_and_keeps_later_ones(tmp_path: Path) -> None:
    keys = LogKeys.load(tmp_path)
    october, november = datetime(2026, 10, 31, 23, tzinfo=UTC), NOV
    before = (keys.subject_ref(SUBJECT, october), keys.subject_ref(SUBJECT, november))

    old, new = forget_before(tmp_path, Period(2026, 11), now=lambda: DEC)

    assert (old, new) == (FIRST_PERIOD, Period(2026, 11))
    again = LogKeys.load(tmp_path)
    assert again.first_period == Period(2026, 11)
    with pytest.raises(ForgottenPeriod):
        again.subject_ref(SUBJECT, october)
    assert again.subject_ref(SUBJECT, november) == before[1]
    assert again.subject_refs(SUBJECT, until=DEC)[0] == before[1]
    assert before[0] not in again.subject_refs(SUBJECT, until=DEC)
    assert str(FIRST_PERIOD) not in key_file(tmp_path).read_text()
    # Forgetting again up to the same month (or earlier) changes nothing.
    assert forget_before(tmp_path, Period(2026, 3), now=lambda: DEC) == (new, new)


def test_the_current_month_cannot_be_forgotten(tmp_path: Path) -> None:
    LogKeys.load(tmp_path)
    with pytest.raises(ValueError, match="still written"):
        forget_before(tmp_path, Period(2027, 1), now=lambda: DEC)


def test_drop_before_forgets_in_memory_only(tmp_path: Path) -> None:
    keys = LogKeys.load(tmp_path)
    ref = keys.subject_ref(SUBJECT, NOV)
    keys.drop_before(Period(2026, 11))
    with pytest.raises(ForgottenPeriod):
        keys.subject_ref(SUBJECT, datetime(2026, 10, 1, tzinfo=UTC))
    assert keys.subject_ref(SUBJECT, NOV) == ref
    assert LogKeys.load(tmp_path).first_period == FIRST_PERIOD


def test_periods() -> None:
    assert Period.of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)).next() == Period(2027, 1)
    assert Period(2027, 1).previous() == Period(2026, 12)
    assert Period.parse("2026-02") == Period(2026, 2) and str(Period(2026, 2)) == "2026-02"
    with pytest.raises(ValueError):
        Period.parse("2026-13")
    with pytest.raises(ValueError, match="naive"):
        Period.of(datetime(2026, 1, 1))


# -- read back ---------------------------------------------------------------------------


def records(keys: LogKeys, partners: dict[str, Partner]) -> list[EntryRecord]:
    return [
        EntryRecord.parse(index, row_of(entry).entry)
        for index, entry in enumerate(entries(keys, partners))
    ]


def test_an_intent_reads_as_typed_members(keys: LogKeys, partners: dict[str, Partner]) -> None:
    intent = records(keys, partners)[0]
    assert (intent.index, intent.kind, intent.disclosure_id) == (0, "intent", "d-1")
    assert intent.time == "2026-11-24T09:30:00.000Z"
    assert intent.at == NOV
    assert (intent.caller, intent.partner, intent.operation) == (
        "sales-service",
        "lao-credit-bureau",
        "credit_check",
    )
    assert (intent.purpose, intent.legal_basis) == ("service_provision", "consent")
    assert intent.subject_ref == keys.subject_ref(SUBJECT, NOV)
    assert intent.fields == {"name": "keep", "phone": "keep", "date_of_birth": "year"}
    assert intent.withheld == ("email",)
    assert intent.needs_review is False
    assert intent.consent_id == "c-1"
    assert intent.retention_days == partners["lao-credit-bureau"].retention_days
    assert intent.instance is None  # stamped by the in-flight log, not by the builder
    assert (intent.outcome, intent.problem, intent.reasons) == (None, None, ())


def test_outcomes_and_refusals_read_as_typed_members(
    keys: LogKeys, partners: dict[str, Partner]
) -> None:
    _, outcome, refused = records(keys, partners)
    assert (outcome.kind, outcome.outcome, outcome.partner_status) == ("outcome", "sent", 201)
    assert outcome.maybe_received is False
    assert outcome.fields == {}
    assert (refused.kind, refused.problem) == ("refused", "consent_required")
    assert refused.reasons == ("no consent of the subject covers lao-credit-bureau",)
    early = EntryRecord.parse(
        7,
        row_of(
            refused_without_request(
                disclosure_id="d-2",
                caller="sales-service",
                problem="invalid_json",
                reason="refused before the request was read: invalid_json",
                at=datetime(2026, 12, 1, tzinfo=UTC),
                policy_version="2024-09-30",
            )
        ).entry,
    )
    assert (early.partner, early.operation, early.purpose, early.subject_ref) == (None,) * 4


def test_the_record_keeps_the_bytes_and_the_object(
    keys: LogKeys, partners: dict[str, Partner]
) -> None:
    for record, entry in zip(records(keys, partners), entries(keys, partners), strict=True):
        assert record.raw == row_of(entry).entry
        assert record.data == entry


def test_every_member_a_builder_writes_is_listed(
    keys: LogKeys, partners: dict[str, Partner]
) -> None:
    for entry in entries(keys, partners):
        assert set(entry) <= set(ENTRY_MEMBERS), set(entry) - set(ENTRY_MEMBERS)
    assert len(set(ENTRY_MEMBERS)) == len(ENTRY_MEMBERS)


@pytest.mark.parametrize("junk", [b"", b"{", b"[]", b'"intent"'])
def test_bytes_that_are_no_object_are_not_an_entry(junk: bytes) -> None:
    with pytest.raises(NotAnEntry):
        EntryRecord.parse(0, junk)
