"""Partner authentication: API keys, OAuth2 client credentials (authlib) and mTLS.

The OAuth2 token endpoint and the partner API are one real aiohttp app on a
loopback port that checks the client authentication the way an authorization
server would — including the RFC 7523 assertion's signature and claims with
the public key. mTLS runs against a loopback HTTPS server that requires a
client certificate, all certificates made by trustme.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote_plus

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc import jwk, jwt

from gateway.errors import ConfigErrors
from gateway.outbound.delivery import (
    DeliveryFailed,
    Outbound,
    PartnerReply,
    client_session,
)
from gateway.outbound.partner_url import build_url
from gateway.partners.model import Operation, Partner, PartnerAuth, PartnerEncryption, SecretRef

SUBMIT = Operation(
    "submit",
    "POST",
    "/v1/items",
    frozenset({"service_provision"}),
    frozenset({"contract"}),
    MappingProxyType({"uuid": "pseudonym"}),
)
BODY = b"sealed.jwe.payload"
CLIENT_ID = "kokkok-car"
SECRET = "s3cret-Value-42"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def make_partner(
    base_url: str,
    auth: PartnerAuth,
    *,
    max_attempts: int = 3,
    ca_bundle: Path | None = None,
    timeout_s: float = 2.0,
) -> Partner:
    return Partner(
        id="auth-partner",
        name="Auth Partner",
        category="payment_processor",
        jurisdiction="LA",
        agreement="DPA-TEST",
        base_url=base_url,
        retention_days=30,
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        privacy_contact=None,
        auth=auth,
        encryption=PartnerEncryption("RSA-OAEP-256", "A256GCM", "ES256", None, None),
        operations=MappingProxyType({"submit": SUBMIT}),
        ca_bundle=ca_bundle,
    )


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


Step = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(code: int, doc: object) -> Step:
    async def step(request: web.Request) -> web.StreamResponse:
        return web.json_response(doc, status=code)

    return step


@dataclass
class AuthServer:
    """An OAuth2 token endpoint and the partner API behind it."""

    method: str  # client_secret_basic | client_secret_post | private_key_jwt
    secret: str = SECRET
    public_key: jwk.Key | None = None
    alg: str = "ES256"
    expires_in: object = 3600
    delay: float = 0.0
    token_script: list[Step] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # tokens the API answers 401 to
    token_url: str = ""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_auth_headers: list[str | None] = field(default_factory=list)
    assertions: list[tuple[dict[str, object], dict[str, object]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    api_seen: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self.token)
        app.router.add_post("/v1/items", self.api)
        return app

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        self.token_auth_headers.append(request.headers.get("Authorization"))
        if self.token_script:
            return await self.token_script.pop(0)(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        problem = self.check_client(request, form)
        if problem:
            self.failures.append(problem)
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    def check_client(self, request: web.Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("Authorization")
        if self.method == "client_secret_basic":
            # RFC 6749 §2.3.1: form-urlencoded, then Basic.
            scheme, _, encoded = (header or "").partition(" ")
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            if scheme != "Basic" or "client_secret" in form:
                return "basic credentials missing"
            if (unquote_plus(client_id), unquote_plus(secret)) != (CLIENT_ID, self.secret):
                return "basic credentials wrong"
            return None
        if self.method == "client_secret_post":
            if header is not None:
                return "post must not send Authorization"
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, self.secret):
                return "post credentials wrong"
            return None
        if header is not None or "client_secret" in form:
            return "private_key_jwt must not send a secret"
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return "wrong assertion type"
        assert self.public_key is not None
        try:
            token = jwt.decode(form["client_assertion"], self.public_key, algorithms=[self.alg])
        except Exception as exc:
            return f"assertion did not verify: {exc!r}"
        self.assertions.append((dict(token.header), dict(token.claims)))
        claims = token.claims
        now = time.time()
        if claims.get("iss") != CLIENT_ID or claims.get("sub") != CLIENT_ID:
            return "iss/sub must be the client id"
        if claims.get("aud") != self.token_url:
            return "aud must be the token endpoint"
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + 300:
            return "exp missing, past or too far"
        if not claims.get("jti"):
            return "jti missing"
        return None

    async def api(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        self.api_seen.append(header)
        token = (header or "").removeprefix("Bearer ")
        if token not in self.issued or token in self.refuse:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True}, status=201)


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[TestServer] = []

    async def start(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(ssl=ssl_context)
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
    return Outbound(
        session, env={"CLIENT_SECRET": SECRET, "API_KEY": "ak-1"}, sleep=sleep, clock=clock
    )


async def deliver(outbound: Outbound, partner: Partner) -> PartnerReply:
    return await outbound.deliver(
        partner,
        SUBMIT,
        body=BODY,
        content_type="application/jose",
        url=build_url(partner, SUBMIT, {}),
        disclosure_id="d-auth-1",
    )


async def oauth_partner(
    serve: Serve,
    server: AuthServer,
    *,
    private_key_file: Path | None = None,
    max_attempts: int = 3,
    secret: SecretRef | None = None,
) -> Partner:
    base = await serve(server.app())
    server.token_url = f"{base}/oauth/token"
    auth = PartnerAuth(
        type="oauth2_client_credentials",
        token_url=server.token_url,
        client_id=CLIENT_ID,
        client_secret=None if private_key_file else (secret or SecretRef(env="CLIENT_SECRET")),
        scope="payments.write",
        token_endpoint_auth_method=server.method,
        private_key_file=private_key_file,
    )
    return make_partner(base, auth, max_attempts=max_attempts)


# -- OAuth2 client authentication (authlib) ---------------------------------------


async def test_client_secret_basic(serve: Serve, outbound: Outbound) -> None:
    server = AuthServer("client_secret_basic")
    reply = await deliver(outbound, await oauth_partner(serve, server))
    assert reply.status == 201, server.failures
    (form,) = server.token_requests
    assert form == {"grant_type": "client_credentials", "scope": "payments.write"}
    assert server.api_seen == ["Bearer tok-1"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_secret_with_odd_characters_survives_encoding(
    serve: Serve, session: aiohttp.ClientSession, method: str
) -> None:
    odd = "odd secret/with:colon%41+plus"
    server = AuthServer(method, secret=odd)
    outbound = Outbound(session, env={"CLIENT_SECRET": odd})
    reply = await deliver(outbound, await oauth_partner(serve, server))
    assert reply.status == 201, server.failures


async def test_client_secret_post(serve: Serve, outbound: Outbound) -> None:
    server = AuthServer("client_secret_post")
    reply = await deliver(outbound, await oauth_partner(serve, server))
    assert reply.status == 201, server.failures
    assert server.token_auth_headers == [None]
    assert server.token_requests[0]["client_secret"] == SECRET


def private_key(alg: str) -> jwk.ECKey | jwk.RSAKey | jwk.OKPKey:
    if alg == "ES256":
        return jwk.ECKey.generate_key("P-256", parameters={"kid": "gw-ec"})
    if alg == "RS256":
        return jwk.RSAKey.generate_key(2048, parameters={"kid": "gw-rsa"})
    return jwk.OKPKey.generate_key("Ed25519", parameters={"kid": "gw-ed"})


@pytest.mark.parametrize("alg", ["ES256", "RS256", "Ed25519"])
async def test_private_key_jwt_assertion_verifies_with_the_public_key(
    serve: Serve, outbound: Outbound, tmp_path: Path, alg: str
) -> None:
    key = private_key(alg)
    key_file = tmp_path / "client.private.jwk.json"
    key_file.write_text(json.dumps(key.as_dict(private=True)))
    public = jwk.import_key(key.as_dict(private=False))
    server = AuthServer("private_key_jwt", public_key=public, alg=alg)
    partner = await oauth_partner(serve, server, private_key_file=key_file)

    reply = await deliver(outbound, partner)

    assert reply.status == 201, server.failures
    ((header, claims),) = server.assertions
    assert header["alg"] == alg and header["kid"] == key.kid
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == server.token_url
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - time.time() <= 120 + 5  # short-lived
    form = server.token_requests[0]
    assert form["client_id"] == CLIENT_ID and "client_secret" not in form


async def test_each_assertion_has_its_own_jti(
    serve: Serve, outbound: Outbound, clock: FakeClock, tmp_path: Path
) -> None:
    key = jwk.ECKey.generate_key("P-256")
    key_file = tmp_path / "k.json"
    key_file.write_text(json.dumps(key.as_dict(private=True)))
    server = AuthServer("private_key_jwt", public_key=jwk.import_key(key.as_dict(private=False)))
    server.expires_in = 60
    partner = await oauth_partner(serve, server, private_key_file=key_file)
    await deliver(outbound, partner)
    clock.now += 61
    await deliver(outbound, partner)
    assert len(server.assertions) == 2
    assert server.assertions[0][1]["jti"] != server.assertions[1][1]["jti"]


async def test_a_private_key_file_holding_a_public_key_is_refused_at_preflight(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    key = jwk.ECKey.generate_key("P-256")
    key_file = tmp_path / "public.jwk.json"
    key_file.write_text(json.dumps(key.as_dict(private=False)))
    auth = PartnerAuth(
        type="oauth2_client_credentials",
        token_url="https://auth.example/token",
        client_id=CLIENT_ID,
        token_endpoint_auth_method="private_key_jwt",
        private_key_file=key_file,
    )
    with pytest.raises(ConfigErrors) as caught:
        Outbound(session, env={}).preflight([make_partner("https://api.example", auth)])
    assert "private half" in str(caught.value)


# -- the token: cached, refreshed, shared -----------------------------------------


async def test_the_token_is_cached_across_deliveries(serve: Serve, outbound: Outbound) -> None:
    server = AuthServer("client_secret_basic")
    partner = await oauth_partner(serve, server)
    await deliver(outbound, partner)
    await deliver(outbound, partner)
    assert len(server.token_requests) == 1
    assert server.api_seen == ["Bearer tok-1", "Bearer tok-1"]


async def test_the_token_is_renewed_shortly_before_it_expires(
    serve: Serve, outbound: Outbound, clock: FakeClock
) -> None:
    server = AuthServer("client_secret_basic", expires_in="120")  # some servers send a string
    partner = await oauth_partner(serve, server)
    await deliver(outbound, partner)
    clock.now += 100
    await deliver(outbound, partner)
    assert len(server.token_requests) == 1
    clock.now += 9  # within a tenth of the lifetime of expiry
    await deliver(outbound, partner)
    assert server.api_seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_a_401_drops_the_token_and_retries_once(serve: Serve, outbound: Outbound) -> None:
    server = AuthServer("client_secret_basic", refuse={"tok-1"})
    reply = await deliver(outbound, await oauth_partner(serve, server))
    assert reply.status == 201
    assert reply.attempts == 2
    assert len(server.token_requests) == 2
    assert server.api_seen == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_second_401_is_the_partners_answer(serve: Serve, outbound: Outbound) -> None:
    server = AuthServer("client_secret_basic", refuse={"tok-1", "tok-2", "tok-3"})
    reply = await deliver(outbound, await oauth_partner(serve, server))
    assert reply.status == 401
    assert len(server.token_requests) == 2
    assert len(server.api_seen) == 2


async def test_concurrent_deliveries_share_one_token_fetch(
    serve: Serve, outbound: Outbound
) -> None:
    server = AuthServer("client_secret_basic", delay=0.05)
    partner = await oauth_partner(serve, server)
    replies = await asyncio.gather(*(deliver(outbound, partner) for _ in range(6)))
    assert [r.status for r in replies] == [201] * 6
    assert len(server.token_requests) == 1
    assert set(server.api_seen) == {"Bearer tok-1"}


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(
    serve: Serve, outbound: Outbound
) -> None:
    server = AuthServer("client_secret_basic", delay=0.1)
    partner = await oauth_partner(serve, server)
    first = asyncio.create_task(deliver(outbound, partner))
    second = asyncio.create_task(deliver(outbound, partner))
    while not server.token_requests:
        await asyncio.sleep(0.01)
    first.cancel()
    reply = await second
    assert reply.status == 201
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(server.token_requests) == 1


# -- token endpoint failures ------------------------------------------------------


async def test_a_refused_client_is_partner_unavailable_and_not_retried(
    serve: Serve, outbound: Outbound, session: aiohttp.ClientSession
) -> None:
    server = AuthServer("client_secret_basic")
    wrong = Outbound(session, env={"CLIENT_SECRET": "not-the-secret"})
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(wrong, await oauth_partner(serve, server))
    error = caught.value
    assert (error.status, error.attempts, error.reached_partner) == (502, 0, False)
    assert "invalid_client" in error.detail and "client_id" in error.detail
    assert "not-the-secret" not in error.detail
    assert len(server.token_requests) == 1
    assert server.api_seen == []


async def test_a_busy_token_endpoint_is_retried(
    serve: Serve, outbound: Outbound, sleep: FakeSleep
) -> None:
    server = AuthServer("client_secret_basic")
    server.token_script = [answer(503, {"error": "temporarily_unavailable"})] * 2
    reply = await deliver(outbound, await oauth_partner(serve, server))
    assert reply.status == 201
    assert reply.attempts == 1  # requests that reached the partner API
    assert len(server.token_requests) == 3
    assert len(sleep.calls) == 2


async def test_a_token_endpoint_that_stays_down_is_partner_unavailable(
    serve: Serve, outbound: Outbound
) -> None:
    server = AuthServer("client_secret_basic")
    server.token_script = [answer(503, {})] * 5
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, await oauth_partner(serve, server, max_attempts=2))
    assert caught.value.reached_partner is False
    assert caught.value.attempts == 0
    assert len(server.token_requests) == 2
    assert "token endpoint" in caught.value.detail
    assert "gave up after 2 tries" in caught.value.detail


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"access_token": "abc", "token_type": "mac"}, "token_type must be Bearer"),
        ({"token_type": "Bearer"}, "no usable access_token"),
        ({"access_token": "a b\r\nX-Injected: 1", "token_type": "Bearer"}, "no usable"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
async def test_unusable_token_answers_are_refused(
    serve: Serve, outbound: Outbound, doc: object, expected: str
) -> None:
    server = AuthServer("client_secret_basic")
    server.token_script = [answer(200, doc)]
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, await oauth_partner(serve, server))
    assert expected in caught.value.detail
    assert server.api_seen == []


async def test_client_secret_from_a_file(serve: Serve, outbound: Outbound, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    server = AuthServer("client_secret_post")
    partner = await oauth_partner(serve, server, secret=SecretRef(file=secret_file))
    assert (await deliver(outbound, partner)).status == 201


# -- API keys and misconfiguration ------------------------------------------------


@dataclass
class KeyedApi:
    seen: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/items", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.headers.get("X-Api-Key"))
        return web.Response(status=200)


async def test_api_key_from_a_file_is_read_once(
    serve: Serve, outbound: Outbound, tmp_path: Path
) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text("file-key-1\n")
    api = KeyedApi()
    auth = PartnerAuth(type="api_key", header="X-Api-Key", key=SecretRef(file=key_file))
    partner = make_partner(await serve(api.app()), auth)
    await deliver(outbound, partner)
    key_file.write_text("file-key-2\n")
    await deliver(outbound, partner)
    assert api.seen == ["file-key-1", "file-key-1"]


async def test_a_missing_secret_fails_without_a_request_and_leaves_the_circuit_alone(
    serve: Serve, outbound: Outbound
) -> None:
    api = KeyedApi()
    auth = PartnerAuth(type="api_key", key=SecretRef(env="NOT_SET_ANYWHERE"))
    partner = make_partner(await serve(api.app()), auth)
    for _ in range(7):
        with pytest.raises(DeliveryFailed) as caught:
            await deliver(outbound, partner)
        assert caught.value.misconfigured and caught.value.attempts == 0
    assert "NOT_SET_ANYWHERE" in caught.value.detail
    assert api.seen == []
    assert outbound.breaker_state(partner.id) == "closed"


@pytest.mark.parametrize("header", ["Content-Type", "Idempotency-Key", "Host"])
def test_an_api_key_header_may_not_replace_the_gateways_headers(
    session: aiohttp.ClientSession, header: str
) -> None:
    auth = PartnerAuth(type="api_key", header=header, key=SecretRef(env="API_KEY"))
    with pytest.raises(ConfigErrors, match="would replace a header"):
        Outbound(session, env={"API_KEY": "x"}).preflight(
            [make_partner("https://api.example", auth)]
        )


def test_a_secret_with_a_line_break_is_refused(session: aiohttp.ClientSession) -> None:
    auth = PartnerAuth(type="api_key", key=SecretRef(env="API_KEY"))
    with pytest.raises(ConfigErrors, match="control characters") as caught:
        Outbound(session, env={"API_KEY": "a\r\nInjected: 1"}).preflight(
            [make_partner("https://api.example", auth)]
        )
    assert "Injected" not in str(caught.value)


# -- mTLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@dataclass
class TlsFiles:
    ca_bundle: Path
    client_cert: Path
    client_key: Path


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> TlsFiles:
    client = ca.issue_cert("gateway.kokkok.example", common_name="disclosure-gateway")
    files = TlsFiles(tmp_path / "ca.pem", tmp_path / "client.crt.pem", tmp_path / "client.key.pem")
    ca.cert_pem.write_to_path(str(files.ca_bundle))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files


def server_context(issuer: trustme.CA, client_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issuer.issue_cert("127.0.0.1").configure_cert(context)
    client_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class TlsApi:
    peers: list[object] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/items", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peercert"))
        return web.Response(status=200, text="verified")


def mtls(files: TlsFiles) -> PartnerAuth:
    return PartnerAuth(type="mtls", cert_file=files.client_cert, cert_key_file=files.client_key)


async def test_mtls_presents_the_client_certificate_and_pins_the_ca(
    serve: Serve, outbound: Outbound, ca: trustme.CA, tls_files: TlsFiles
) -> None:
    api = TlsApi()
    base = await serve(api.app(), server_context(ca, ca))
    assert base.startswith("https://127.0.0.1:")
    partner = make_partner(base, mtls(tls_files), ca_bundle=tls_files.ca_bundle)
    reply = await deliver(outbound, partner)
    assert (reply.status, reply.body) == (200, b"verified")
    (peer,) = api.peers
    assert isinstance(peer, dict)
    assert (("commonName", "disclosure-gateway"),) in peer["subject"]


async def test_a_server_certificate_from_another_ca_is_refused(
    serve: Serve, outbound: Outbound, ca: trustme.CA, tls_files: TlsFiles, sleep: FakeSleep
) -> None:
    impostor = trustme.CA()
    api = TlsApi()
    base = await serve(api.app(), server_context(impostor, ca))
    partner = make_partner(base, mtls(tls_files), ca_bundle=tls_files.ca_bundle)
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, partner)
    assert "TLS verification failed" in caught.value.detail
    assert caught.value.attempts == 1 and caught.value.reached_partner is False
    assert sleep.calls == []  # a TLS refusal is not weather: not retried
    assert api.peers == []


async def test_without_a_ca_bundle_only_the_system_store_is_trusted(
    serve: Serve, outbound: Outbound, ca: trustme.CA, tls_files: TlsFiles
) -> None:
    api = TlsApi()
    base = await serve(api.app(), server_context(ca, ca))
    with pytest.raises(DeliveryFailed, match="TLS verification failed"):
        await deliver(outbound, make_partner(base, mtls(tls_files)))
    assert api.peers == []


async def test_a_server_requiring_a_client_certificate_refuses_a_gateway_without_one(
    serve: Serve, outbound: Outbound, ca: trustme.CA, tls_files: TlsFiles
) -> None:
    api = TlsApi()
    base = await serve(api.app(), server_context(ca, ca))
    partner = make_partner(
        base, PartnerAuth(type="none"), ca_bundle=tls_files.ca_bundle, max_attempts=1
    )
    with pytest.raises(DeliveryFailed):
        await deliver(outbound, partner)
    assert api.peers == []


async def test_missing_client_certificate_files_are_a_configuration_error(
    outbound: Outbound, tls_files: TlsFiles, tmp_path: Path
) -> None:
    auth = PartnerAuth(
        type="mtls", cert_file=tmp_path / "absent.pem", cert_key_file=tls_files.client_key
    )
    partner = make_partner("https://127.0.0.1:1", auth, ca_bundle=tls_files.ca_bundle)
    with pytest.raises(ConfigErrors, match="cannot load the TLS files"):
        outbound.preflight([partner])
    with pytest.raises(DeliveryFailed) as caught:
        await deliver(outbound, partner)
    assert caught.value.misconfigured and caught.value.attempts == 0


def test_mtls_over_plain_http_is_a_configuration_error(
    session: aiohttp.ClientSession, tls_files: TlsFiles
) -> None:
    partner = make_partner("http://127.0.0.1:9104", mtls(tls_files))
    with pytest.raises(ConfigErrors, match="mtls needs an https:// base_url"):
        Outbound(session, env={}).preflight([partner])
