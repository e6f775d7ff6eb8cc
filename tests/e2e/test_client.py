"""gateway_client against the real app and sandbox partners: answers, refusals as classes.

Every problem code of errors.PROBLEMS has its SDK exception class (checked against a
loopback server that answers each code), and the common refusals of the real
gateway arrive as those classes with the disclosure id and never the data.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from e2e.conftest import canary, credit_check

import gateway_client as gc
from gateway.errors import PROBLEMS, error_for
from gateway.sandbox import SandboxCluster

SUBJECT = "6f1c2a7e-0000-4000-8000-00000000c11e"
PERSON = canary(password="CANARY-PW")
CREDIT = credit_check(SUBJECT, PERSON)


@pytest.fixture
async def clients(
    live: TestClient, token: Callable[[str], str]
) -> AsyncIterator[Callable[[str], gc.GatewayClient]]:
    """`clients(caller_id)`: a GatewayClient on the live gateway with that caller's token."""
    made: list[gc.GatewayClient] = []

    def make(caller_id: str) -> gc.GatewayClient:
        made.append(gc.GatewayClient(str(live.make_url("")), token=token(caller_id), timeout=20))
        return made[-1]

    yield make
    for one in made:
        await one.close()


async def consent_for(
    clients, partner: str = "lao-credit-bureau", purpose: str = "service_provision"
) -> str:
    consent = await clients("customer-app").grant_consent(
        subject=SUBJECT,
        purposes=[purpose],
        partners=[partner],
        policy_version="2024-09-30",
        method="app",
        obtained_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return consent.id


# -- every code has its class ------------------------------------------------------------


def test_every_problem_code_has_its_class():
    missing = sorted(set(PROBLEMS) - set(gc.PROBLEM_CLASSES))
    assert not missing, f"add an exception class to gateway_client/errors.py for: {missing}"
    stale = sorted(set(gc.PROBLEM_CLASSES) - set(PROBLEMS))
    assert not stale, f"classes for codes errors.PROBLEMS no longer has: {stale}"
    for code, cls in gc.PROBLEM_CLASSES.items():
        assert cls.code == code and cls.status == PROBLEMS[code][0], code
        assert issubclass(cls, gc.GatewayProblem) and cls.__doc__


async def test_each_problem_document_raises_its_class():
    """A loopback server answers every code as the gateway renders it (problems.py)."""
    from gateway.web.problems import problem_response

    async def answer(request: web.Request) -> web.Response:
        error = error_for(
            request.match_info["code"], "what is wrong and what would pass", disclosure_id="d-123"
        )
        error.retry_after_s = 7
        return problem_response(error)

    app = web.Application()
    app.router.add_post("/{code}/v1/disclosures", answer)
    server = TestServer(app)
    await server.start_server()
    try:
        for code, (status, _title) in PROBLEMS.items():
            async with gc.GatewayClient(str(server.make_url(f"/{code}")), token="t") as gw:
                with pytest.raises(gc.problem_class(code)) as caught:
                    await gw.disclose(**CREDIT)
            problem = caught.value
            assert type(problem) is gc.PROBLEM_CLASSES[code]
            assert (problem.code, problem.status) == (code, status)
            assert problem.detail == "what is wrong and what would pass"
            assert problem.disclosure_id == "d-123" and problem.retry_after == 7
            # The relative `type` resolves on the gateway: the page explaining the code.
            assert problem.document["type"] == f"/problems/{code}"
            assert problem.help_url == str(server.make_url(f"/problems/{code}"))
            assert "CANARY" not in str(problem)
    finally:
        await server.close()


async def test_unknown_code_and_foreign_answers():
    async def newer(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "type": "https://gateway.invalid/problems/brand_new",
                "title": "New",
                "status": 418,
                "detail": "d",
            },
            status=418,
            content_type="application/problem+json",
        )

    async def proxy_page(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/newer/v1/decisions", newer)
    app.router.add_post("/proxy/v1/decisions", proxy_page)
    server = TestServer(app)
    await server.start_server()
    try:
        async with gc.GatewayClient(str(server.make_url("/newer")), token="t") as gw:
            with pytest.raises(gc.GatewayProblem) as caught:
                await gw.decide(**CREDIT)
        assert type(caught.value) is gc.GatewayProblem
        assert (caught.value.code, caught.value.status) == ("brand_new", 418)
        # An older gateway's absolute `type` is read the same way.
        assert caught.value.help_url == "https://gateway.invalid/problems/brand_new"
        async with gc.GatewayClient(str(server.make_url("/proxy")), token="t") as gw:
            with pytest.raises(gc.UnexpectedResponse) as foreign:
                await gw.decide(**CREDIT)
        assert foreign.value.status == 502 and foreign.value.content_type == "text/html"
    finally:
        await server.close()


async def test_unreachable_gateway():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now: the connection is refused, so nothing was sent.
    async with gc.GatewayClient(f"http://127.0.0.1:{port}", token="t") as gw:
        with pytest.raises(gc.GatewayUnreachable) as refused:
            await gw.disclose(**CREDIT)
    assert refused.value.request_sent is False
    assert "CANARY" not in str(refused.value) and SUBJECT not in str(refused.value)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_get(f"/v1/subjects/{SUBJECT}/consents", slow)
    server = TestServer(app)
    await server.start_server()
    try:
        async with gc.GatewayClient(str(server.make_url("")), token="t", timeout=0.2) as gw:
            with pytest.raises(gc.GatewayUnreachable) as timed_out:
                await gw.consents(SUBJECT)
        assert timed_out.value.request_sent is True
        assert SUBJECT not in str(timed_out.value)
    finally:
        await server.close()


def test_client_needs_exactly_one_credential():
    with pytest.raises(ValueError):
        gc.GatewayClient("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        gc.GatewayClient("http://127.0.0.1:1", token="a", token_provider=lambda: "b")
    with pytest.raises(ValueError):
        gc.GatewayClient("127.0.0.1:8080", token="a")


# -- against the real gateway ------------------------------------------------------------


async def test_disclosure_delivered_and_idempotent_repeat(
    clients, sandboxes: SandboxCluster, live, token
):
    await consent_for(clients)
    calls = []

    async def provider() -> str:  # an async token provider, asked before every request
        calls.append(1)
        return token("sales-service")

    sales = clients("sales-service")
    first = await sales.disclose(**CREDIT, idempotency_key="order-42")
    assert first.ok and not first.replayed
    assert first.disclosure_id.startswith("d-")
    assert first.fields == ("name", "date_of_birth", "phone", "uuid")
    assert first.json()["received_fields"] == ["date_of_birth", "name", "phone", "uuid"]
    assert first.acknowledgement == "valid"  # lao-credit-bureau signs its receipts
    again = await sales.disclose(**CREDIT, idempotency_key="order-42")
    assert again.replayed and again.disclosure_id == first.disclosure_id
    assert again.acknowledgement == "valid"  # the replay repeats the header
    assert again.body == first.body
    assert len(sandboxes.received("lao-credit-bureau")) == 1
    with pytest.raises(gc.Conflict) as conflict:
        await sales.disclose(**{**CREDIT, "purpose": "safety_security"}, idempotency_key="order-42")
    assert isinstance(conflict.value, gc.CallerError)

    async with gc.GatewayClient(str(live.make_url("")), token_provider=provider) as provided:
        third = await provided.disclose(**CREDIT)
    assert third.ok and third.disclosure_id != first.disclosure_id and calls == [1]
    report = await clients("privacy-office").subject_disclosures(SUBJECT)
    assert {row["disclosure_id"] for row in report} == {first.disclosure_id, third.disclosure_id}


async def test_consent_refusals_map_to_their_classes(clients, sandboxes: SandboxCluster):
    sales = clients("sales-service")
    with pytest.raises(gc.ConsentRequired) as required:
        await sales.disclose(**CREDIT)
    refusal = required.value
    assert isinstance(refusal, gc.ConsentProblem) and isinstance(refusal, gc.DisclosureRefused)
    assert refusal.status == 403 and refusal.disclosure_id and refusal.disclosure_id[:2] == "d-"
    assert "consent" in refusal.detail and "CANARY" not in str(refusal)

    decision = await sales.decide(**CREDIT)
    assert not decision.allowed and decision.problem == "consent_required"

    consent_id = await consent_for(clients)
    assert (await sales.decide(**CREDIT)).allowed
    [listed] = await clients("customer-app").consents(SUBJECT)
    assert listed.id == consent_id and listed.withdrawn_at is None
    withdrawn = await clients("customer-app").withdraw_consent(consent_id)
    assert withdrawn.withdrawn_at is not None
    with pytest.raises(gc.ConsentWithdrawn):
        await sales.disclose(**CREDIT)
    assert sandboxes.received("lao-credit-bureau") == []


async def test_policy_and_caller_refusals_map_to_their_classes(clients, live, token):
    sales, legal = clients("sales-service"), clients("legal-desk")
    await consent_for(clients)
    officer = clients("privacy-office")

    await officer.set_restriction(SUBJECT, True, "objection")
    with pytest.raises(gc.SubjectRestricted):
        await sales.disclose(**CREDIT)
    await officer.set_restriction(SUBJECT, False)
    await officer.set_profile(SUBJECT, date(2016, 1, 1))
    without_birth_date = {k: v for k, v in PERSON.items() if k != "date_of_birth"}
    with pytest.raises(gc.SubjectUnderAge):
        await sales.disclose(**{**CREDIT, "data": without_birth_date})

    with pytest.raises(gc.LegalRequestRequired) as lawful:
        await legal.disclose(
            partner="vientiane-police",
            operation="lawful_disclosure",
            purpose="legal",
            legal_basis="legal_obligation",
            subject=SUBJECT,
            data=PERSON,
        )
    assert isinstance(lawful.value, gc.DisclosureRefused)
    with pytest.raises(gc.Forbidden):
        await sales.disclose(**{**CREDIT, "partner": "adreach", "operation": "audience_upload"})
    with pytest.raises(gc.InvalidRequest) as invalid:
        await sales.disclose(**{**CREDIT, "purpose": "world_domination"})
    assert invalid.value.status == 400
    with pytest.raises(gc.Forbidden):  # a consent writer may not disclose
        await clients("customer-app").disclose(**CREDIT)
    with pytest.raises(gc.NotFound):
        await clients("customer-app").withdraw_consent("c-no-such-consent")

    stranger = gc.GatewayClient(str(live.make_url("")), token="not-a-jwt")
    try:
        with pytest.raises(gc.Unauthenticated) as unauthenticated:
            await stranger.consents(SUBJECT)
    finally:
        await stranger.close()
    assert isinstance(unauthenticated.value, gc.CallerError)
    assert "not-a-jwt" not in str(unauthenticated.value)


async def test_partner_failure_maps_to_partner_problem(clients, sandboxes: SandboxCluster):
    await consent_for(clients)
    sandboxes.partner("lao-credit-bureau").fail_next(5, status=503)
    with pytest.raises(gc.PartnerUnavailable) as failed:
        await clients("sales-service").disclose(**CREDIT)
    assert isinstance(failed.value, gc.PartnerProblem)
    assert failed.value.status == 502 and failed.value.disclosure_id
    assert "CANARY" not in str(failed.value)


async def test_erasure_through_the_client(clients, sandboxes: SandboxCluster):
    await consent_for(clients)
    sent = await clients("sales-service").disclose(**CREDIT)
    assert sent.ok
    report = await clients("privacy-office").request_erasure(SUBJECT)
    assert report.kind == "erasure" and report.reference.startswith("RR-")
    assert {n["partner"] for n in report.notices} | {
        n["partner"] for n in report.manual_follow_up
    } == {"lao-credit-bureau"}
    with pytest.raises(gc.Forbidden):
        await clients("sales-service").request_erasure(SUBJECT)


async def test_subject_ids_are_one_path_segment(clients):
    # ':', '@' and '.' are in the subject-id grammar and mean something in a URL.
    odd = "a:b@c.d"
    await clients("customer-app").grant_consent(
        subject=odd,
        purposes=["service_provision"],
        partners=["lao-credit-bureau"],
        policy_version="2024-09-30",
        method="app",
    )
    [listed] = await clients("customer-app").consents(odd)
    assert listed.subject == odd
    assert await clients("customer-app").consents("a:b") == []
    # Outside the grammar an id is refused whole, never read as another path.
    with pytest.raises(gc.InvalidRequest):
        await clients("customer-app").consents("s 1/ü?#%2F")
