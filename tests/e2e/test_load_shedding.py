"""Load shed instead of queued (issue #20): over a partner's, a caller's or the log's limit a
disclosure is answered at once — 429 or 503 problem+json with Retry-After — and nothing is
logged or sent for it; the disclosures already under way go on. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from e2e.conftest import consent_of, credit_check, person, start_gateway
from support.app_logs import captured_log_lines
from support.log import logged
from support.sandboxes import SANDBOX_SECRETS

from gateway.config.limits import parse_rate
from gateway.config.model import Config
from gateway.sandbox import SandboxCluster
from gateway.store.records import LogRow
from gateway.web import held_retries
from gateway.web.keys import GATEWAY, LOG, METRICS, STORE

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000cccc"
PARTNER = "lao-credit-bureau"


async def consented(client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    consent = consent_of(SUBJECT, partners=[PARTNER])
    r = await client.post("/v1/consents", json=consent, headers=auth("customer-app"))
    assert r.status == 201, await r.text()


async def log_size(client: TestClient) -> int:
    await client.server.app[LOG].settle()
    return int(await client.server.app[STORE].log_size())


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


async def shed_answer(client: TestClient, request: Awaitable[Any], code: str) -> dict[str, Any]:
    """The shed answer of `request`: its problem document, checked to have come at once."""
    started = time.monotonic()
    r = await request
    assert time.monotonic() - started < 1.0  # at once, not after the slow one
    assert r.headers["Content-Type"].startswith("application/problem+json")
    doc = await r.json(content_type=None)
    assert doc["type"] == f"/problems/{code}", doc
    assert "disclosure_id" not in doc and "Disclosure-Id" not in r.headers  # nothing logged
    doc["status_code"], doc["retry_after"] = r.status, r.headers.get("Retry-After")
    return doc


async def test_a_partner_at_max_in_flight_sheds_the_next_disclosure_at_once(
    tmp_config: Config, sandboxes: SandboxCluster, auth: Callable[[str], dict[str, str]]
) -> None:
    partners = dict(sandboxes.partners)
    partners[PARTNER] = replace(partners[PARTNER], max_in_flight=1)
    client = await start_gateway(tmp_config, partners=partners, env=SANDBOX_SECRETS)
    try:
        await consented(client, auth)
        before = await log_size(client)
        sandboxes.partner(PARTNER).hang_next(1, seconds=1.5)  # a slow partner
        headers = auth("sales-service")
        body = credit_check(SUBJECT, person(SUBJECT))
        slow = asyncio.ensure_future(client.post("/v1/disclosures", json=body, headers=headers))
        admission = client.server.app[GATEWAY].admission
        await until(lambda: admission.in_flight().get(("partner", PARTNER)) == 1)
        keyed = {**headers, "Idempotency-Key": "shed-1"}
        doc = await shed_answer(
            client,
            client.post("/v1/disclosures", json=body, headers=keyed),
            "partner_rate_limited",
        )
        assert doc["status_code"] == 429 and doc["retry_after"] == "1"
        assert "max_in_flight" in doc["detail"] and SUBJECT not in doc["detail"]
        first = await slow
        assert first.status < 300, await first.text()
        entries = await logged(client.server.app, first.headers["Disclosure-Id"])
        assert [e["kind"] for e in entries] == ["intent", "outcome"]
        assert await log_size(client) == before + 2  # the shed one left no entry
        assert len(sandboxes.received(PARTNER)) == 1
        # Nothing was sent, so the key was not spent: the same call now goes through.
        again = await client.post("/v1/disclosures", json=body, headers=keyed)
        assert again.status < 300 and "Idempotency-Replayed" not in again.headers
        text = client.server.app[METRICS].render().decode()
        assert (
            'gateway_shed_requests_total{caller="sales-service",partner="lao-credit-bureau",'
            'reason="partner_in_flight"} 1.0'
        ) in text
        assert 'gateway_partner_in_flight{partner="lao-credit-bureau"} 0.0' in text
    finally:
        await client.close()


async def test_a_caller_over_its_rate_is_shed_before_its_request_is_read(
    tmp_config: Config, sandboxes: SandboxCluster, auth: Callable[[str], dict[str, str]]
) -> None:
    callers = dict(tmp_config.callers)
    sales = callers["sales-service"]
    callers["sales-service"] = replace(sales, rate=parse_rate("1/h"))
    callers["sales-batch"] = replace(sales, id="sales-batch")  # the same rights, no limit
    config = replace(tmp_config, callers=callers)
    client = await start_gateway(config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    try:
        await consented(client, auth)
        headers = auth("sales-service")
        body = credit_check(SUBJECT, person(SUBJECT))
        first = await client.post("/v1/disclosures", json=body, headers=headers)
        assert first.status < 300, await first.text()
        before = await log_size(client)
        doc = await shed_answer(
            client,
            client.post("/v1/disclosures", json={"not": "even read"}, headers=headers),
            "caller_rate_limited",
        )
        assert doc["status_code"] == 429
        assert 3500 <= int(doc["retry_after"]) <= 3600  # when its next token is due
        assert "'sales-service'" in doc["detail"] and "rate 1/h" in doc["detail"]
        assert await log_size(client) == before  # not even a refused entry
        # Another service keeps its own allowance.
        r = await client.post("/v1/disclosures", json=body, headers=auth("sales-batch"))
        assert r.status < 300, await r.text()
    finally:
        await client.close()


async def test_a_full_commit_queue_sheds_new_disclosures_and_lets_logged_ones_finish(
    tmp_config: Config, sandboxes: SandboxCluster, auth: Callable[[str], dict[str, str]]
) -> None:
    config = replace(tmp_config, log=replace(tmp_config.log, max_pending_appends=2))
    client = await start_gateway(config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    try:
        await consented(client, auth)
        before = await log_size(client)
        # The test double of a slow store: commits wait until released.
        store = client.server.app[STORE]
        commit = store.append_log_entries
        released = asyncio.Event()

        async def slow_commit(entries: Sequence[LogRow]) -> list[int]:
            await released.wait()
            return list(await commit(entries))

        store.append_log_entries = slow_commit
        writer = client.server.app[LOG].writer
        headers = auth("sales-service")
        body = credit_check(SUBJECT, person(SUBJECT))
        waiting = [
            asyncio.ensure_future(client.post("/v1/disclosures", json=body, headers=headers))
        ]
        await until(lambda: writer.waiting == 1)  # its intent is committing
        waiting.append(
            asyncio.ensure_future(client.post("/v1/disclosures", json=body, headers=headers))
        )
        await until(lambda: writer.waiting == 2)  # queued behind it
        doc = await shed_answer(
            client, client.post("/v1/disclosures", json=body, headers=headers), "log_overloaded"
        )
        assert doc["status_code"] == 503 and doc["retry_after"] == "1"
        assert "max_pending_appends = 2" in doc["detail"]
        released.set()
        answers = await asyncio.gather(*waiting)
        assert [a.status < 300 for a in answers] == [True, True]  # logged ones go on
        assert await log_size(client) == before + 4  # their intents and outcomes only
        assert len(sandboxes.received(PARTNER)) == 2
    finally:
        await client.close()


async def retried_at_once(
    client: TestClient, times: int, code: str, **request: Any
) -> list[tuple[int, str | None, bytes]]:
    """A client that ignores Retry-After: the same request again as soon as it is shed."""
    answers = []
    for _ in range(times):
        r = await client.post("/v1/disclosures", **request)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        body = await r.read()
        assert json.loads(body)["type"] == f"/problems/{code}", body
        answers.append((r.status, r.headers.get("Retry-After"), body))
    return answers


def request_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "gateway.request"]


async def test_retries_over_a_partner_limit_cost_no_idempotency_work_and_no_log_line(
    tmp_config: Config,
    sandboxes: SandboxCluster,
    auth: Callable[[str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shed is decided before the Idempotency-Key is looked at (no store write per retry),
    answered with the same bytes each time, and counted on /metrics, not logged."""
    monkeypatch.setattr(held_retries, "MAX_HOLD_S", 0.0)  # the retries' cost, not their hold
    partners = dict(sandboxes.partners)
    partners[PARTNER] = replace(partners[PARTNER], max_in_flight=1)
    client = await start_gateway(tmp_config, partners=partners, env=SANDBOX_SECRETS)
    try:
        await consented(client, auth)
        store = client.server.app[STORE]
        claims: list[str] = []
        claim = store.claim_idempotency

        async def counted_claim(caller_id: str, key: str, digest: str) -> Any:
            claims.append(key)
            return await claim(caller_id, key, digest)

        store.claim_idempotency = counted_claim
        sandboxes.partner(PARTNER).hang_next(1, seconds=1.5)
        headers = auth("sales-service")
        body = credit_check(SUBJECT, person(SUBJECT))
        slow = asyncio.ensure_future(
            client.post("/v1/disclosures", json=body, headers={**headers, "Idempotency-Key": "a"})
        )
        admission = client.server.app[GATEWAY].admission
        await until(lambda: admission.in_flight().get(("partner", PARTNER)) == 1)
        with captured_log_lines() as lines:
            answers = await retried_at_once(
                client,
                5,
                "partner_rate_limited",
                json=body,
                headers={**headers, "Idempotency-Key": "retried"},
            )
        assert claims == ["a"]  # the shed retries never reached the key store
        assert len(set(answers)) == 1 and answers[0][:2] == (429, "1")  # the same answer
        doc = json.loads(answers[0][2])
        assert set(doc) == {"type", "title", "status", "detail"} and doc["status"] == 429
        assert "max_in_flight of 1" in doc["detail"] and SUBJECT not in doc["detail"]
        assert request_lines(lines()) == []  # counted, not logged
        text = client.server.app[METRICS].render().decode()
        assert (
            'gateway_shed_requests_total{caller="sales-service",partner="lao-credit-bureau",'
            'reason="partner_in_flight"} 5.0'
        ) in text
        assert 'gateway_refusals_total{problem="partner_rate_limited"} 5.0' in text
        assert (await slow).status < 300
    finally:
        await client.close()


async def test_retries_over_a_caller_limit_are_shed_unread_with_the_same_answer(
    tmp_config: Config,
    sandboxes: SandboxCluster,
    auth: Callable[[str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over its max_in_flight a caller's request is refused before its body is read (a body
    that is not even JSON gets the shed answer, not invalid_request), without a log line."""
    monkeypatch.setattr(held_retries, "MAX_HOLD_S", 0.0)  # the retries' cost, not their hold
    callers = dict(tmp_config.callers)
    callers["sales-service"] = replace(callers["sales-service"], max_in_flight=1)
    config = replace(tmp_config, callers=callers)
    client = await start_gateway(config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    try:
        await consented(client, auth)
        before = await log_size(client)
        sandboxes.partner(PARTNER).hang_next(1, seconds=1.5)
        headers = auth("sales-service")
        body = credit_check(SUBJECT, person(SUBJECT))
        slow = asyncio.ensure_future(client.post("/v1/disclosures", json=body, headers=headers))
        admission = client.server.app[GATEWAY].admission
        await until(lambda: admission.in_flight().get(("caller", "sales-service")) == 1)
        with captured_log_lines() as lines:
            answers = await retried_at_once(
                client,
                5,
                "caller_rate_limited",
                data=b"{not json",
                headers={**headers, "Content-Type": "text/plain"},
            )
        assert len(set(answers)) == 1 and answers[0][:2] == (429, "1")
        detail = json.loads(answers[0][2])["detail"]
        assert "'sales-service'" in detail and "max_in_flight of 1" in detail
        assert request_lines(lines()) == []
        assert (await slow).status < 300
        assert await log_size(client) == before + 2  # the slow one's intent and outcome
    finally:
        await client.close()
