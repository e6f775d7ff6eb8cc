"""Load shedding's pieces on an injected clock: the token bucket, the in-flight gate, and
the admission of a disclosure against the log's queue, its caller and its partner."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.config.limits import parse_rate
from gateway.config.model import Caller
from gateway.disclosure.limits import Admission, InFlightGate, TokenBucket
from gateway.errors import CallerRateLimitedError, LogOverloadedError, PartnerRateLimitedError
from gateway.observe.metrics import Metrics
from gateway.partners.model import Partner, PartnerAuth, PartnerEncryption


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def caller(cid: str = "sales-service", **limits: object) -> Caller:
    return Caller(cid, frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}), **limits)  # type: ignore[arg-type]


def partner(pid: str = "slow-bureau", **limits: object) -> Partner:
    return Partner(
        id=pid,
        name="Slow",
        category="credit_bureau",
        jurisdiction="LA",
        agreement="DPA",
        base_url="https://p.example",
        retention_days=1,
        timeout_s=1.0,
        max_attempts=1,
        privacy_contact=None,
        auth=PartnerAuth("none"),
        encryption=PartnerEncryption("RSA-OAEP-256", "A256GCM", "ES256", None, None),
        operations={},
        **limits,  # type: ignore[arg-type]
    )


def test_a_bucket_allows_its_burst_then_says_when_the_next_token_is_due() -> None:
    clock = Clock()
    bucket = TokenBucket(parse_rate("2/s", burst=3), clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token every half second
    assert bucket.take() == pytest.approx(0.5)  # a refusal takes nothing
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 60  # a quiet minute refills up to the burst, not beyond
    assert [bucket.take() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]


def test_a_rate_per_minute_defaults_its_burst_to_one_seconds_worth_at_least_one() -> None:
    assert parse_rate("600/min").burst == 10
    assert parse_rate("1/h").burst == 1
    assert parse_rate("1/h").per_second == pytest.approx(1 / 3600)
    for bad in ("50", "50/day", "-1/s", "0/s", "fast"):
        with pytest.raises(ValueError, match=r'must look like "50/s"|must be above 0'):
            parse_rate(bad)


def test_the_gate_holds_max_in_flight_and_a_reload_keeps_the_count() -> None:
    gate = InFlightGate(2, None, Clock())
    assert gate.enter() is None and gate.enter() is None
    assert gate.enter() == ("in_flight", 1.0)
    gate.leave()
    assert gate.enter() is None
    gate.configure(3, None)  # a reload raised it: the two under way still count
    assert gate.in_flight == 2 and gate.enter() is None and gate.enter() is not None


def test_the_gate_refuses_over_its_rate_with_the_wait() -> None:
    clock = Clock()
    gate = InFlightGate(None, parse_rate("1/s"), clock)
    assert gate.enter() is None
    reason, wait = gate.enter() or ("", 0.0)
    assert reason == "rate" and wait == pytest.approx(1.0)
    clock.now += 1
    assert gate.enter() is None


def test_the_partner_slot_is_held_until_the_disclosure_ends_even_when_it_fails() -> None:
    metrics = Metrics()
    admission = Admission(callers={"sales-service": caller()}, metrics=metrics)
    limited = partner(max_in_flight=1)
    with admission.partner_admitted(caller(), limited):
        with pytest.raises(PartnerRateLimitedError) as refused:
            with admission.partner_admitted(caller(), limited):
                pass
        assert refused.value.status == 429 and refused.value.retry_after_s == 1.0
        assert "max_in_flight" in refused.value.detail and refused.value.disclosure_id is None
        assert admission.in_flight() == {("partner", "slow-bureau"): 1}
    with pytest.raises(RuntimeError):
        with admission.partner_admitted(caller(), limited):
            raise RuntimeError("the delivery broke")
    with admission.partner_admitted(caller(), limited):  # the failed one left its slot
        pass
    assert admission.in_flight() == {("partner", "slow-bureau"): 0}
    text = metrics.render().decode()
    assert (
        'gateway_shed_requests_total{caller="sales-service",partner="slow-bureau",'
        'reason="partner_in_flight"} 1.0'
    ) in text


def test_a_partner_rate_answers_when_its_next_token_is_due() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    limited = partner(rate=parse_rate("4/s", burst=1))
    with admission.partner_admitted(caller(), limited):
        pass
    with pytest.raises(PartnerRateLimitedError) as refused:
        with admission.partner_admitted(caller(), limited):
            pass
    assert refused.value.retry_after_s == pytest.approx(0.25)
    assert "rate 4/s (burst 1)" in refused.value.detail
    clock.now += 0.25
    with admission.partner_admitted(caller(), limited):
        pass


def test_the_first_look_at_a_partner_refuses_without_taking_a_slot_or_a_token() -> None:
    """`check_partner` comes before the Idempotency-Key: it refuses what `partner_admitted`
    would, counted, and takes nothing when it lets a request on."""
    clock = Clock()
    metrics = Metrics()
    admission = Admission(callers={"sales-service": caller()}, metrics=metrics, clock=clock)
    limited = partner(max_in_flight=1)
    admission.check_partner(caller(), limited)
    admission.check_partner(caller(), None)  # an unknown partner: the decision refuses it
    with admission.partner_admitted(caller(), limited):  # the look took no slot
        with pytest.raises(PartnerRateLimitedError) as refused:
            admission.check_partner(caller(), limited)
        assert refused.value.retry_after_s == 1.0
    rated = partner("rated", rate=parse_rate("1/s", burst=1))
    admission.check_partner(caller(), rated)
    admission.check_partner(caller(), rated)  # a look takes no token
    with admission.partner_admitted(caller(), rated):
        pass
    with pytest.raises(PartnerRateLimitedError) as refused:
        admission.check_partner(caller(), rated)
    assert refused.value.retry_after_s == pytest.approx(1.0)
    text = metrics.render().decode()
    assert 'partner="slow-bureau",reason="partner_in_flight"} 1.0' in text
    assert 'partner="rated",reason="partner_rate"} 1.0' in text


def test_a_shed_detail_names_the_limit_not_the_count_so_it_renders_once() -> None:
    admission = Admission()
    details = set()
    with admission.partner_admitted(caller(), partner(max_in_flight=2)):
        with admission.partner_admitted(caller(), partner(max_in_flight=2)):
            for limit in (2, 1):  # a reload lowered the limit below the count under way
                for _ in range(2):
                    with pytest.raises(PartnerRateLimitedError) as refused:
                        admission.check_partner(caller(), partner(max_in_flight=limit))
                    details.add(refused.value.detail)
    assert len(details) == 2  # one per limit, whatever the count
    assert any("max_in_flight of 1 " in d for d in details)


def test_a_reload_that_lifts_a_partner_limit_takes_effect_at_once() -> None:
    admission = Admission()
    with admission.partner_admitted(caller(), partner(max_in_flight=1)):
        with admission.partner_admitted(caller(), partner()):  # the new file has no limit
            pass


def test_a_caller_over_its_limits_is_refused_and_others_are_not() -> None:
    clock = Clock()
    metrics = Metrics()
    batch = caller("batch-job", max_in_flight=1, rate=parse_rate("10/s", burst=2))
    admission = Admission(callers={"batch-job": batch}, metrics=metrics, clock=clock)
    with admission.caller_admitted(batch):
        with pytest.raises(CallerRateLimitedError) as busy:
            with admission.caller_admitted(batch):
                pass
        with admission.caller_admitted(caller("sales-service")):  # no limits of its own
            pass
    assert "'batch-job'" in busy.value.detail and busy.value.retry_after_s == 1.0
    with admission.caller_admitted(batch):
        pass
    with pytest.raises(CallerRateLimitedError) as fast:  # the burst of 2 is spent
        with admission.caller_admitted(batch):
            pass
    assert fast.value.retry_after_s == pytest.approx(0.1)
    assert admission.in_flight() == {("caller", "batch-job"): 0}
    text = metrics.render().decode()
    assert 'caller="batch-job",partner="",reason="caller_in_flight"} 1.0' in text
    assert 'caller="batch-job",partner="",reason="caller_rate"} 1.0' in text


def test_the_log_queue_bound_refuses_before_any_limit_is_taken() -> None:
    waiting = [0]
    metrics = Metrics()
    admission = Admission(
        max_pending_appends=3, pending_appends=lambda: waiting[0], metrics=metrics
    )
    limited = partner(max_in_flight=1)
    waiting[0] = 3
    officer = dataclasses.replace(caller("officer-7"))  # not a configured caller
    with pytest.raises(LogOverloadedError) as full:
        with admission.partner_admitted(officer, limited):
            pass
    assert full.value.status == 503 and full.value.retry_after_s is None  # the table's 1 s
    assert "max_pending_appends = 3" in full.value.detail
    with pytest.raises(LogOverloadedError):
        with admission.caller_admitted(caller()):
            pass
    waiting[0] = 2
    with admission.partner_admitted(officer, limited):  # no slot was spent on the refusals
        pass
    text = metrics.render().decode()
    # A sender that is not a [[callers]] entry is never named (a rights officer's notice).
    assert 'caller="other",partner="slow-bureau",reason="log_queue"} 1.0' in text
    assert "officer-7" not in text


def test_no_limit_by_default() -> None:
    admission = Admission()
    for _ in range(1000):
        with admission.caller_admitted(caller()), admission.partner_admitted(caller(), partner()):
            pass
