"""The application log of the real gateway: refusals name the problem code and the
disclosure id, deliveries the partner and the disclosure id, never the data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiohttp.test_utils import TestClient
from e2e.conftest import SANDBOX_SECRETS, canary, credit_check, granted, start_gateway
from support.app_logs import captured_log_lines

from gateway.config.model import Config
from gateway.sandbox import SandboxCluster

SUBJECT = "6f1c2a7e-0000-4000-8000-0000000010c5"
PERSON = canary(password="CANARY-PW")
CREDIT = credit_check(SUBJECT, PERSON)


@pytest.fixture
def records() -> Iterator[Callable[[], list[dict]]]:
    with captured_log_lines() as lines:
        yield lines


async def gateway_logging(config: Config, sandboxes: SandboxCluster, access_log: str) -> TestClient:
    server = dataclasses.replace(config.server, access_log=access_log)
    return await start_gateway(
        dataclasses.replace(config, server=server),
        partners=sandboxes.partners,
        env=SANDBOX_SECRETS,
    )


@pytest.fixture
async def live_all(tmp_config: Config, sandboxes: SandboxCluster) -> AsyncIterator[TestClient]:
    """The gateway pointed at the sandboxes, with a request line for every request."""
    client = await gateway_logging(tmp_config, sandboxes, "all")
    yield client
    await client.close()


def nothing_personal(lines: list[dict]) -> None:
    text = json.dumps(lines)
    assert "CANARY" not in text and SUBJECT not in text and "1990-04-02" not in text
    assert "Bearer" not in text and "eyJ" not in text  # no header value, no token


def request_lines(lines: list[dict], route: str) -> list[dict]:
    return [
        line for line in lines if line["logger"] == "gateway.request" and line.get("route") == route
    ]


async def test_refusal_names_code_and_disclosure_id(live, auth, records):
    r = await live.post(
        "/v1/disclosures",
        json=CREDIT,
        headers={**auth("sales-service"), "X-Request-Id": "svc-trace-7"},
    )
    assert r.status == 403
    assert r.headers["X-Request-Id"] == "svc-trace-7"
    lines = records()
    [line] = request_lines(lines, "/v1/disclosures")
    assert line["problem"] == "consent_required" and line["status"] == 403
    assert line["disclosure_id"] == r.headers["Disclosure-Id"]
    assert line["request_id"] == "svc-trace-7"
    assert line["message"] == "POST /v1/disclosures 403 consent_required"
    nothing_personal(lines)


async def test_delivery_names_disclosure_id(live_all, auth, records):
    live = live_all
    await granted(live, auth("customer-app"), SUBJECT, ["lao-credit-bureau"], method="app")
    r = await live.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
    assert r.status < 300, await r.text()
    lines = records()
    [line] = request_lines(lines, "/v1/disclosures")
    assert line["disclosure_id"] == r.headers["Disclosure-Id"] and line["status"] == r.status
    assert "problem" not in line
    [consents] = request_lines(lines, "/v1/consents")
    assert consents["status"] == 201 and consents["request_id"] != line["request_id"]
    nothing_personal(lines)


async def test_delivery_names_partner_and_caller(live_all, auth, records):
    live = live_all
    await granted(live, auth("customer-app"), SUBJECT, ["lao-credit-bureau"], method="app")
    r = await live.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
    assert r.status < 300
    [line] = request_lines(records(), "/v1/disclosures")
    assert line["partner"] == "lao-credit-bureau" and line["caller"] == "sales-service"


async def test_paths_with_subject_ids_are_logged_as_routes(live_all, auth, records):
    live = live_all
    r = await live.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("customer-app"))
    assert r.status < 300
    missing = await live.get(f"/v1/subject/{SUBJECT}/nothing-here", headers=auth("customer-app"))
    assert missing.status == 404
    lines = records()
    assert request_lines(lines, "/v1/subjects/{subject}/consents")
    [unrouted] = request_lines(lines, "(no route)")
    assert unrouted["problem"] == "not_found"
    nothing_personal(lines)


CONSENT = {
    "subject": SUBJECT,
    "purposes": ["service_provision"],
    "partners": ["lao-credit-bureau"],
    "policy_version": "2024-09-30",
    "method": "app",
}


async def test_by_default_only_refused_requests_get_a_line(live, auth, records):
    """[server] access_log = "errors", the default: a delivered disclosure is in the
    disclosure log, and gets no request line; a refused one does."""
    refused = await live.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
    assert refused.status == 403
    consent = await live.post("/v1/consents", json=CONSENT, headers=auth("customer-app"))
    assert consent.status == 201
    r = await live.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
    assert r.status < 300, await r.text()
    lines = records()
    [line] = request_lines(lines, "/v1/disclosures")
    assert line["status"] == 403 and line["problem"] == "consent_required"
    assert line["disclosure_id"] == refused.headers["Disclosure-Id"]
    assert request_lines(lines, "/v1/consents") == []
    nothing_personal(lines)


async def test_access_log_off_writes_no_request_line(tmp_config, sandboxes, auth, records):
    client = await gateway_logging(tmp_config, sandboxes, "off")
    try:
        r = await client.post("/v1/disclosures", json=CREDIT, headers=auth("sales-service"))
        assert r.status == 403
        missing = await client.get("/v1/nothing-here", headers=auth("customer-app"))
        assert missing.status == 404
    finally:
        await client.close()
    assert [line for line in records() if line["logger"] == "gateway.request"] == []
