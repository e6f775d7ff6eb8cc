"""One loopback sandbox partner: a small aiohttp app that plays a partner of partners/*.toml.

`gateway demo`, the end-to-end tests and the benchmarks point the gateway at these
instead of real partners (`cluster.start_sandboxes` serves them all). Each one checks
what a careful real partner would check: its own authentication (`credentials`: API
key, OAuth2 client credentials with its own token endpoint, mTLS), the JWE with
exactly the algorithms of its partner file, the gateway's JWS against the published
JWKS, audience, expiry, purpose, basis and the agreed fields (`checks`). It remembers
each Idempotency-Key, so a repeat gets the first answer and is recorded once, and it
records what it received as field NAMES only: no value of a disclosure is ever kept,
printed or logged here. A partner whose file says `acknowledgement = "jws"` signs a
receipt of the exact body it received (`Disclosure-Acknowledgement`, see
gateway.crypto.acknowledgement) with its own key from `gateway keys generate`.

Faults (`faults`) are injected in process through `SandboxPartner.fail_next` and
friends, or over HTTP with `POST /_sandbox/faults`, so a separate process (the demo,
a benchmark) can steer it; `GET /_sandbox/received`, `/rejections` and `/faults` show
what it holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from aiohttp import web
from joserfc.jwk import ECKey, OKPKey, import_key

from gateway.crypto.acknowledgement import ACK_HEADER, sign_acknowledgement
from gateway.crypto.keyring import KeyPaths
from gateway.partners.model import Operation, Partner
from gateway.sandbox.checks import JOSE, Envelope, check_claims
from gateway.sandbox.credentials import (
    ClientAuth,
    ClientSecrets,
    Clock,
    read_client_secrets,
    read_jwk,
)
from gateway.sandbox.faults import AckSpoil, Faults, answer_with
from gateway.sandbox.refusal import Refusal

__all__ = ["SANDBOX_KEY", "Received", "Rejection", "SandboxPartner"]

log = logging.getLogger(__name__)

# Where the sandbox's own controls live; no partner operation path starts with it.
CONTROL_PREFIX: Final = "/_sandbox"


# -- what the sandbox remembers ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One accepted disclosure, as names only: what the partner got, never the values."""

    disclosure_id: str
    operation: str
    purpose: str
    legal_basis: str
    fields: list[str]  # sorted names of the top-level keys of `data`
    headers: list[str]  # sorted, lower-cased request header names
    at: datetime
    notice: str | None = None  # a notice's kind (erasure, consent_withdrawn…): its `notice` claim
    # A consent_withdrawn notice's `disclosure_ids`: the disclosures it is about.
    about: list[str] | None = None

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True)
class Rejection:
    """One request the sandbox refused, so a failing test can say why (no values)."""

    endpoint: str  # operation name, or "token"
    status: int
    error: str
    detail: str
    at: datetime

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str
    acknowledgement: str | None = None

    def response(self) -> web.Response:
        headers = {ACK_HEADER: self.acknowledgement} if self.acknowledgement else None
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=headers
        )


# -- one partner ---------------------------------------------------------------------------


class SandboxPartner:
    """Plays one partner: its operations, its token endpoint, its checks and its faults.

    Build one with `from_keys` (reads the sandbox material under keys/) or with the
    material in hand, then serve `app()`. The instance is the fault control and the
    record of what was received.
    """

    def __init__(
        self,
        partner: Partner,
        *,
        private_key: Mapping[str, Any],
        gateway_jwks: str | Mapping[str, Any],
        api_key: str | None = None,
        client_secret: str | None = None,
        client_public_key: Mapping[str, Any] | None = None,
        token_ttl: float = 300.0,
        encrypt_responses: bool = False,
        expected_issuer: str | None = None,
        clock: Clock = time.time,
        remember: bool = True,
        acknowledgement_key: Mapping[str, Any] | None = None,
    ) -> None:
        self.partner = partner
        # remember=False (benchmarks): answer every request afresh and keep no record, so a
        # partner does the same work for a replayed JWE as for a new one, in constant memory.
        self.remember = remember
        self.faults = Faults()
        # The fault controls on the partner itself, as tests and the demo steer it.
        self.fail_next = self.faults.fail_next
        self.hang_next = self.faults.hang_next
        self.reset_next = self.faults.reset_next
        self.slow_body = self.faults.slow_body
        self.drip_body = self.faults.drip_body
        self.cut_body = self.faults.cut_body
        self.bad_ack = self.faults.bad_ack
        self.encrypt_responses = encrypt_responses
        self.expected_issuer = expected_issuer
        self._clock = clock
        self._envelope = Envelope(partner.encryption, private_key, gateway_jwks)
        # The private signing key of its acknowledgements (partner file: acknowledgement).
        self._ack_key = _signing_key(acknowledgement_key) if acknowledgement_key else None
        self._client = ClientAuth(
            partner,
            ClientSecrets(api_key, client_secret, client_public_key),
            token_ttl=token_ttl,
            clock=clock,
        )
        self._answers: dict[str, _Answer] = {}
        self._received: list[Received] = []
        self._rejections: list[Rejection] = []
        self._closing = asyncio.Event()

    @classmethod
    def from_keys(
        cls,
        partner: Partner,
        keys_dir: Path,
        gateway_jwks: str | Mapping[str, Any],
        env: Mapping[str, str],
        **options: Any,
    ) -> SandboxPartner:
        """A sandbox for `partner` with the material `gateway keys generate` made for it."""
        paths = KeyPaths(keys_dir)
        private_key = read_jwk(paths.sandbox_partner(partner.id))
        material = read_client_secrets(partner, paths, env)
        if partner.acknowledgement == "jws" and "acknowledgement_key" not in options:
            options["acknowledgement_key"] = read_jwk(paths.sandbox_acknowledgement(partner.id))
        return cls(
            partner,
            private_key=private_key,
            gateway_jwks=gateway_jwks,
            api_key=material.api_key,
            client_secret=material.client_secret,
            client_public_key=material.client_public_key,
            **options,
        )

    # -- what tests look at --

    @property
    def received(self) -> list[Received]:
        return list(self._received)

    @property
    def rejections(self) -> list[Rejection]:
        return list(self._rejections)

    # -- the web application --

    def app(self, *, operations: bool = True, token: bool = True) -> web.Application:
        """An application with the operations and/or the token endpoint, and the controls."""
        app = web.Application()
        app[SANDBOX_KEY] = self
        if operations:
            for op in self.partner.operations.values():
                app.router.add_route(op.method, op.path, self._operation_handler(op))
            app.on_shutdown.append(self._on_shutdown)
            app.on_cleanup.append(self._on_cleanup)
        if token and self.partner.auth.type == "oauth2_client_credentials":
            token_url = self.partner.auth.token_url or ""
            app.router.add_post(urlsplit(token_url).path or "/", self._token)
        app.router.add_get(f"{CONTROL_PREFIX}/received", self._get_received)
        app.router.add_get(f"{CONTROL_PREFIX}/rejections", self._get_rejections)
        app.router.add_get(f"{CONTROL_PREFIX}/faults", self._get_faults)
        app.router.add_post(f"{CONTROL_PREFIX}/faults", self._post_faults)
        return app

    async def close(self) -> None:
        """End hung requests and close the JWKS client session."""
        self._closing.set()
        await self._envelope.close()

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.close()

    # -- handlers --

    def _operation_handler(
        self, op: Operation
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            fault = self.faults.take("disclosure")
            spoil = fault.spoil if fault is not None and fault.kind == "ack" else None
            return await answer_with(
                fault, request, lambda: self._disclose(request, op, spoil), self._closing
            )

        return handler

    async def _token(self, request: web.Request) -> web.StreamResponse:
        return await self._with_faults(request, "token", lambda: self._issue_token(request))

    async def _with_faults(
        self,
        request: web.Request,
        endpoint: Literal["disclosure", "token"],
        handle: Callable[[], Awaitable[web.Response]],
    ) -> web.StreamResponse:
        return await answer_with(self.faults.take(endpoint), request, handle, self._closing)

    async def _disclose(
        self, request: web.Request, op: Operation, spoil: AckSpoil | None = None
    ) -> web.Response:
        try:
            self._client.check_request(request)
            claims = await self._envelope.open(request)
            check_claims(
                claims,
                request,
                op,
                partner_id=self.partner.id,
                expected_issuer=self.expected_issuer,
                now=self._clock(),
            )
        except Refusal as refusal:
            return self._reject(op.name, refusal)
        disclosure_id = str(claims["jti"])
        key = request.headers.get("Idempotency-Key", disclosure_id)
        first = self._answers.get(key) if self.remember else None
        if first is None:
            fields = sorted(claims["data"])
            try:
                first = self._answer(op, fields)
            except Refusal as refusal:
                return self._reject(op.name, refusal)
            first.acknowledgement = self._acknowledge(disclosure_id, await request.read(), spoil)
            if not self.remember:
                return first.response()
            self._answers[key] = first
            self._received.append(
                Received(
                    disclosure_id=disclosure_id,
                    operation=op.name,
                    purpose=str(claims["purpose"]),
                    legal_basis=str(claims["legal_basis"]),
                    fields=fields,
                    headers=sorted({name.lower() for name in request.headers}),
                    at=datetime.now(UTC),
                    notice=str(claims["notice"]) if "notice" in claims else None,
                    about=claims.get("disclosure_ids"),
                )
            )
            log.info("sandbox %s accepted %s %s", self.partner.id, op.name, disclosure_id)
        return first.response()

    def _answer(self, op: Operation, fields: list[str]) -> _Answer:
        answer = {
            "status": "ok",
            "operation": op.name,
            "received_fields": fields,
            "reference": "ref-" + secrets.token_hex(8),
        }
        status = 201 if op.method == "POST" else 200
        plain = json.dumps(answer).encode("utf-8")
        if not self.encrypt_responses:
            return _Answer(status, plain, "application/json")
        return _Answer(status, self._envelope.seal(plain).encode("ascii"), JOSE)

    def _acknowledge(self, disclosure_id: str, body: bytes, spoil: AckSpoil | None) -> str | None:
        """The signed receipt of `body`, exactly as it arrived (None when the partner file
        asks for none); a `bad_ack` fault spoils it as a test asked."""
        if self._ack_key is None or spoil == "missing":
            return None
        if spoil == "malformed":
            return "not-a-jws"
        key = self._ack_key
        if spoil == "wrong_key":
            key = OKPKey.generate_key("Ed25519", private=True)
        if spoil == "wrong_disclosure":
            disclosure_id = disclosure_id + "-other"
        if spoil == "wrong_hash":
            body = body + b"."
        return sign_acknowledgement(
            key,
            disclosure_id=disclosure_id,
            received=body,
            received_at=datetime.fromtimestamp(self._clock(), UTC),
            kid=key.kid,
        )

    async def _issue_token(self, request: web.Request) -> web.Response:
        try:
            return await self._client.issue_token(request)
        except Refusal as refusal:
            return self._reject("token", refusal)

    def _reject(self, endpoint: str, refusal: Refusal) -> web.Response:
        """Record `refusal` (names and reasons only) and answer with it."""
        self._rejections.append(
            Rejection(endpoint, refusal.status, refusal.error, refusal.detail, datetime.now(UTC))
        )
        log.info("sandbox %s refused %s: %s", self.partner.id, endpoint, refusal.error)
        return refusal.response()

    # -- controls --

    async def _get_received(self, _request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self._received])

    async def _get_rejections(self, _request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self._rejections])

    async def _get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response({"pending": self.faults.pending})

    async def _post_faults(self, request: web.Request) -> web.Response:
        """Queue a fault (`Faults.queue_json` says the body), answer with what is pending."""
        try:
            self.faults.queue_json(await request.json())
        except (ValueError, TypeError) as exc:
            return Refusal(400, "invalid_fault", str(exc)).response()
        return web.json_response({"pending": self.faults.pending})


SANDBOX_KEY: Final = web.AppKey("sandbox_partner", SandboxPartner)


def _signing_key(jwk: Mapping[str, Any]) -> ECKey | OKPKey:
    key = import_key(dict(jwk))
    if not isinstance(key, ECKey | OKPKey):
        raise ValueError("an acknowledgement key is an Ed25519 (OKP) or P-256 (EC) JWK")
    return key
