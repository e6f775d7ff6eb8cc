"""The one subject-id grammar (gateway/subject_id.py) and the parsers that apply it, and
the checks a consent must pass before it is recorded (gateway/policy/facts.py): pure logic."""

from __future__ import annotations

import argparse
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import GatewayError
from gateway.policy.facts import check_consent_to_record, parse_consent, parse_facts
from gateway.policy.request import parse_disclosure_request
from gateway.rights.lawful_requests import parse_legal_request
from gateway.subject_id import (
    GRAMMAR,
    MAX_SUBJECT_ID,
    check_subject_id,
    is_subject_id,
    subject_id_argument,
)

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
# Every variant holds "RIANT", so an answer that repeated it would be caught.
VARIANTS = {
    "leading space": " s-VARIANT-1",
    "trailing space": "s-VARIANT-1 ",
    "trailing newline": "s-VARIANT-1\n",
    "tab": "s-VARIANT-1\t",
    "no-break space": "s-VARIANT-1\u00a0",
    "zero-width space": "s-VARIANT\u200b-1",
    "zero-width joiner": "s-VARIANT\u200d-1",
    "byte order mark": "\ufeffs-VARIANT-1",
    "soft hyphen": "s-VARIANT\u00ad-1",
    "full-width letters": "ｓ-VARIANT-１",
    "non-breaking hyphen": "s\u2011VARIANT-1",
    "decomposed accent (NFD)": unicodedata.normalize("NFD", "s-VARIANTé-1"),
    "composed accent (NFC)": unicodedata.normalize("NFC", "s-VARIANTé-1"),
    "Cyrillic A": "s-V\u0410RIANT-1",
    "bell": "s-VARIANT-1\x07",
    "NUL": "s-VARIANT-1\x00",
    "slash": "s-VARIANT/1",
    "percent": "s-VARIANT%201",
    "too long": "s-VARIANT-" + "1" * MAX_SUBJECT_ID,
    "empty": "",
}
VALID = (
    "s-1",
    "6f1c2a7e-0000-4000-8000-00000000dddd",
    "customer@example.com",
    "urn:company:customer:42",
    "A_b.C-d:e@f",
    "S-1",
    "x" * MAX_SUBJECT_ID,
    "_leading-underscore",
)
DISCLOSURE = {
    "partner": "lao-credit-bureau",
    "operation": "credit_check",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "subject": "s-1",
    "data": {"uuid": "u-1"},
}
CONSENT = {
    "subject": "s-1",
    "purposes": ["service_provision"],
    "partners": ["lao-credit-bureau"],
    "policy_version": "2024-09-30",
    "obtained_at": "2026-12-01T00:00:00Z",
}
PARTNERS = ("bcel-payments", "lao-credit-bureau", "veriid")


def refused(call: object) -> GatewayError:
    assert callable(call)
    with pytest.raises(GatewayError) as caught:
        call()
    assert caught.value.code == "invalid_request"
    assert "RIANT" not in caught.value.detail and "no-such" not in caught.value.detail
    return caught.value


@pytest.mark.parametrize("subject", VALID)
def test_ids_in_use_today_stay_valid_and_unchanged(subject: str) -> None:
    assert is_subject_id(subject)
    assert check_subject_id(subject) == subject  # case and every character kept
    assert subject_id_argument(subject) == subject
    assert parse_disclosure_request({**DISCLOSURE, "subject": subject}).subject == subject


@pytest.mark.parametrize("name", VARIANTS)
def test_every_other_spelling_is_refused_with_the_grammar_and_without_the_id(name: str) -> None:
    variant = VARIANTS[name]
    assert not is_subject_id(variant)
    error = refused(lambda: check_subject_id(variant))
    assert GRAMMAR in error.detail
    with pytest.raises(argparse.ArgumentTypeError) as usage:
        subject_id_argument(variant)
    assert GRAMMAR in str(usage.value) and "RIANT" not in str(usage.value)
    # The parsers of every body that names a subject.
    refused(lambda: parse_disclosure_request({**DISCLOSURE, "subject": variant}))
    refused(lambda: parse_consent({**CONSENT, "subject": variant}, consent_id="c", now=NOW))
    refused(
        lambda: parse_legal_request(
            {
                "authority": "A",
                "reference": "R",
                "instrument": "I",
                "subjects": ["s-1", variant],
                "partners": ["vientiane-police"],
            },
            registered_by="r",
            known_partners=("vientiane-police",),
            now=NOW,
        )
    )
    refused(
        lambda: parse_facts(
            {
                "legal_requests": [
                    {
                        "id": "LR-1",
                        "status": "approved",
                        "subjects": [variant],
                        "partners": ["vientiane-police"],
                    }
                ]
            },
            now=NOW,
        )
    )


@pytest.mark.parametrize("value", [None, 1, ["s-1"], {"s": 1}, True])
def test_a_subject_that_is_not_a_string_is_refused(value: object) -> None:
    assert not is_subject_id(value)
    refused(lambda: check_subject_id(value))
    refused(lambda: parse_disclosure_request({**DISCLOSURE, "subject": value}))


def test_case_is_kept_two_ids_differing_in_case_are_two_subjects() -> None:
    # Decided in gateway/subject_id.py: folding case would merge two people's consents.
    assert check_subject_id("S-1") != check_subject_id("s-1")


# -- consents with impossible values ---------------------------------------------------


def recorded(**changes: object) -> object:
    consent = parse_consent({**CONSENT, **changes}, consent_id="c-1", now=NOW)
    return check_consent_to_record(
        consent, known_partners=PARTNERS, policy_version="2024-09-30", now=NOW
    )


def test_a_possible_consent_passes() -> None:
    recorded()
    recorded(partners=[], partner_categories=["payment_processor"])
    recorded(policy_version="2023-01-01")  # older: recorded, refused at decisions (VIII)
    recorded(expires_at="2027-12-01T00:00:00Z")
    recorded(obtained_at=(NOW + timedelta(minutes=2)).isoformat())  # the app's clock skew


@pytest.mark.parametrize(
    "partners",
    [
        ["no-such-partner"],
        ["lao-credit-bureau", "no-such-partner"],
        ["LAO-CREDIT-BUREAU"],
        [" lao-credit-bureau"],
        [""],
    ],
)
def test_an_unknown_partner_is_refused_naming_the_onboarded_ones(partners: list[str]) -> None:
    error = refused(lambda: recorded(partners=partners))
    assert "not onboarded" in error.detail and ", ".join(PARTNERS) in error.detail


def test_an_unknown_category_is_refused_by_position_not_value() -> None:
    error = refused(lambda: recorded(partner_categories=["payment_processor", "no-such-category"]))
    assert "'partner_categories[1]'" in error.detail and "payment_processor" in error.detail


@pytest.mark.parametrize("version", ["2024-10-01", "2099-01-01", "9999-12-31"])
def test_a_policy_version_later_than_the_one_in_force_is_refused(version: str) -> None:
    error = refused(lambda: recorded(policy_version=version))
    assert "2024-09-30" in error.detail and "later than the policy in force" in error.detail


@pytest.mark.parametrize("version", ["2024-13-01", "2024-02-30", "0000-00-00", "2024-9-30"])
def test_a_policy_version_that_is_no_date_is_refused(version: str) -> None:
    assert "YYYY-MM-DD" in refused(lambda: recorded(policy_version=version)).detail


@pytest.mark.parametrize(
    "expires_at",
    ["2026-11-30T23:59:59Z", "2026-12-01T00:00:00Z", "2026-12-01", "2026-12-01T07:00:00+07:00"],
)
def test_an_expiry_not_after_the_time_obtained_is_refused(expires_at: str) -> None:
    error = refused(lambda: recorded(expires_at=expires_at))
    assert "'expires_at' must be later than 'obtained_at'" in error.detail


@pytest.mark.parametrize("ahead", [timedelta(minutes=6), timedelta(days=1), timedelta(days=3650)])
def test_a_consent_obtained_in_the_future_is_refused(ahead: timedelta) -> None:
    obtained = (NOW + ahead).isoformat()
    assert "future" in refused(lambda: recorded(obtained_at=obtained)).detail
