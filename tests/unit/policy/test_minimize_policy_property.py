"""Property: whatever the payload and facts, an allowed decision never discloses password,
a special-category field without explicit consent naming it, or an unknown field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import vocabulary as v
from gateway.config.model import Caller, PolicyConfig
from gateway.policy.decide import decide
from gateway.policy.facts import Consent, SubjectFacts
from gateway.policy.request import DisclosureRequest

NOW = datetime(2026, 11, 24, tzinfo=UTC)
POLICY = PolicyConfig("2024-09-30", date(2024, 9, 19), date(2024, 9, 30), "2024-09-30")
ANYONE = Caller("svc", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}))

names = st.sampled_from([*sorted(v.FIELDS), "unknown_x", "PASSWORD"])
payloads = st.dictionaries(names, st.text(max_size=5), max_size=12)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=payloads,
    specials=st.frozensets(st.sampled_from(sorted(v.SPECIAL_FIELDS))),
    basis=st.sampled_from(["consent", "contract"]),
)
def test_allowed_decisions_hold_no_forbidden_field(partners, data, specials, basis):
    data.pop("date_of_birth", None)
    consent = Consent(
        "c",
        "s",
        frozenset({"service_provision"}),
        frozenset({"lanexang-insurance"}),
        frozenset(),
        specials,
        "2024-09-30",
        NOW - timedelta(days=1),
    )
    for op in ("quote", "health_underwriting"):
        req = DisclosureRequest("lanexang-insurance", op, "service_provision", basis, "s", data)
        d = decide(req, ANYONE, partners, SubjectFacts(consents=(consent,)), POLICY, NOW)
        if not d.allowed:
            continue
        assert "password" not in d.disclosed
        assert all(name in v.FIELDS for name in d.disclosed)
        for name in d.disclosed:
            if name in v.SPECIAL_FIELDS:
                assert basis == "consent" and name in specials
