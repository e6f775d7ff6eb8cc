"""decide(): one test per decision row of docs/policy/POLICY-MAP.md, clause by clause.

Each test is tagged `# policy: <clause>` and fails if its rule is removed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gateway.config.model import Caller, PolicyConfig
from gateway.partners.model import Partner
from gateway.policy.decide import PROBLEM_ORDER, Decision, decide
from gateway.policy.facts import Consent, LegalRequest, SubjectFacts
from gateway.policy.request import DisclosureRequest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
POLICY = PolicyConfig("2024-09-30", date(2024, 9, 19), date(2024, 9, 30), "2024-09-30")
SUBJECT = "6f1c2a7e-0000-4000-8000-000000000001"
ANYONE = Caller("svc", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}))


def request(
    partner: str = "lao-credit-bureau",
    operation: str = "credit_check",
    *,
    purpose: str = "service_provision",
    basis: str = "consent",
    data: dict[str, Any] | None = None,
    legal_request: str | None = None,
    subject: str = SUBJECT,
) -> DisclosureRequest:
    payload = (
        data
        if data is not None
        else {
            "name": "Somchai",
            "date_of_birth": "1990-04-02",
            "phone": "+85620555123",
            "uuid": "u-1",
            "password": "hunter2",
        }
    )
    return DisclosureRequest(partner, operation, purpose, basis, subject, payload, legal_request)


def consent(**changes: Any) -> Consent:
    base = Consent(
        id="c-1",
        subject=SUBJECT,
        purposes=frozenset({"service_provision"}),
        partners=frozenset({"lao-credit-bureau"}),
        partner_categories=frozenset(),
        special_categories=frozenset(),
        policy_version="2024-09-30",
        obtained_at=NOW - timedelta(days=30),
    )
    return replace(base, **changes)


def run(
    req: DisclosureRequest,
    partners: dict[str, Partner],
    facts: SubjectFacts | None = None,
    caller: Caller = ANYONE,
    policy: PolicyConfig = POLICY,
) -> Decision:
    return decide(req, caller, partners, facts or SubjectFacts(), policy, NOW)


def test_allowed_with_live_consent_minimizes_and_names_consent(partners):
    d = run(request(), partners, SubjectFacts(consents=(consent(),)))
    assert d.allowed and d.problem is None and d.reasons == ()
    assert d.disclosed == {
        "name": "keep",
        "date_of_birth": "year",
        "phone": "keep",
        "uuid": "pseudonym",
    }
    assert d.consent_id == "c-1"
    assert "password" in d.withheld


# policy: I.1 collection table — unknown fields withheld, password never leaves.
def test_unknown_field_and_password_withheld(partners):
    data = {"name": "x", "uuid": "u", "password": "p", "shoe_size": 42, "email": "a@b"}
    d = run(request(data=data), partners, SubjectFacts(consents=(consent(),)))
    assert d.allowed
    assert set(d.withheld) == {"password", "shoe_size", "email"}
    assert "password" not in d.disclosed and "shoe_size" not in d.disclosed


# policy: I.1 "does not collect sensitive information … except with user consent"
def test_special_category_needs_explicit_consent_naming_it(partners):
    req = request(
        "lanexang-insurance",
        "health_underwriting",
        data={"name": "x", "health_status": "diabetic", "uuid": "u"},
    )
    plain = consent(partners=frozenset({"lanexang-insurance"}))
    refused = run(req, partners, SubjectFacts(consents=(plain,)))
    assert refused.problem == "explicit_consent_required"
    assert "health_status" in refused.detail
    explicit = replace(plain, special_categories=frozenset({"health_status"}))
    assert run(req, partners, SubjectFacts(consents=(explicit,))).allowed


# policy: I.1 — special categories pass only under basis consent.
def test_special_category_refused_under_other_basis(partners, monkeypatch):
    insurer = partners["lanexang-insurance"]
    op = insurer.operations["health_underwriting"]
    widened = replace(
        insurer,
        operations={
            "health_underwriting": replace(op, legal_bases=frozenset({"consent", "contract"}))
        },
    )
    req = request(
        "lanexang-insurance",
        "health_underwriting",
        basis="contract",
        data={"health_status": "x", "uuid": "u"},
    )
    d = run(req, {**partners, "lanexang-insurance": widened})
    assert d.problem == "explicit_consent_required"


# policy: I.1 "prevention of underage registration (under 14)"
@pytest.mark.parametrize(
    "basis,purpose,expected",
    [
        ("consent", "service_provision", "subject_under_age"),
        ("contract", "service_provision", None),
    ],
)
def test_under_14_refused_for_consent_from_payload(partners, basis, purpose, expected):
    child = {"name": "x", "date_of_birth": "2015-01-01", "uuid": "u"}
    d = run(
        request(basis=basis, purpose=purpose, data=child),
        partners,
        SubjectFacts(consents=(consent(),)),
    )
    assert d.problem == expected


# policy: I.1 under 14 — from the stored profile when the payload has no date of birth.
def test_under_14_from_profile_and_marketing(partners):
    facts = SubjectFacts(
        consents=(consent(purposes=frozenset({"marketing"}), partners=frozenset({"adreach"})),),
        date_of_birth=date(2014, 6, 1),
    )
    req = request(
        "adreach", "audience_upload", purpose="marketing", data={"email": "kid@example.com"}
    )
    assert run(req, partners, facts).problem == "subject_under_age"
    grown = replace(facts, date_of_birth=date(2000, 6, 1))
    assert run(req, partners, grown).allowed


# policy: I.1 under 14 — after an erasure the profile keeps only "under 14 until DATE":
# it refuses as the date of birth did until that day, then no more; a payload's adult
# date does not lift it, and a contract disclosure is not touched.
@pytest.mark.parametrize(
    "until,sent,basis,purpose,expected",
    [
        (NOW.date() + timedelta(days=1), None, "consent", "service_provision", "subject_under_age"),
        (
            NOW.date() + timedelta(days=1),
            "1990-04-02",
            "consent",
            "service_provision",
            "subject_under_age",
        ),
        (NOW.date() + timedelta(days=400), None, "consent", "marketing", "subject_under_age"),
        (NOW.date() + timedelta(days=1), None, "contract", "service_provision", None),
        (NOW.date(), None, "consent", "service_provision", None),
        (NOW.date() - timedelta(days=1), None, "consent", "service_provision", None),
    ],
)
def test_under_age_marker_refuses_until_its_day(partners, until, sent, basis, purpose, expected):
    data = {"name": "x", "uuid": "u"} | ({} if sent is None else {"date_of_birth": sent})
    facts = SubjectFacts(
        consents=(consent(purposes=frozenset({"service_provision", "marketing"})),),
        under_age_until=until,
    )
    d = run(request(basis=basis, purpose=purpose, data=data), partners, facts)
    if purpose == "marketing":  # credit_check does not serve marketing; the age rule still ranks
        assert any("under 14" in r and "stored profile" in r for r in d.reasons), d.reasons
        return
    assert d.problem == expected, d.reasons


# policy: I.1 under 14 — the most protective fact wins: a payload cannot make a stored
# child an adult, nor a stored adult hide a child the payload shows.
@pytest.mark.parametrize(
    "sent,stored,basis,purpose,expected",
    [
        ("1990-04-02", date(2016, 1, 1), "consent", "service_provision", "subject_under_age"),
        ("2000-01-01", date(2013, 12, 31), "consent", "service_provision", "subject_under_age"),
        ("2016-01-01", date(1990, 4, 2), "consent", "service_provision", "subject_under_age"),
        ("2016-01-01", date(2015, 3, 3), "consent", "service_provision", "subject_under_age"),
        ("1990-04-02", date(2016, 1, 1), "consent", "marketing", "subject_under_age"),
        # both adult but different: which is true is not the gateway's to guess
        ("1990-04-02", date(1991, 4, 2), "consent", "service_provision", "date_of_birth_conflict"),
        (
            "1990-04-02",
            date(2012, 11, 23),
            "contract",
            "service_provision",
            "date_of_birth_conflict",
        ),
        ("1990-04-02", date(1990, 4, 2), "consent", "service_provision", None),
        (None, date(1990, 4, 2), "consent", "service_provision", None),
        ("1990-04-02", None, "consent", "service_provision", None),
    ],
)
def test_age_rule_holds_on_the_youngest_date_known(
    partners, sent, stored, basis, purpose, expected
):
    data = {"name": "x", "uuid": "u"} | ({} if sent is None else {"date_of_birth": sent})
    facts = SubjectFacts(
        consents=(consent(purposes=frozenset({"service_provision", "marketing"})),),
        date_of_birth=stored,
    )
    d = run(request(basis=basis, purpose=purpose, data=data), partners, facts)
    if purpose == "marketing":  # credit_check does not serve marketing; the age rule still ranks
        assert "subject_under_age" in [r.split(":")[0] for r in d.reasons] or d.problem
        assert any("under 14" in r for r in d.reasons)
        return
    assert d.problem == expected, d.reasons
    if expected == "date_of_birth_conflict":
        assert "stored profile" in d.detail and "1990" not in d.detail  # sources, never values


def test_conflicting_adult_dates_pass_on_legal_and_vital_bases(partners):
    approved = LegalRequest(
        "LR-1", "approved", frozenset({SUBJECT}), frozenset({"vientiane-police"})
    )
    for basis in ("legal_obligation", "vital_interest"):
        req = request(
            "vientiane-police",
            "lawful_disclosure",
            purpose="legal",
            basis=basis,
            data={"name": "x", "date_of_birth": "1990-04-02"},
            legal_request="LR-1" if basis == "legal_obligation" else None,
        )
        facts = SubjectFacts(date_of_birth=date(1985, 1, 1), legal_requests={"LR-1": approved})
        assert run(req, partners, facts).problem is None


def test_date_conflict_ranks_right_after_the_age_rule():
    order = list(PROBLEM_ORDER)
    assert order.index("date_of_birth_conflict") == order.index("subject_under_age") + 1


# policy: I.1 under 14 — legal_obligation and vital_interest still pass.
@pytest.mark.parametrize("basis", ["legal_obligation", "vital_interest"])
def test_under_14_legal_and_vital_still_pass(partners, basis):
    approved = LegalRequest(
        "LR-1", "approved", frozenset({SUBJECT}), frozenset({"vientiane-police"})
    )
    req = request(
        "vientiane-police",
        "lawful_disclosure",
        purpose="legal",
        basis=basis,
        data={"name": "x", "date_of_birth": "2016-02-02"},
        legal_request="LR-1" if basis == "legal_obligation" else None,
    )
    d = run(req, partners, SubjectFacts(legal_requests={"LR-1": approved}))
    assert d.allowed, d.reasons


# policy: I.1 "Customers can refuse consent … may limit service" — the refusal names the gap.
def test_refusal_detail_names_missing_consent(partners):
    d = run(request(), partners)
    assert d.problem == "consent_required"
    assert "service_provision" in d.detail and "lao-credit-bureau" in d.detail
    assert "credit_bureau" in d.detail


# policy: II purposes 1-6
def test_purpose_not_served_by_operation(partners):
    d = run(
        request(purpose="research_development"),
        partners,
        SubjectFacts(consents=(consent(purposes=frozenset({"research_development"})),)),
    )
    assert d.problem == "purpose_not_allowed"
    assert "'research_development' not among ['safety_security', 'service_provision']" in d.detail


# policy: II.6 marketing needs consent, no other basis.
def test_marketing_needs_consent_basis(partners):
    adreach = partners["adreach"]
    op = adreach.operations["audience_upload"]
    widened = replace(
        adreach,
        operations={
            "audience_upload": replace(op, legal_bases=frozenset({"consent", "public_interest"}))
        },
    )
    req = request(
        "adreach",
        "audience_upload",
        purpose="marketing",
        basis="public_interest",
        data={"email": "a@b"},
    )
    d = run(req, {**partners, "adreach": widened})
    assert d.problem == "legal_basis_not_allowed"
    assert "marketing" in d.detail


# policy: II.6 "unsubscribe … opt out" — withdrawal stops marketing, contract service unaffected.
def test_marketing_stops_on_withdrawal_contract_unaffected(partners):
    marketing = consent(
        id="m-1",
        purposes=frozenset({"marketing"}),
        partners=frozenset({"adreach"}),
        withdrawn_at=NOW - timedelta(seconds=1),
    )
    facts = SubjectFacts(consents=(marketing,))
    ad = request("adreach", "audience_upload", purpose="marketing", data={"email": "a@b"})
    assert run(ad, partners, facts).problem == "consent_withdrawn"
    charge = request(
        "bcel-payments",
        "charge",
        basis="contract",
        data={"uuid": "u", "amount": 10, "currency": "LAK"},
    )
    assert run(charge, partners, facts).allowed


# policy: III.1 — basis must be one the operation allows.
def test_basis_not_allowed_by_operation(partners):
    d = run(request(basis="vital_interest"), partners)
    assert d.problem == "legal_basis_not_allowed"
    assert "'vital_interest' not among ['consent', 'contract']" in d.detail


# policy: III.1(a) contract only for service_provision/user_support/safety_security.
def test_contract_only_for_service_purposes(partners):
    insight = partners["insight-analytics"]
    op = insight.operations["usage_events"]
    widened = replace(
        insight,
        operations={"usage_events": replace(op, legal_bases=frozenset({"consent", "contract"}))},
    )
    req = request(
        "insight-analytics",
        "usage_events",
        purpose="research_development",
        basis="contract",
        data={"uuid": "u"},
    )
    d = run(req, {**partners, "insight-analytics": widened})
    assert d.problem == "legal_basis_not_allowed"
    assert "contract" in d.detail
    assert run(request(basis="contract"), partners).allowed


# policy: III.1(a)(c) consent must cover subject, purpose and partner (or its category).
def test_consent_coverage(partners):
    other_subject = consent(subject="someone-else")
    other_partner = consent(partners=frozenset({"veriid"}))
    other_purpose = consent(purposes=frozenset({"marketing"}))
    for c in (other_subject, other_partner, other_purpose):
        assert run(request(), partners, SubjectFacts(consents=(c,))).problem == "consent_required"
    by_category = consent(partners=frozenset(), partner_categories=frozenset({"credit_bureau"}))
    assert run(request(), partners, SubjectFacts(consents=(by_category,))).allowed


# policy: III.1 / VII.4 consent withdrawn.
def test_consent_withdrawn(partners):
    withdrawn = consent(withdrawn_at=NOW)
    assert (
        run(request(), partners, SubjectFacts(consents=(withdrawn,))).problem == "consent_withdrawn"
    )
    # Another instance's clock may run ahead: a recorded withdrawal binds all the same.
    ahead = consent(withdrawn_at=NOW + timedelta(seconds=1))
    assert run(request(), partners, SubjectFacts(consents=(ahead,))).problem == "consent_withdrawn"


# policy: III.1 consent expired.
def test_consent_expired(partners):
    expired = consent(expires_at=NOW - timedelta(days=1))
    assert run(request(), partners, SubjectFacts(consents=(expired,))).problem == "consent_expired"


# policy: III.1 a live consent wins over a dead one.
def test_live_consent_among_dead_ones(partners):
    facts = SubjectFacts(
        consents=(consent(id="old", withdrawn_at=NOW - timedelta(days=1)), consent(id="new"))
    )
    d = run(request(), partners, facts)
    assert d.allowed and d.consent_id == "new"


# policy: III.1(b) legal_obligation needs an approved lawful request covering subject and partner.
def test_legal_obligation_needs_approved_request(partners):
    def police(ref: str | None) -> DisclosureRequest:
        return request(
            "vientiane-police",
            "lawful_disclosure",
            purpose="legal",
            basis="legal_obligation",
            data={"name": "x"},
            legal_request=ref,
        )

    pending = LegalRequest("LR-1", "pending", frozenset({SUBJECT}), frozenset({"vientiane-police"}))
    wrong_subject = LegalRequest(
        "LR-2", "approved", frozenset({"other"}), frozenset({"vientiane-police"})
    )
    wrong_partner = LegalRequest("LR-3", "approved", frozenset({SUBJECT}), frozenset({"adreach"}))
    good = LegalRequest("LR-4", "approved", frozenset({SUBJECT}), frozenset({"vientiane-police"}))
    facts = SubjectFacts(
        legal_requests={r.id: r for r in (pending, wrong_subject, wrong_partner, good)}
    )
    for ref in (None, "LR-0", "LR-1", "LR-2", "LR-3"):
        assert run(police(ref), partners, facts).problem == "legal_request_required", ref
    d = run(police("LR-4"), partners, facts)
    assert d.allowed and d.legal_request_id == "LR-4"


def test_a_rejected_lawful_request_is_refused_as_final(partners):
    # "expected 'approved' (two reviewers)" told the caller to wait for approvals that a
    # rejected request can never get.
    rejected = LegalRequest(
        "LR-5", "rejected", frozenset({SUBJECT}), frozenset({"vientiane-police"})
    )
    police = request(
        "vientiane-police",
        "lawful_disclosure",
        purpose="legal",
        basis="legal_obligation",
        data={"name": "x"},
        legal_request="LR-5",
    )
    d = run(police, partners, SubjectFacts(legal_requests={"LR-5": rejected}))
    assert d.problem == "legal_request_required"
    assert "was rejected" in d.detail and "registered anew" in d.detail
    assert "expected 'approved'" not in d.detail


# policy: III.2 partner categories are the ten kinds plus legal, authority, transfer.
def test_partner_categories_closed(partners):
    from gateway import vocabulary

    assert len(vocabulary.PARTNER_CATEGORIES) == 13
    assert {p.category for p in partners.values()} <= set(vocabulary.PARTNER_CATEGORIES)


# policy: III.3 vital/public interest pass at once but need review.
@pytest.mark.parametrize("basis", ["vital_interest", "public_interest"])
def test_emergency_bases_need_review(partners, basis):
    req = request(
        "vientiane-police",
        "lawful_disclosure",
        purpose="safety_security",
        basis=basis,
        data={"name": "x", "phone": "1"},
    )
    d = run(req, partners)
    assert d.allowed and d.needs_review
    assert not run(request(basis="contract"), partners).needs_review


# policy: III.4 business transfers only to a counterparty; recipient bound by policy in force.
def test_business_transfer(partners):
    bureau = partners["lao-credit-bureau"]
    op = bureau.operations["credit_check"]
    widened = replace(
        bureau,
        operations={"credit_check": replace(op, legal_bases=frozenset({"business_transfer"}))},
    )
    req = request(basis="business_transfer", data={"name": "x"})
    assert run(req, {**partners, "lao-credit-bureau": widened}).problem == "legal_basis_not_allowed"
    buyer = replace(widened, id="acquirer", category="business_transfer_counterparty")
    d = run(replace(req, partner="acquirer"), {**partners, "acquirer": buyer})
    assert d.allowed and d.bound_by_policy_version == "2024-09-30"


# policy: V cookies/device identifiers to advertisers only on consent for marketing.
def test_cookies_to_advertisers_only_on_marketing_consent(partners):
    adreach = partners["adreach"]
    op = adreach.operations["audience_upload"]
    widened = replace(
        adreach,
        operations={
            "audience_upload": replace(
                op,
                purposes=frozenset({"marketing", "service_provision"}),
                legal_bases=frozenset({"consent", "contract"}),
            )
        },
    )
    table = {**partners, "adreach": widened}
    data = {"email": "a@b", "cookie": "abc", "app_id": "app", "device_model": "X1"}
    service = request("adreach", "audience_upload", basis="contract", data=data)
    d = run(service, table)
    assert d.allowed
    assert {"cookie", "app_id", "device_model"} <= set(d.withheld)
    assert "cookie" not in d.disclosed
    mkt = consent(purposes=frozenset({"marketing"}), partners=frozenset({"adreach"}))
    marketing = request("adreach", "audience_upload", purpose="marketing", data=data)
    d = run(marketing, table, SubjectFacts(consents=(mkt,)))
    assert d.allowed and d.disclosed["cookie"] == "keep"


# policy: VI need-to-know — callers only their partners, operations and purposes.
def test_caller_allowlists(partners):
    facts = SubjectFacts(consents=(consent(),))
    narrow = Caller(
        "sales", frozenset({"discloser"}), frozenset({"veriid"}), frozenset({"service_provision"})
    )
    d = run(request(), partners, facts, caller=narrow)
    assert d.problem == "forbidden" and "lao-credit-bureau" in d.detail
    wrong_purpose = replace(
        narrow, partners=frozenset({"lao-credit-bureau"}), purposes=frozenset({"user_support"})
    )
    assert run(request(), partners, facts, caller=wrong_purpose).problem == "forbidden"
    wrong_op = replace(
        narrow,
        partners=frozenset({"*"}),
        purposes=frozenset({"*"}),
        operations=frozenset({"veriid/verify_identity"}),
    )
    assert run(request(), partners, facts, caller=wrong_op).problem == "forbidden"
    no_role = replace(ANYONE, roles=frozenset({"reviewer"}))
    assert run(request(), partners, facts, caller=no_role).problem == "forbidden"


# policy: VII.3 restriction — only legal_obligation and vital_interest pass.
def test_restricted_subject(partners):
    facts = SubjectFacts(consents=(consent(),), restricted=True)
    assert run(request(), partners, facts).problem == "subject_restricted"
    vital = request(
        "vientiane-police",
        "lawful_disclosure",
        purpose="safety_security",
        basis="vital_interest",
        data={"name": "x"},
    )
    assert run(vital, partners, facts).allowed
    public = replace(vital, legal_basis="public_interest")
    assert run(public, partners, facts).problem == "subject_restricted"


# policy: VIII consents under an older policy version no longer count.
def test_consent_under_superseded_policy(partners):
    old = consent(policy_version="2023-01-01")
    d = run(request(), partners, SubjectFacts(consents=(old,)))
    assert d.problem == "policy_not_in_force"
    assert "2023-01-01" in d.detail and "2024-09-30" in d.detail


def test_unknown_partner_and_operation(partners):
    assert run(request("nobody"), partners).problem == "unknown_partner"
    assert run(request(operation="nothing"), partners).problem == "unknown_operation"


def test_problem_is_first_in_contract_order_and_reasons_list_all(partners):
    narrow = Caller("x", frozenset({"discloser"}), frozenset({"veriid"}), frozenset({"*"}))
    facts = SubjectFacts(restricted=True, date_of_birth=date(2020, 1, 1))
    d = run(request(purpose="marketing"), partners, facts, caller=narrow)
    assert d.problem == "forbidden"
    assert len(d.reasons) >= 4  # caller, purpose, restriction, age, consent
    d = run(request(purpose="marketing"), partners, facts)
    assert d.problem == "purpose_not_allowed"
    assert PROBLEM_ORDER.index("subject_restricted") < PROBLEM_ORDER.index("subject_under_age")


def test_reasons_never_quote_personal_values(partners):
    data = {
        "name": "CANARY-NAME",
        "phone": "CANARY-PHONE",
        "date_of_birth": "2015-03-04",
        "uuid": "CANARY-UUID",
        "password": "CANARY-PW",
    }
    d = run(request(data=data, purpose="marketing"), partners, SubjectFacts(restricted=True))
    text = repr(d.as_json())
    for canary in ("CANARY", "2015-03-04", SUBJECT):
        assert canary not in text


# policy: VIII — a consent naming a policy version later than the one in force (recorded
# before registration refused such versions) does not count.
@pytest.mark.parametrize(
    "version,expected",
    [
        ("2024-10-01", "policy_not_in_force"),
        ("2099-01-01", "policy_not_in_force"),
        ("2024-09-30", None),
    ],
)
def test_a_consent_under_a_future_policy_version_does_not_count(partners, version, expected):
    d = run(request(), partners, SubjectFacts(consents=(consent(policy_version=version),)))
    assert d.problem == expected
