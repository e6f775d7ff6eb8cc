"""gateway.policy.dpv, clause by clause: a consent as a DPV consent record, and a record
read back into the same consent, refused with the DPV member named."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest

from gateway import vocabulary as v
from gateway.config.model import ControllerConfig
from gateway.errors import InvalidRequestError
from gateway.policy import dpv
from gateway.policy.facts import Consent

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONTROLLER = ControllerConfig()
CONSENT = Consent(
    id="c-1",
    subject="S-1",
    purposes=frozenset({"marketing", "service_provision"}),
    partners=frozenset({"veriid", "adreach"}),
    partner_categories=frozenset({"data_analytics"}),
    special_categories=frozenset({"religion", "health_status"}),
    policy_version="2024-09-30",
    obtained_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    expires_at=datetime(2027, 1, 1, tzinfo=UTC),
    method="app",
    evidence="ev-9",
)
SHIPPED = json.loads(resources.files("gateway.policy").joinpath(dpv.CONTEXT_FILE).read_text())


def record_of(consent: Consent = CONSENT, now: datetime = NOW) -> dict[str, Any]:
    return dpv.consent_record(consent, subject=consent.subject, controller=CONTROLLER, now=now)


def posted(**changes: Any) -> dict[str, Any]:
    """The record of CONSENT as a client posts it: the context, no `@id`/`identifier`."""
    body = {"@context": dpv.CONTEXT_PATH, **record_of()}
    del body["@id"], body["identifier"]
    return body | changes


def read(body: object) -> Consent:
    return dpv.parse_consent_record(
        body,
        consent_id="c-new",
        now=NOW,
        controller=CONTROLLER,
        is_our_context=lambda value: value == dpv.CONTEXT_PATH,
    )


def refusal(body: object) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        read(body)
    return caught.value.detail


# -- the context ----------------------------------------------------------------------


def test_the_context_defines_every_term_a_record_uses() -> None:
    terms = SHIPPED["@context"]
    assert terms["dpv"] == "https://w3id.org/dpv#"
    assert terms["gw"] == dpv.GATEWAY_NS
    used: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            used.update(k for k in value if not k.startswith("@"))
            used.update(t for t in [value.get("@type")] if isinstance(t, str))
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    withdrawn = replace(CONSENT, withdrawn_at=NOW)
    walk(record_of(withdrawn, now=datetime(2030, 1, 1, tzinfo=UTC)))
    walk(lapsed_record())
    used.update(dpv.DPV_PURPOSES.values())
    assert used <= set(terms), used - set(terms)
    # Only the two terms DPV lacks are the gateway's own.
    own = {t for t, d in terms.items() if "gw:" in json.dumps(d)} - {"gw"}
    assert own == {"recipientCategory", "evidence"}


# -- a consent → its record -----------------------------------------------------------


def test_the_record_names_the_consent_the_subject_and_the_controller() -> None:
    record = record_of()
    assert record["@id"] == "gw:consent:c-1"
    assert record["@type"] == "ConsentRecord"
    assert record["identifier"] == "c-1"
    assert record["hasDataSubject"] == {"@type": "DataSubject", "identifier": "S-1"}
    assert record["hasDataController"] == {
        "@id": "https://kokkok.example/",
        "@type": "DataController",
        "hasName": "Lao Smart Mobility Co., Ltd",
    }
    assert record["hasLegalBasis"] == "Consent"


def test_every_policy_purpose_is_one_dpv_purpose() -> None:
    assert set(dpv.DPV_PURPOSES) == set(v.PURPOSES)
    assert len(set(dpv.DPV_PURPOSES.values())) == len(v.PURPOSES)  # one to one
    assert record_of()["hasPurpose"] == ["Marketing", "ServiceProvision"]


def test_recipients_categories_and_special_data_are_iris_in_order() -> None:
    record = record_of()
    assert record["hasRecipient"] == ["gw:partner:adreach", "gw:partner:veriid"]
    assert record["recipientCategory"] == ["gw:partner-category:data_analytics"]
    assert record["hasPersonalData"] == [
        {"@id": "gw:field:health_status", "@type": "SpecialCategoryPersonalData"},
        {"@id": "gw:field:religion", "@type": "SpecialCategoryPersonalData"},
    ]


def test_empty_lists_and_texts_are_left_out() -> None:
    bare = replace(
        CONSENT,
        partners=frozenset(),
        special_categories=frozenset(),
        method="",
        evidence="",
        expires_at=None,
    )
    record = record_of(bare)
    assert "hasRecipient" not in record and "hasPersonalData" not in record
    assert "evidence" not in record
    assert record["hasConsentStatus"] == [
        {"@type": "ConsentGiven", "isIndicatedAtTime": "2026-01-02T03:04:05Z"}
    ]


def test_the_policy_version_is_the_privacy_notice() -> None:
    assert record_of()["hasNotice"] == {
        "@id": "gw:privacy-policy:2024-09-30",
        "@type": "PrivacyNotice",
        "version": "2024-09-30",
    }


def test_given_carries_time_method_and_expiry() -> None:
    [given] = record_of()["hasConsentStatus"]
    assert given == {
        "@type": "ConsentGiven",
        "isIndicatedAtTime": "2026-01-02T03:04:05Z",
        "hasIndicationMethod": "app",
        "hasDuration": {"@type": "UntilTimeDuration", "value": "2027-01-01T00:00:00Z"},
    }


def test_expired_once_the_expiry_has_passed_and_withdrawn_in_time_order() -> None:
    at_expiry = record_of(now=datetime(2027, 1, 1, tzinfo=UTC))["hasConsentStatus"]
    assert [s["@type"] for s in at_expiry] == ["ConsentGiven", "ConsentExpired"]
    assert at_expiry[1]["isIndicatedAtTime"] == "2027-01-01T00:00:00Z"
    withdrawn = replace(CONSENT, withdrawn_at=datetime(2026, 3, 1, tzinfo=UTC))
    later = record_of(withdrawn, now=datetime(2028, 1, 1, tzinfo=UTC))["hasConsentStatus"]
    assert [s["@type"] for s in later] == ["ConsentGiven", "ConsentWithdrawn", "ConsentExpired"]
    assert [s["@type"] for s in record_of(withdrawn)["hasConsentStatus"]] == [
        "ConsentGiven",
        "ConsentWithdrawn",
    ]


def lapsed_record(consent: Consent = CONSENT) -> dict[str, Any]:
    return dpv.consent_record(
        consent,
        subject=consent.subject,
        controller=CONTROLLER,
        now=NOW,
        min_consent_version="2026-05-01",
    )


def test_a_consent_under_a_version_below_the_minimum_is_invalidated() -> None:
    # It lapsed ([policy] min_consent_version) and no decision counts it; the record said
    # ConsentGiven alone, as if it still held.
    states = lapsed_record()["hasConsentStatus"]
    assert [s["@type"] for s in states] == ["ConsentGiven", "ConsentInvalidated"]
    assert states[-1] == {"@type": "ConsentInvalidated"}  # the lapse's time is in the log
    withdrawn = replace(CONSENT, withdrawn_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert [s["@type"] for s in lapsed_record(withdrawn)["hasConsentStatus"]] == [
        "ConsentGiven",
        "ConsentWithdrawn",
    ]
    current = replace(CONSENT, policy_version="2026-05-01")
    assert [s["@type"] for s in lapsed_record(current)["hasConsentStatus"]] == ["ConsentGiven"]


def test_times_are_written_in_utc() -> None:
    from datetime import timedelta, timezone

    vientiane = timezone(timedelta(hours=7))
    local = replace(CONSENT, obtained_at=datetime(2026, 1, 2, 10, 4, 5, tzinfo=vientiane))
    assert record_of(local)["hasConsentStatus"][0]["isIndicatedAtTime"] == "2026-01-02T03:04:05Z"


def test_the_document_is_the_context_and_a_graph() -> None:
    document = dpv.consent_records(
        [CONSENT], subject="S-1", controller=CONTROLLER, now=NOW, context="http://g/ctx"
    )
    assert document == {"@context": "http://g/ctx", "@graph": [record_of()]}


# -- a record → a consent -------------------------------------------------------------


def test_a_record_reads_back_the_consent() -> None:
    assert read(posted()) == replace(CONSENT, id="c-new")


def test_full_iris_read_as_their_compact_forms() -> None:
    body = posted(
        hasPurpose=["https://w3id.org/dpv#Marketing", "dpv:ServiceProvision"],
        hasRecipient=["urn:disclosure-gateway:partner:adreach", "gw:partner:veriid"],
        hasPersonalData=[
            "gw:field:health_status",
            {"@id": "urn:disclosure-gateway:field:religion"},
        ],
    )
    assert read(body) == replace(CONSENT, id="c-new")


def test_controller_legal_basis_and_time_may_be_left_out() -> None:
    body = posted()
    del body["hasDataController"], body["hasLegalBasis"]
    body["hasConsentStatus"] = [{"@type": "ConsentGiven"}]
    consent = read(body)
    assert consent.obtained_at == NOW and consent.expires_at is None and consent.method == ""


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"@id": "gw:consent:x"}, "'@id' and 'identifier' are set by the gateway"),
        ({"identifier": "x"}, "'@id' and 'identifier' are set by the gateway"),
        ({"colour": "red"}, "unknown consent record member 'colour'"),
        ({"@context": "https://w3id.org/dpv"}, "'@context' must be the gateway's"),
        ({"@type": "Consent"}, "'@type' must be \"ConsentRecord\""),
        ({"hasDataController": {"@id": "https://other.example/"}}, "'hasDataController' must be"),
        ({"hasLegalBasis": "Contract"}, "'hasLegalBasis' must be \"Consent\""),
        ({"hasDataSubject": "S-1"}, "'hasDataSubject' must be"),
        ({"hasDataSubject": {"identifier": "a b"}}, "'hasDataSubject.identifier'"),
        ({"hasDataSubject": {"@type": "Child", "identifier": "S"}}, "'hasDataSubject.@type'"),
        ({"hasPurpose": []}, "'hasPurpose' must be a list of at least one"),
        ({"hasPurpose": ["Marketing", "Gossip"]}, "'hasPurpose[1]' is not one of"),
        ({"hasRecipient": "gw:partner:adreach"}, "'hasRecipient' must be a list"),
        ({"hasRecipient": ["adreach"]}, "'hasRecipient[0]' must be an IRI gw:partner:"),
        ({"recipientCategory": ["gw:partner-category:x"]}, "'recipientCategory[0]' is not one"),
        (
            {"hasPersonalData": [{"@id": "gw:field:religion", "@type": "Data"}]},
            "'hasPersonalData[0]'",
        ),
        ({"hasPersonalData": ["gw:field:name"]}, "'hasPersonalData[0]' is not one of"),
        ({"hasNotice": "2024-09-30"}, "'hasNotice' must be"),
        ({"hasNotice": {"version": "2024-09-30", "extra": 1}}, "'hasNotice' may hold only"),
        (
            {"hasNotice": {"@id": "gw:privacy-policy:2020-01-01", "version": "2024-09-30"}},
            "'hasNotice.@id'",
        ),
        ({"hasNotice": {"version": "30/09/2024"}}, "'hasNotice.version' must be"),
        ({"hasConsentStatus": []}, "'hasConsentStatus' must be a list of one ConsentGiven"),
        ({"hasConsentStatus": [{"@type": "ConsentWithdrawn"}]}, "'hasConsentStatus[0].@type'"),
        ({"hasConsentStatus": [{"@type": "ConsentGiven", "by": 1}]}, "unknown member 'by'"),
        (
            {"hasConsentStatus": [{"@type": "ConsentGiven", "isIndicatedAtTime": "soon"}]},
            "'hasConsentStatus[0].isIndicatedAtTime' is not an RFC 3339 time",
        ),
        (
            {"hasConsentStatus": [{"@type": "ConsentGiven", "hasDuration": "P1Y"}]},
            "'hasConsentStatus[0].hasDuration' must be",
        ),
        (
            {"hasConsentStatus": [{"@type": "ConsentGiven", "hasIndicationMethod": ""}]},
            "'hasConsentStatus[0].hasIndicationMethod' must be a non-empty string",
        ),
        ({"evidence": 7}, "'evidence' must be a non-empty string"),
    ],
)
def test_each_refusal_names_the_record_member(change: dict[str, Any], says: str) -> None:
    assert says in refusal(posted(**change))


def test_neither_recipients_nor_categories_is_refused_as_the_plain_body() -> None:
    body = posted()
    del body["hasRecipient"], body["recipientCategory"]
    assert "a consent must name 'hasRecipient' or 'recipientCategory'" in refusal(body)


def test_a_refusal_never_repeats_the_value() -> None:
    detail = refusal(posted(hasDataSubject={"identifier": "SECRET id"}))
    assert "SECRET" not in detail


def test_named_for_record_renames_only_quoted_members() -> None:
    renamed = dpv.named_for_record(
        InvalidRequestError(
            "'partners[2]' is unknown; 'expires_at' must be later than 'obtained_at'"
        )
    )
    assert renamed.detail == (
        "'hasRecipient[2]' is unknown; 'hasConsentStatus[0].hasDuration.value' must be later "
        "than 'hasConsentStatus[0].isIndicatedAtTime'"
    )
    assert dpv.named_for_record(InvalidRequestError("partners are people")).detail == (
        "partners are people"
    )
