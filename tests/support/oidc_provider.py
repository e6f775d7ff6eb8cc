"""A small OpenID provider on loopback, for the review site's sign-in tests.

Discovery, JWKS, an authorization endpoint that approves its one configured person at
once, and a token endpoint that checks the client secret, the redirect URI and the PKCE
verifier (S256, authlib's check) and answers with an RS256 ID token. It listens on
127.0.0.1 but is named ``http://localhost:<port>``: to a browser another *site* than the
gateway at ``127.0.0.1``, as a real provider is, so the cookie rules of a cross-site
answer apply.

With `interactive`, it shows a page with a link back instead of redirecting at once.
Knobs make it misbehave the way the gateway must refuse: `forge` (sign with a key it does
not publish, under a published kid), `wrong_nonce`, `expired`, `audience`, `token_issuer`,
or a person whose `groups` is None (no roles claim at all).

    async with running_provider(clock) as provider:
        provider.issuer  # http://localhost:PORT
"""

from __future__ import annotations

import html
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import BasicAuth, web
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "disclosure-gateway"
CLIENT_SECRET = "loopback-provider-client-secret"
KID = "provider-key-1"


@dataclass
class ProviderPerson:
    sub: str = "7d3f0c2a-reviewer-dara"
    name: str = "Dara Phommachanh"
    groups: list[str] | None = field(default_factory=lambda: ["privacy-reviewers"])


@dataclass
class _Grant:
    redirect_uri: str
    nonce: str
    challenge: str


@dataclass
class LoopbackProvider:
    clock: Callable[[], datetime]
    person: ProviderPerson = field(default_factory=ProviderPerson)
    port: int = 0
    forge: bool = False
    wrong_nonce: bool = False
    expired: bool = False
    audience: str | list[str] = CLIENT_ID  # the ID token's aud (another client's: refused)
    token_issuer: str | None = None  # the ID token's iss when not the provider's own
    # A page with an "Approve" link instead of an immediate redirect: the navigation back to
    # the gateway then starts on the provider's site, as after a real sign-in form, and the
    # browser treats it as cross-site (an immediate 302 would keep the gateway as initiator).
    interactive: bool = False
    device: bool = False  # offer the device authorization grant (RFC 8628)
    device_codes: dict[str, int] = field(default_factory=dict)  # polls so far
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": KID}))
    codes: dict[str, _Grant] = field(default_factory=dict)
    token_requests: int = 0

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_post("/device", self._device)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
            | ({"device_authorization_endpoint": f"{self.issuer}/device"} if self.device else {})
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return web.Response(status=400, text="unknown client or response type")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.Response(status=400, text="PKCE S256 required")
        if "openid" not in q.get("scope", "").split() or not q.get("nonce"):
            return web.Response(status=400, text="openid scope and nonce required")
        code = secrets.token_urlsafe(16)
        self.codes[code] = _Grant(q["redirect_uri"], q["nonce"], q["code_challenge"])
        back = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}"
        if self.interactive:
            page = (
                "<!doctype html><title>Loopback provider</title><h1>Loopback provider</h1>"
                f"<p>Signed in as {html.escape(self.person.name)}.</p>"
                f'<a id="approve" href="{html.escape(back)}">Continue to the gateway</a>'
            )
            return web.Response(text=page, content_type="text/html")
        return web.Response(status=302, headers={"Location": back})

    async def _device(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not self.device or form.get("client_id") != CLIENT_ID:
            return web.json_response({"error": "invalid_client"}, status=400)
        code = secrets.token_urlsafe(16)
        self.device_codes[code] = 0
        return web.json_response(
            {
                "device_code": code,
                "user_code": "WDJB-MJHT",
                "verification_uri": f"{self.issuer}/activate",
                "expires_in": 600,
                "interval": 0,  # no waiting in tests
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        if (auth.login, auth.password) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_token(str(form.get("device_code")))
        grant = self.codes.pop(str(form.get("code")), None)  # a code is good once
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if not compare_s256_code_challenge(str(form.get("code_verifier")), grant.challenge):
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(
            {"access_token": "opaque", "token_type": "Bearer", "id_token": self.id_token(grant)}
        )

    def _device_token(self, device_code: str) -> web.Response:
        polls = self.device_codes.get(device_code)
        if polls is None:
            return web.json_response({"error": "expired_token"}, status=400)
        self.device_codes[device_code] = polls + 1
        if polls == 0:  # the person has not approved yet
            return web.json_response({"error": "authorization_pending"}, status=400)
        del self.device_codes[device_code]
        return web.json_response({"token_type": "Bearer", "id_token": self.id_token(None)})

    def id_token(self, grant: _Grant | None) -> str:
        now = self.clock()
        exp = now - timedelta(minutes=5) if self.expired else now + timedelta(minutes=5)
        claims: dict[str, Any] = {
            "iss": self.token_issuer or self.issuer,
            "sub": self.person.sub,
            "aud": self.audience,
            "iat": int((now - timedelta(minutes=10 if self.expired else 0)).timestamp()),
            "exp": int(exp.timestamp()),
            "name": self.person.name,
        }
        if grant is not None:  # the device grant has no nonce
            claims["nonce"] = "another-sign-in" if self.wrong_nonce else grant.nonce
        if self.person.groups is not None:
            claims["groups"] = self.person.groups
        key = RSAKey.generate_key(2048, parameters={"kid": KID}) if self.forge else self.key
        return jwt.encode({"alg": "RS256", "kid": KID}, claims, key)


@asynccontextmanager
async def running_provider(clock: Callable[[], datetime]) -> AsyncIterator[LoopbackProvider]:
    """The provider served on 127.0.0.1 (a free port), named as localhost."""
    provider = LoopbackProvider(clock)
    runner = web.AppRunner(provider.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    provider.port = int(runner.addresses[0][1])
    try:
        yield provider
    finally:
        await runner.cleanup()
