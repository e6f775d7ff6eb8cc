"""Delivery to partners: URLs, header hygiene, retries, redirects and the circuit breaker.

Every partner here is a real aiohttp app (or a raw asyncio socket server) on a
loopback port; time spent in backoff goes to a fake `sleep` that only records.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import MappingProxyType
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.errors import ConfigErrors, GatewayError
from gateway.outbound.breaker import CircuitBreaker
from gateway.outbound.delivery import (
    DeliveryCircuitOpen,
    DeliveryFailed,
    DeliveryTimedOut,
    Outbound,
    PartnerReply,
    client_session,
)
from gateway.outbound.http import retry_after_seconds
from gateway.outbound.partner_url import build_url
from gateway.partners.model import Operation, Partner, PartnerAuth, PartnerEncryption, SecretRef
from gateway.problem_catalog import PARTNER_RETRY_AFTER_S

SUBMIT = Operation(
    "submit",
    "POST",
    "/v1/items",
    frozenset({"service_provision"}),
    frozenset({"contract"}),
    MappingProxyType({"uuid": "pseudonym"}),
)
REFUND = Operation(
    "refund",
    "POST",
    "/v1/charges/{transaction_id}/refunds",
    frozenset({"service_provision"}),
    frozenset({"contract"}),
    MappingProxyType({"transaction_id": "keep"}),
)
BODY = b"eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.sealed.payload.parts.here"
JOSE = "application/jose"


def make_partner(
    base_url: str,
    *,
    auth: PartnerAuth | None = None,
    timeout_s: float = 1.0,
    max_attempts: int = 3,
) -> Partner:
    return Partner(
        id="test-partner",
        name="Test Partner",
        category="credit_bureau",
        jurisdiction="LA",
        agreement="DPA-TEST",
        base_url=base_url,
        retention_days=30,
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        privacy_contact=None,
        auth=auth or PartnerAuth(type="none"),
        encryption=PartnerEncryption("RSA-OAEP-256", "A256GCM", "ES256", None, None),
        operations=MappingProxyType({"submit": SUBMIT, "refund": REFUND}),
    )


class FakeSleep:
    """Records backoff waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes
    match: dict[str, str]


Step = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status(code: int, *, headers: dict[str, str] | None = None, body: bytes = b"{}") -> Step:
    async def step(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=code, body=body, headers=headers or {}, content_type="application/json"
        )

    return step


def slow(seconds: float) -> Step:
    async def step(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(status=200, body=b"late")

    return step


@dataclass
class FakePartner:
    """A partner app that records every request and answers from a script (then 200)."""

    script: list[Step] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/items", self.handle)
        app.router.add_post("/v1/charges/{transaction_id}/refunds", self.handle)
        app.router.add_route("*", "/{tail:.*}", self.stray)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.raw_path,
                dict(request.headers),
                await request.read(),
                dict(request.match_info),
            )
        )
        if self.script:
            return await self.script.pop(0)(request)
        return web.Response(status=201, body=b'{"ok":true}', content_type="application/json")

    async def stray(self, request: web.Request) -> web.StreamResponse:
        self.strays.append(request.raw_path)
        return web.Response(status=404)


Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session() as s:
        yield s


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbound(session: aiohttp.ClientSession, sleep: FakeSleep, clock: FakeClock) -> Outbound:
    return Outbound(session, env={"TEST_KEY": "k-123"}, sleep=sleep, clock=clock)


async def deliver(
    outbound: Outbound,
    partner: Partner,
    operation: Operation = SUBMIT,
    path_values: dict[str, object] | None = None,
    disclosure_id: str = "d-0001",
) -> PartnerReply:
    return await outbound.deliver(
        partner,
        operation,
        body=BODY,
        content_type=JOSE,
        url=build_url(partner, operation, path_values or {}),
        disclosure_id=disclosure_id,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- success and the partner's own answers ----------------------------------------


async def test_success_returns_the_partner_reply(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner()
    partner = make_partner(await serve(fake.app()))
    reply = await outbound.deliver(
        partner,
        SUBMIT,
        body=BODY,
        content_type=JOSE,
        url=build_url(partner, SUBMIT, {}),
        disclosure_id="d-1",
    )
    assert (reply.status, reply.body, reply.attempts) == (201, b'{"ok":true}', 1)
    assert reply.content_type.startswith("application/json")
    assert [(s.method, s.raw_path, s.body) for s in fake.seen] == [("POST", "/v1/items", BODY)]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 422])
async def test_a_4xx_is_the_partners_answer_not_retried(
    serve: Serve, outbound: Outbound, sleep: FakeSleep, code: int
) -> None:
    fake = FakePartner([status(code, body=b'{"error":"no"}')])
    partner = make_partner(await serve(fake.app()))
    reply = await outbound.deliver(
        partner,
        SUBMIT,
        body=BODY,
        content_type=JOSE,
        url=build_url(partner, SUBMIT, {}),
        disclosure_id="d-1",
    )
    assert (reply.status, reply.body, reply.attempts) == (code, b'{"error":"no"}', 1)
    assert len(fake.seen) == 1
    assert sleep.calls == []


# -- transient failures are retried -----------------------------------------------


async def test_timeout_then_success(serve: Serve, outbound: Outbound, sleep: FakeSleep) -> None:
    fake = FakePartner([slow(0.3)])
    partner = make_partner(await serve(fake.app()), timeout_s=0.1)
    reply = await deliver(outbound, partner)
    assert reply.status == 201
    assert reply.attempts == 2
    assert len(sleep.calls) == 1


async def test_every_attempt_timing_out_is_partner_timeout(
    serve: Serve, outbound: Outbound
) -> None:
    fake = FakePartner([slow(0.3), slow(0.3)])
    partner = make_partner(await serve(fake.app()), timeout_s=0.1, max_attempts=2)
    with pytest.raises(DeliveryTimedOut) as caught:
        await deliver(outbound, partner)
    assert caught.value.status == 504
    assert caught.value.code == "partner_timeout"
    assert caught.value.attempts == 2
    assert caught.value.reached_partner is True  # sent, then no answer: maybe received
    assert caught.value.disclosure_id == "d-0001"


async def test_503_then_200(serve: Serve, outbound: Outbound, sleep: FakeSleep) -> None:
    fake = FakePartner([status(503)])
    reply = await deliver(outbound, make_partner(await serve(fake.app())))
    assert reply.status == 201
    assert reply.attempts == 2
    assert len(sleep.calls) == 1
    assert Outbound.BACKOFF_MIN_S <= sleep.calls[0] <= Outbound.BACKOFF_MAX_S


@pytest.mark.parametrize("code", [408, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(serve: Serve, outbound: Outbound, code: int) -> None:
    fake = FakePartner([status(code)])
    reply = await deliver(outbound, make_partner(await serve(fake.app())))
    assert reply.attempts == 2


async def test_429_retry_after_seconds_is_honoured(
    serve: Serve, outbound: Outbound, sleep: FakeSleep
) -> None:
    fake = FakePartner([status(429, headers={"Retry-After": "1"})])
    reply = await deliver(outbound, make_partner(await serve(fake.app())))
    assert reply.attempts == 2
    assert sleep.calls == [1.0]


async def test_429_retry_after_http_date_is_honoured(
    serve: Serve, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    now = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 3, 2, 10, 0, 3, tzinfo=UTC), usegmt=True)
    outbound = Outbound(session, env={}, sleep=sleep, wall_clock=now.timestamp)
    fake = FakePartner([status(429, headers={"Retry-After": later})])
    await deliver(outbound, make_partner(await serve(fake.app())))
    assert sleep.calls == [3.0]


async def test_retry_after_beyond_the_cap_gives_up_at_once(
    serve: Serve, outbound: Outbound, sleep: FakeSleep
) -> None:
    fake = FakePartner([status(429, headers={"Retry-After": "120"})])
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert caught.value.attempts == 1
    assert caught.value.reached_partner is True
    assert caught.value.retry_after_s == 120.0
    assert "retry after 120 s" in caught.value.detail
    assert sleep.calls == []


async def test_retries_never_exceed_max_attempts(
    serve: Serve, outbound: Outbound, sleep: FakeSleep
) -> None:
    fake = FakePartner([status(503)] * 10)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app()), max_attempts=4))
    assert caught.value.status == 502
    assert caught.value.attempts == 4
    assert len(fake.seen) == 4
    assert len(sleep.calls) == 3
    assert all(Outbound.BACKOFF_MIN_S <= s <= Outbound.BACKOFF_MAX_S for s in sleep.calls)


async def test_max_attempts_one_means_no_retry(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(503)])
    with pytest.raises(DeliveryFailed):
        await deliver(outbound, make_partner(await serve(fake.app()), max_attempts=1))
    assert len(fake.seen) == 1


class DroppingServer:
    """A raw HTTP server that drops the first `failures` connections after reading the request."""

    def __init__(self, failures: int, reset: bool) -> None:
        self.failures = failures
        self.reset = reset
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        if self.connections <= self.failures:
            if self.reset:
                # SO_LINGER 0: close sends a TCP RST instead of a FIN.
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_connection_dropped_mid_request_then_success(
    outbound: Outbound, sleep: FakeSleep, reset: bool
) -> None:
    server = DroppingServer(failures=1, reset=reset)
    base = await server.start()
    try:
        reply = await deliver(outbound, make_partner(base))
    finally:
        await server.close()
    assert (reply.status, reply.attempts) == (200, 2)
    assert server.connections == 2
    assert len(sleep.calls) == 1


async def test_connection_dropped_every_time_may_have_reached_the_partner(
    outbound: Outbound,
) -> None:
    server = DroppingServer(failures=99, reset=False)
    base = await server.start()
    try:
        with pytest.raises(DeliveryFailed) as caught:
            await deliver(outbound, make_partner(base, max_attempts=2))
    finally:
        await server.close()
    assert caught.value.attempts == 2
    assert caught.value.reached_partner is True  # the request was read before the drop


async def test_partner_down_is_unavailable_and_never_reached(
    outbound: Outbound, sleep: FakeSleep
) -> None:
    partner = make_partner(f"http://127.0.0.1:{free_port()}", max_attempts=3)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, partner)
    assert caught.value.status == 502
    assert caught.value.attempts == 3
    assert caught.value.reached_partner is False
    assert len(sleep.calls) == 2
    assert "cannot connect" in caught.value.detail


# -- what is not retried ----------------------------------------------------------


async def test_redirects_are_not_followed(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(307, headers={"Location": "/elsewhere/collect"})])
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert caught.value.attempts == 1
    assert caught.value.reached_partner is True
    assert "redirect" in caught.value.detail and "base_url" in caught.value.detail
    assert fake.strays == []  # the Location was never requested


async def test_other_5xx_are_not_retried(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(501)])
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert caught.value.attempts == 1
    assert len(fake.seen) == 1


async def test_an_oversized_reply_is_refused(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(200, body=b"x" * (Outbound.MAX_REPLY_BYTES + 1))])
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert "larger than" in caught.value.detail
    assert len(fake.seen) == 1


# -- header hygiene ---------------------------------------------------------------

ALLOWED = {"host", "content-type", "content-length", "accept", "user-agent", "idempotency-key"}


async def test_the_partner_sees_only_the_allowed_headers(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(503)])
    await deliver(outbound, make_partner(await serve(fake.app())), disclosure_id="d-42")
    assert len(fake.seen) == 2
    for seen in fake.seen:
        assert {name.lower() for name in seen.headers} == ALLOWED
        assert seen.headers["Content-Type"] == JOSE
        assert seen.headers["User-Agent"].startswith("disclosure-gateway")
    # the same key on the retry: the partner can tell it from a second disclosure
    assert [s.headers["Idempotency-Key"] for s in fake.seen] == ["d-42", "d-42"]


async def test_api_key_partner_adds_only_its_key_header(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner()
    auth = PartnerAuth(type="api_key", header="X-Partner-Key", key=SecretRef(env="TEST_KEY"))
    await deliver(outbound, make_partner(await serve(fake.app()), auth=auth))
    (seen,) = fake.seen
    assert {name.lower() for name in seen.headers} == ALLOWED | {"x-partner-key"}
    assert seen.headers["X-Partner-Key"] == "k-123"


async def test_cookies_set_by_a_partner_are_never_sent_back(
    serve: Serve, outbound: Outbound
) -> None:
    fake = FakePartner([status(200, headers={"Set-Cookie": "track=subject-1; Path=/"})])
    partner = make_partner(await serve(fake.app()))
    await deliver(outbound, partner)
    await deliver(outbound, partner)
    assert "Cookie" not in fake.seen[1].headers


async def test_a_session_with_a_cookie_jar_or_default_headers_is_refused() -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(ValueError, match="client_session"):
            Outbound(plain, env={})
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), headers={"Authorization": "Bearer caller"}
    ) as leaky:
        with pytest.raises(ValueError, match="default headers"):
            Outbound(leaky, env={})


# -- URL building: values stay inside one path segment ----------------------------

HOSTILE = [
    "../admin",
    "@evil.example",
    "//evil.example",
    "a/b?c#d",
    "?x=1",
    "#frag",
    "%2e%2e%2fadmin",
    "http://evil.example/x",
    "tx 1/ünïcode",
    "..%2F..",
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_placeholder_values_reach_the_partners_own_route(
    serve: Serve, outbound: Outbound, value: str
) -> None:
    fake = FakePartner()
    base = await serve(fake.app())
    reply = await deliver(outbound, make_partner(base), REFUND, {"transaction_id": value})
    assert reply.status == 201
    (seen,) = fake.seen
    assert seen.match == {"transaction_id": value}  # arrived whole, as one segment
    assert seen.raw_path.startswith("/v1/charges/") and seen.raw_path.endswith("/refunds")
    assert fake.strays == []


@pytest.mark.parametrize("value", HOSTILE)
def test_build_url_keeps_the_partners_host(value: str) -> None:
    partner = make_partner("https://api.partner.example:8443/base")
    url = build_url(partner, REFUND, {"transaction_id": value})
    assert (url.scheme, url.host, url.port) == ("https", "api.partner.example", 8443)
    assert url.raw_path.startswith("/base/v1/charges/")
    assert url.raw_path.count("/") == 5
    assert url.raw_query_string == "" and url.raw_fragment == ""
    assert unquote(url.raw_path.split("/")[4]) == value  # decodes back to exactly the value


def test_build_url_encodes_integers_and_plain_values() -> None:
    partner = make_partner("https://api.partner.example")
    assert str(build_url(partner, REFUND, {"transaction_id": 42})) == (
        "https://api.partner.example/v1/charges/42/refunds"
    )
    assert str(build_url(partner, SUBMIT, {})) == "https://api.partner.example/v1/items"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "needs a value for {transaction_id}"),
        ({"transaction_id": ".."}, "dot segment"),
        ({"transaction_id": "."}, "dot segment"),
        ({"transaction_id": ""}, "dot segment"),
        ({"transaction_id": None}, "string or an integer, got NoneType"),
        ({"transaction_id": True}, "string or an integer, got bool"),
        ({"transaction_id": {"a": 1}}, "string or an integer, got dict"),
    ],
)
async def test_unusable_placeholder_values_are_invalid_requests_and_nothing_is_sent(
    serve: Serve, outbound: Outbound, values: dict[str, object], expected: str
) -> None:
    fake = FakePartner()
    with pytest.raises(GatewayError) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())), REFUND, values)
    assert caught.value.code == "invalid_request"
    assert expected in caught.value.detail
    assert fake.seen == [] and fake.strays == []


async def test_failure_details_never_quote_path_values(outbound: Outbound) -> None:
    partner = make_partner(f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, partner, REFUND, {"transaction_id": "TX-PERSONAL-9911"})
    assert "TX-PERSONAL-9911" not in caught.value.detail
    assert "TX-PERSONAL-9911" not in str(caught.value.problem())
    assert "test-partner" in caught.value.detail and "refund" in caught.value.detail


# -- Retry-After parsing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("1", 1.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        ("Mon, 02 Mar 2026 10:00:05 GMT", 5.0),
        ("Mon, 02 Mar 2026 09:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-1", None),
        ("²", None),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(header, now) == expected


# -- circuit breaker --------------------------------------------------------------


async def test_breaker_opens_rejects_half_opens_and_closes(
    serve: Serve, outbound: Outbound, clock: FakeClock
) -> None:
    fake = FakePartner([status(503)] * 5)
    partner = make_partner(await serve(fake.app()), max_attempts=1)
    for _ in range(5):
        assert outbound.breaker_state(partner.id) == "closed"
        with pytest.raises(DeliveryFailed):
            await deliver(outbound, partner)
    assert outbound.breaker_state(partner.id) == "open"

    with pytest.raises(DeliveryCircuitOpen) as caught:
        await deliver(outbound, partner)
    assert (caught.value.status, caught.value.code) == (503, "circuit_open")
    assert caught.value.attempts == 0 and caught.value.reached_partner is False
    assert caught.value.retry_after_s == 30.0
    assert len(fake.seen) == 5  # rejected without a request

    clock.now += 30
    assert outbound.breaker_state(partner.id) == "half_open"
    reply = await deliver(outbound, partner)
    assert reply.status == 201
    assert outbound.breaker_state(partner.id) == "closed"


async def test_a_failed_trial_reopens_the_circuit(
    serve: Serve, outbound: Outbound, clock: FakeClock
) -> None:
    fake = FakePartner([status(503)] * 6)
    partner = make_partner(await serve(fake.app()), max_attempts=1)
    for _ in range(5):
        with pytest.raises(DeliveryFailed):
            await deliver(outbound, partner)
    clock.now += 31
    with pytest.raises(DeliveryFailed):
        await deliver(outbound, partner)  # the trial
    assert outbound.breaker_state(partner.id) == "open"
    with pytest.raises(DeliveryCircuitOpen):
        await deliver(outbound, partner)
    assert len(fake.seen) == 6


async def test_partner_answers_keep_the_circuit_closed(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(422)] * 8)
    partner = make_partner(await serve(fake.app()))
    for _ in range(8):
        await deliver(outbound, partner)
    assert outbound.breaker_state(partner.id) == "closed"


async def test_a_success_resets_the_failure_count(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([*[status(503)] * 4, status(200), *[status(503)] * 4])
    partner = make_partner(await serve(fake.app()), max_attempts=1)
    for step in range(9):
        if step == 4:
            await deliver(outbound, partner)
        else:
            with pytest.raises(DeliveryFailed):
                await deliver(outbound, partner)
    assert outbound.breaker_state(partner.id) == "closed"


def test_half_open_lets_exactly_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=clock)
    states: list[str] = []
    breaker.record_failure()
    states.append(breaker.state)
    breaker.record_failure()
    states.append(breaker.state)
    assert not breaker.try_acquire()
    assert breaker.retry_in() == 10
    clock.now += 10
    states.append(breaker.state)
    assert breaker.try_acquire()
    assert not breaker.try_acquire()  # a second delivery waits for the trial's verdict
    breaker.release()  # the trial was cancelled: the next delivery may try
    assert breaker.try_acquire()
    breaker.record_success()
    states.append(breaker.state)
    assert breaker.try_acquire()
    assert states == ["closed", "open", "half_open", "closed"]


def test_breaker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown_s=0)


async def test_a_cancelled_trial_does_not_wedge_the_circuit(
    serve: Serve, outbound: Outbound, clock: FakeClock
) -> None:
    fake = FakePartner([*[status(503)] * 5, slow(5)])
    partner = make_partner(await serve(fake.app()), max_attempts=1, timeout_s=10)
    for _ in range(5):
        with pytest.raises(DeliveryFailed):
            await deliver(outbound, partner)
    clock.now += 30
    trial = asyncio.create_task(deliver(outbound, partner))
    while len(fake.seen) < 6:
        await asyncio.sleep(0.01)
    with pytest.raises(DeliveryCircuitOpen):
        await deliver(outbound, partner)  # only one trial at a time
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    reply = await deliver(outbound, partner)
    assert reply.status == 201
    assert outbound.breaker_state(partner.id) == "closed"


# -- preflight --------------------------------------------------------------------


def test_preflight_names_every_missing_secret_without_values(
    session: aiohttp.ClientSession,
) -> None:
    keyed = make_partner(
        "https://a.example", auth=PartnerAuth(type="api_key", key=SecretRef(env="MISSING_KEY"))
    )
    outbound = Outbound(session, env={"UNRELATED": "s3cret"})
    with pytest.raises(ConfigErrors) as caught:
        outbound.preflight([keyed, make_partner("https://b.example")])
    (error,) = caught.value.errors
    assert "MISSING_KEY" in error.message and "s3cret" not in error.message


# -- Retry-After: set exactly when a retry can succeed (gateway_client/problems.py) -------


async def test_a_transient_failure_after_retries_says_when_to_retry(
    serve: Serve, outbound: Outbound
) -> None:
    fake = FakePartner([status(503)] * 3)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert caught.value.retry_after_s == PARTNER_RETRY_AFTER_S == Outbound.BACKOFF_MAX_S


async def test_the_partners_own_retry_after_is_passed_on(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([status(429, headers={"Retry-After": "3"})] * 3)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert caught.value.retry_after_s == 3.0


async def test_a_partner_down_says_when_to_retry(outbound: Outbound) -> None:
    partner = make_partner(f"http://127.0.0.1:{free_port()}", max_attempts=2)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, partner)
    assert caught.value.retry_after_s == PARTNER_RETRY_AFTER_S


async def test_a_timeout_says_when_to_retry(serve: Serve, outbound: Outbound) -> None:
    fake = FakePartner([slow(0.3), slow(0.3)])
    partner = make_partner(await serve(fake.app()), timeout_s=0.1, max_attempts=2)
    with pytest.raises(DeliveryTimedOut) as caught:
        await deliver(outbound, partner)
    assert caught.value.retry_after_s == PARTNER_RETRY_AFTER_S


async def test_the_failure_that_opens_the_circuit_says_when_it_half_opens(
    serve: Serve, outbound: Outbound
) -> None:
    fake = FakePartner([status(503)] * 5)
    partner = make_partner(await serve(fake.app()), max_attempts=1)
    for _ in range(4):
        with pytest.raises(DeliveryFailed) as caught:
            await deliver(outbound, partner)
        assert caught.value.retry_after_s == PARTNER_RETRY_AFTER_S
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, partner)  # the fifth failure opens the circuit
    assert outbound.breaker_state(partner.id) == "open"
    assert caught.value.retry_after_s == 30.0


@pytest.mark.parametrize(
    "answer",
    [
        status(307, headers={"Location": "/elsewhere"}),  # base_url must be fixed
        status(501),  # not a transient status
        status(200, body=b"x" * (Outbound.MAX_REPLY_BYTES + 1)),
    ],
    ids=["redirect", "501", "oversized"],
)
async def test_a_failure_an_operator_must_fix_has_no_retry_after(
    serve: Serve, outbound: Outbound, answer: Step
) -> None:
    fake = FakePartner([answer])
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, make_partner(await serve(fake.app())))
    assert caught.value.retry_after_s is None


async def test_a_missing_secret_has_no_retry_after(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    auth = PartnerAuth(type="api_key", header="X-Partner-Key", key=SecretRef(env="MISSING_KEY"))
    partner = make_partner(await serve(FakePartner().app()), auth=auth)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(Outbound(session, env={}), partner)
    assert caught.value.misconfigured is True
    assert caught.value.retry_after_s is None
