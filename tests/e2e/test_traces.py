"""OpenTelemetry traces of the real gateway, exported over OTLP/HTTP to a loopback receiver:
the caller's trace continued, one span per step, no personal value in the bytes exported,
`traceparent` to a partner only when its file says so, and nothing at all when off."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestServer
from e2e.conftest import canary, credit_check, granted, start_gateway
from support.app_logs import captured_log_lines
from support.otlp import OtlpReceiver
from support.sandboxes import SANDBOX_SECRETS

from gateway.observe import tracing

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000a7ac"
PERSON = canary(password="CANARY-PW")
CREDIT = credit_check(SUBJECT, PERSON)
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
STEPS = ("decide", "minimize", "seal", "intent_commit", "delivery", "outcome")


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OtlpReceiver]:
    """A loopback OTLP receiver, and the standard variables that point the gateway at it."""
    otlp = OtlpReceiver()
    server = TestServer(otlp.app(), host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", str(server.make_url("/v1/traces")))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield otlp
    await server.close()


async def _disclose_once(tmp_config, sandboxes, auth, partners=None) -> str:
    """One consented credit check through a gateway started and stopped here (its stop
    flushes the spans); the disclosure's id."""
    client = await start_gateway(
        tmp_config, partners=partners or sandboxes.partners, env=SANDBOX_SECRETS
    )
    try:
        await granted(client, auth("customer-app"), SUBJECT, ["lao-credit-bureau"], method="app")
        r = await client.post(
            "/v1/disclosures",
            json=CREDIT,
            headers={**auth("sales-service"), "traceparent": TRACEPARENT, "tracestate": "k=v"},
        )
        assert r.status < 300, await r.text()
        return r.headers["Disclosure-Id"]
    finally:
        await client.close()


async def test_a_disclosure_continues_the_callers_trace_span_by_span(
    tmp_config, sandboxes, auth, receiver
):
    disclosure_id = await _disclose_once(tmp_config, sandboxes, auth)
    assert not tracing.enabled()  # the app's stop turned it off, after the flush

    trace = [one for one in receiver.spans if one.trace_id == CALLER_TRACE]
    names = [one.name for one in trace]
    for step in ("POST /v1/disclosures", "disclosure", *STEPS):
        assert step in names, names
    [server] = receiver.named("POST /v1/disclosures")
    assert server.parent_span_id == CALLER_SPAN and server.attributes["http.route"]
    [disclosure] = receiver.named("disclosure")
    assert disclosure.parent_span_id == server.span_id
    for step in STEPS:
        [one] = [s for s in trace if s.name == step]
        assert one.parent_span_id == disclosure.span_id, step
        assert one.attributes["gateway.disclosure_id"] == disclosure_id, step
        assert one.attributes["gateway.partner"] == "lao-credit-bureau", step
        assert one.attributes["gateway.operation"] == "credit_check", step
    for step in ("decide", "minimize", "seal", "intent_commit", "outcome"):
        [one] = [s for s in trace if s.name == step]
        assert one.attributes["gateway.purpose"] == "service_provision", step
        assert one.attributes["gateway.legal_basis"] == "consent", step
    [delivery] = receiver.named("delivery")
    assert delivery.attributes["gateway.delivery.attempt"] == 1
    assert delivery.attributes["http.response.status_code"] == 201
    [outcome] = receiver.named("outcome")
    assert outcome.attributes["gateway.outcome"] == "sent"

    exported = b"".join(receiver.bodies)
    for personal in (SUBJECT, "CANARY", "1990-04-02", "Somchai"):
        assert personal.encode() not in exported, personal
    assert b"k=v" not in exported  # the caller's tracestate is not continued


async def test_a_retried_delivery_has_a_span_per_attempt(tmp_config, sandboxes, auth, receiver):
    sandboxes.partner("lao-credit-bureau").fail_next(1, status=503)
    await _disclose_once(tmp_config, sandboxes, auth)
    attempts = sorted(
        one.attributes["gateway.delivery.attempt"] for one in receiver.named("delivery")
    )
    assert attempts == [1, 2]


@pytest.mark.parametrize("forward", [False, True])
async def test_traceparent_reaches_a_partner_only_when_its_file_says_so(
    tmp_config, sandboxes, auth, receiver, forward
):
    bureau = replace(sandboxes.partners["lao-credit-bureau"], forward_trace_context=forward)
    partners = {**sandboxes.partners, "lao-credit-bureau": bureau}
    await _disclose_once(tmp_config, sandboxes, auth, partners)
    [received] = sandboxes.received("lao-credit-bureau")
    assert ("traceparent" in received.headers) is forward
    assert "tracestate" not in received.headers


async def test_log_lines_naming_a_disclosure_name_its_trace(tmp_config, sandboxes, auth, receiver):
    with captured_log_lines(logging.INFO) as read:
        disclosure_id = await _disclose_once(tmp_config, sandboxes, auth)
    lines = read()
    naming = [line for line in lines if line.get("disclosure_id") == disclosure_id]
    assert naming
    assert all(line.get("trace_id") == CALLER_TRACE for line in naming), naming


async def test_off_without_otel_variables(tmp_config, sandboxes, auth, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    client = await start_gateway(tmp_config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    try:
        assert not tracing.enabled()
        assert tracing.server_spans not in client.app.middlewares
        assert not [t for t in threading.enumerate() if "Otel" in t.name]
        r = await client.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
        assert r.status == 403  # refused (no consent), and traced nowhere
    finally:
        await client.close()
    assert sandboxes.received("lao-credit-bureau") == []


def test_off_imports_no_opentelemetry():
    """Tracing off costs no import: the app module and the flow load without the SDK."""
    code = (
        "import sys, gateway.web.app, gateway.disclosure.flow;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={}
    ).stdout
    assert out.strip() == "[]"


async def test_subject_routes_and_refusals_export_templates_and_codes_only(
    tmp_config, sandboxes, auth, receiver
):
    client = await start_gateway(tmp_config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    try:
        r = await client.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("customer-app"))
        assert r.status == 200
        r = await client.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
        assert r.status == 403  # no consent
    finally:
        await client.close()
    assert receiver.named("GET /v1/subjects/{subject}/consents")
    [decide] = receiver.named("decide")
    assert decide.status_code == 2  # STATUS_CODE_ERROR
    assert decide.attributes["error.type"] == "consent_required"
    assert not receiver.named("intent_commit")  # nothing was sent, nothing committed
    exported = b"".join(receiver.bodies)
    for personal in (SUBJECT, "CANARY", "1990-04-02"):
        assert personal.encode() not in exported, personal
