"""Loopback sandbox partners: small aiohttp apps that play the partners of partners/*.toml.

`gateway demo`, the end-to-end tests and the benchmarks point the gateway at these
instead of real partners. Each one checks what a careful real partner would check:
its own authentication (API key, OAuth2 client credentials with its own token
endpoint, mTLS), the JWE with exactly the algorithms of its partner file, the
gateway's JWS against the published JWKS, audience, expiry, purpose, basis and the
agreed fields. It remembers each Idempotency-Key, so a repeat gets the first answer
and is recorded once, and it records what it received as field NAMES only: no value
of a disclosure is ever kept, printed or logged here.

Faults (error statuses, hangs, dropped connections, slow bodies, bodies dripped byte
by byte or cut off half-way) are injected in
process through `SandboxPartner.fail_next` and friends, or over HTTP with
`POST /_sandbox/faults`, so a separate process (the demo, a benchmark) can steer it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import secrets
import ssl
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web
from joserfc import jwe, jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwe import JWERegistry
from joserfc.jwk import Key, import_key

from gateway.crypto.keyring import KeyPaths
from gateway.errors import ConfigError, InternalServerError
from gateway.net import is_loopback_host
from gateway.partners.model import Operation, Partner

__all__ = [
    "SANDBOX_KEY",
    "Faults",
    "Received",
    "Rejection",
    "SandboxCluster",
    "SandboxPartner",
    "start_sandboxes",
    "with_base_url",
]

log = logging.getLogger(__name__)

JOSE: Final = "application/jose"
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Seconds of clock difference tolerated on exp/iat, as most partners allow.
LEEWAY_S: Final = 30.0
# Where the sandbox's own controls live; no partner operation path starts with it.
CONTROL_PREFIX: Final = "/_sandbox"
# Signature algorithms accepted for a private_key_jwt client assertion, by key type,
# when the client's JWK does not pin one with "alg".
ASSERTION_ALGS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("ES256", "ES384", "ES512"),
    "RSA": ("PS256", "RS256"),
    "OKP": ("Ed25519", "EdDSA"),
}
# How the sandbox answers encrypted: key-management algorithm for the gateway's key type.
RESPONSE_KEY_ALG: Final[Mapping[str, str]] = {
    "EC": "ECDH-ES+A256KW",
    "OKP": "ECDH-ES+A256KW",
    "RSA": "RSA-OAEP-256",
}
RESPONSE_ENC: Final = "A256GCM"
# aiohttp's default request body limit; joserfc's own default (64 KiB) would refuse
# a large but legitimate disclosure before aiohttp does.
MAX_BODY_BYTES: Final = 1024**2
PRIVATE_KEY_JWT: Final = "private_key_jwt"

Endpoint = Literal["disclosure", "token", "any"]
FaultKind = Literal["fail", "hang", "reset", "slow", "drip", "cut"]
Clock = Callable[[], float]


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

    def as_json(self) -> dict[str, object]:
        return {
            "disclosure_id": self.disclosure_id,
            "operation": self.operation,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "fields": list(self.fields),
            "headers": list(self.headers),
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Rejection:
    """One request the sandbox refused, so a failing test can say why (no values)."""

    endpoint: str  # operation name, or "token"
    status: int
    error: str
    detail: str
    at: datetime

    def as_json(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "error": self.error,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


class _Refusal(Exception):
    """An answer other than success; rendered as `{"error", "error_description"}`."""

    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.error, "error_description": self.detail},
            status=self.status,
            headers=self.headers,
        )


# -- fault injection -----------------------------------------------------------------------


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    endpoint: Endpoint
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "endpoint": self.endpoint,
            "status": self.status,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
        }


class Faults:
    """Queued misbehaviour, consumed first in, first out, one request at a time.

    `endpoint` picks which requests a fault hits: "disclosure" (operations, the
    default), "token" (the OAuth2 token endpoint) or "any".
    """

    def __init__(self) -> None:
        self._queue: deque[_Fault] = deque()

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: int | str | None = None,
        *,
        endpoint: Endpoint = "disclosure",
    ) -> None:
        """Answer the next `n` requests with `status` (and `Retry-After` when given)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next status must be 4xx or 5xx, got {status}")
        after = None if retry_after is None else str(retry_after)
        self._add(_Fault("fail", n, endpoint, status=status, retry_after=after))

    def hang_next(
        self, n: int = 1, seconds: float = 30.0, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        """Hold the next `n` requests for `seconds` before handling them normally.

        A hung disclosure that outlives the gateway's timeout is still processed
        afterwards, like a slow real partner: the gateway's retry then meets the
        Idempotency-Key and the disclosure is recorded once.
        """
        self._add(_Fault("hang", n, endpoint, seconds=seconds))

    def reset_next(self, n: int = 1, *, endpoint: Endpoint = "disclosure") -> None:
        """Drop the connection of the next `n` requests without any response."""
        self._add(_Fault("reset", n, endpoint))

    def slow_body(
        self, n: int = 1, seconds: float = 5.0, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        """Send status and headers at once, then hold the rest of the body `seconds`."""
        self._add(_Fault("slow", n, endpoint, seconds=seconds))

    def drip_body(
        self, n: int = 1, byte_delay_s: float = 0.01, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        """Send status and headers at once, then the body one byte every `byte_delay_s`."""
        if byte_delay_s < 0:
            raise ValueError(f"byte_delay_s must be >= 0, got {byte_delay_s}")
        self._add(_Fault("drip", n, endpoint, seconds=byte_delay_s))

    def cut_body(self, n: int = 1, *, endpoint: Endpoint = "disclosure") -> None:
        """Handle the next `n` requests (a disclosure is recorded), then send status,
        headers and half the body, and close the connection mid-body."""
        self._add(_Fault("cut", n, endpoint))

    def clear(self) -> None:
        self._queue.clear()

    @property
    def pending(self) -> list[dict[str, object]]:
        return [f.as_json() for f in self._queue]

    def take(self, endpoint: Literal["disclosure", "token"]) -> _Fault | None:
        """The fault for this request, if the first one queued for its endpoint applies."""
        for fault in self._queue:
            if fault.endpoint in (endpoint, "any"):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def _add(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"a fault needs a count of at least 1, got {fault.remaining}")
        if fault.endpoint not in ("disclosure", "token", "any"):
            raise ValueError(f"endpoint must be disclosure, token or any, not {fault.endpoint!r}")
        self._queue.append(fault)


# -- one partner ---------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str


def _response(answer: _Answer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)


@dataclass
class _Jwks:
    """The gateway's published keys, by kid; fetched lazily when given as a URL."""

    url: str | None
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    imported: dict[str, Key] = field(default_factory=dict)  # parsed once: benchmarks reuse them
    fetches: int = 0


class _DisclosureRegistry(JWERegistry):
    max_ciphertext_length = MAX_BODY_BYTES


async def _started_stream(
    request: web.Request, response: web.Response
) -> tuple[web.StreamResponse, bytes]:
    """`response` turned into a prepared stream (headers sent), with the body still to write,
    so a fault can send it slowly, byte by byte, or only half of it."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    return stream, body


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
    ) -> None:
        self.partner = partner
        # remember=False (benchmarks): answer every request afresh and keep no record, so a
        # partner does the same work for a replayed JWE as for a new one, in constant memory.
        self.remember = remember
        self.faults = Faults()
        self.token_ttl = token_ttl
        self.encrypt_responses = encrypt_responses
        self.expected_issuer = expected_issuer
        self._clock = clock
        self._private_key = import_key(dict(private_key))
        enc = partner.encryption
        self._jwe_registry = _DisclosureRegistry(algorithms=[enc.alg, enc.enc])
        self._jwks = _parse_jwks(gateway_jwks)
        self._jwks_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._api_key = api_key
        self._client_secret = client_secret
        self._client_key = import_key(dict(client_public_key)) if client_public_key else None
        self._client_key_algs = _assertion_algs(client_public_key) if client_public_key else ()
        self._tokens: dict[str, float] = {}
        self._assertion_ids: set[str] = set()
        self._answers: dict[str, _Answer] = {}
        self._received: list[Received] = []
        self._rejections: list[Rejection] = []
        self._closing = asyncio.Event()
        self._check_material()

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
        private_key = _read_json(paths.sandbox_partner(partner.id))
        auth = partner.auth
        api_key = client_secret = None
        client_public_key = None
        if auth.type == "api_key" and auth.key is not None:
            api_key = _read_secret(auth.key.env, auth.key.file, env, partner)
        elif auth.type == "oauth2_client_credentials":
            if auth.token_endpoint_auth_method == PRIVATE_KEY_JWT:
                client_public_key = _read_json(paths.sandbox_client_jwk(partner.id))
            elif auth.client_secret is not None:
                client_secret = _read_secret(
                    auth.client_secret.env, auth.client_secret.file, env, partner
                )
        return cls(
            partner,
            private_key=private_key,
            gateway_jwks=gateway_jwks,
            api_key=api_key,
            client_secret=client_secret,
            client_public_key=client_public_key,
            **options,
        )

    # -- what tests look at and steer --

    @property
    def received(self) -> list[Received]:
        return list(self._received)

    @property
    def rejections(self) -> list[Rejection]:
        return list(self._rejections)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: int | str | None = None,
        *,
        endpoint: Endpoint = "disclosure",
    ) -> None:
        self.faults.fail_next(n, status, retry_after, endpoint=endpoint)

    def hang_next(
        self, n: int = 1, seconds: float = 30.0, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        self.faults.hang_next(n, seconds, endpoint=endpoint)

    def reset_next(self, n: int = 1, *, endpoint: Endpoint = "disclosure") -> None:
        self.faults.reset_next(n, endpoint=endpoint)

    def slow_body(
        self, n: int = 1, seconds: float = 5.0, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        self.faults.slow_body(n, seconds, endpoint=endpoint)

    def drip_body(
        self, n: int = 1, byte_delay_s: float = 0.01, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        self.faults.drip_body(n, byte_delay_s, endpoint=endpoint)

    def cut_body(self, n: int = 1, *, endpoint: Endpoint = "disclosure") -> None:
        self.faults.cut_body(n, endpoint=endpoint)

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
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.close()

    # -- handlers --

    def _operation_handler(
        self, op: Operation
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._with_faults(
                request, "disclosure", lambda: self._disclose(request, op)
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
        fault = self.faults.take(endpoint)
        if fault is not None and fault.kind == "fail":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _Refusal(
                fault.status, "injected_fault", "fault injected by the sandbox", headers
            ).response()
        if fault is not None and fault.kind == "reset":
            if request.transport is not None:
                request.transport.close()
            # Nothing of this reaches the client: aiohttp drops writes to a closed
            # transport quietly, where raising would log a server error.
            return web.Response(status=503)
        if fault is not None and fault.kind == "hang":
            # Take the request in first, as a slow partner would: it is processed after
            # the hang even if the client has given up by then.
            try:
                await request.read()
            except ConnectionError:
                return web.Response(status=503)  # the client is gone; nobody reads this
            try:
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            except TimeoutError:
                pass
            if self._closing.is_set():
                return _Refusal(503, "shutting_down", "sandbox is closing").response()
        response = await handle()
        if fault is not None and fault.kind == "slow":
            return await self._trickle(request, response, fault.seconds)
        if fault is not None and fault.kind == "drip":
            return await self._drip(request, response, fault.seconds)
        if fault is not None and fault.kind == "cut":
            return await self._cut(request, response)
        return response

    async def _trickle(
        self, request: web.Request, response: web.Response, seconds: float
    ) -> web.StreamResponse:
        stream, body = await _started_stream(request, response)
        half = len(body) // 2
        await stream.write(body[:half])
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass
        try:
            await stream.write(body[half:])
            await stream.write_eof()
        except ConnectionError:
            pass  # the client gave up waiting (or died): nothing left to tell it
        return stream

    async def _drip(
        self, request: web.Request, response: web.Response, byte_delay_s: float
    ) -> web.StreamResponse:
        stream, body = await _started_stream(request, response)
        try:
            for offset in range(len(body)):
                await stream.write(body[offset : offset + 1])
                if byte_delay_s and not self._closing.is_set():
                    await asyncio.sleep(byte_delay_s)
            await stream.write_eof()
        except ConnectionError:
            pass  # the client gave up waiting: that is what this fault is for
        return stream

    async def _cut(self, request: web.Request, response: web.Response) -> web.StreamResponse:
        stream, body = await _started_stream(request, response)
        await stream.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        # aiohttp's closing write_eof meets the closed transport quietly.
        return stream

    async def _disclose(self, request: web.Request, op: Operation) -> web.Response:
        try:
            self._check_auth(request)
            claims = await self._open(request)
            self._check_claims(claims, request, op)
        except _Refusal as refusal:
            self._reject(op.name, refusal)
            return refusal.response()
        disclosure_id = str(claims["jti"])
        key = request.headers.get("Idempotency-Key", disclosure_id)
        first = self._answers.get(key) if self.remember else None
        if first is None:
            fields = sorted(claims["data"])
            try:
                first = self._answer(op, fields)
            except _Refusal as refusal:
                self._reject(op.name, refusal)
                return refusal.response()
            if not self.remember:
                return _response(first)
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
                )
            )
            log.info("sandbox %s accepted %s %s", self.partner.id, op.name, disclosure_id)
        return _response(first)

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
        return _Answer(status, self._seal_answer(plain).encode("ascii"), JOSE)

    # -- checks --

    def _check_auth(self, request: web.Request) -> None:
        auth = self.partner.auth
        if auth.type == "api_key":
            presented = request.headers.get(auth.header)
            if presented is None:
                raise _Refusal(401, "missing_api_key", f"send the API key in header {auth.header}")
            if not _same(presented, self._api_key or ""):
                raise _Refusal(401, "invalid_api_key", f"the API key in {auth.header} is not ours")
        elif auth.type == "oauth2_client_credentials":
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise _Refusal(
                    401,
                    "invalid_token",
                    f"send Authorization: Bearer <token> from {auth.token_url}",
                    {"WWW-Authenticate": "Bearer"},
                )
            expires = self._tokens.get(token.strip())
            if expires is None:
                raise _Refusal(401, "invalid_token", "token was not issued here", challenge)
            if self._clock() >= expires:
                raise _Refusal(401, "invalid_token", "token expired; fetch a new one", challenge)
        elif auth.type == "mtls" and _peer_certificate(request) is None:
            raise _Refusal(
                401, "client_certificate_required", "connect with TLS and a client certificate"
            )

    async def _open(self, request: web.Request) -> dict[str, Any]:
        """Decrypt the JWE, verify the JWS inside it, return the JWT claims."""
        content_type = request.content_type
        if content_type != JOSE:
            raise _Refusal(415, "unsupported_media_type", f"expected {JOSE}, got {content_type}")
        body = (await request.read()).strip()
        enc = self.partner.encryption
        try:
            opened = jwe.decrypt_compact(body, self._private_key, registry=self._jwe_registry)
        except (JoseError, ValueError) as exc:
            raise _Refusal(
                400,
                "invalid_jwe",
                f"cannot decrypt: {_jose_reason(exc)}; expected a compact JWE with "
                f"alg {enc.alg} and enc {enc.enc} to our key",
            ) from exc
        token = (opened.plaintext or b"").strip()
        header = _compact_header(token)
        alg = header.get("alg")
        allowed = _sign_algs(enc.sign_alg)
        if alg not in allowed:
            raise _Refusal(
                400, "invalid_signature", f"JWS alg {alg!r} not allowed; expected {allowed[0]}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _Refusal(
                400, "invalid_signature", "JWS header has no kid naming a key of the gateway's JWKS"
            )
        key = await self._gateway_key(kid)
        try:
            # EdDSA is RFC 9864's deprecated name for Ed25519; it stays accepted here
            # without failing test runs on its SecurityWarning.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)
                verified = jws.deserialize_compact(token, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise _Refusal(
                400,
                "invalid_signature",
                f"JWS does not verify with kid {kid!r}: {_jose_reason(exc)}",
            ) from exc
        try:
            claims = json.loads(verified.payload or b"")
        except ValueError as exc:
            raise _Refusal(400, "invalid_claims", "JWS payload is not JSON") from exc
        if not isinstance(claims, dict):
            raise _Refusal(400, "invalid_claims", "JWS payload is not a JSON object of claims")
        return claims

    def _check_claims(self, claims: Mapping[str, Any], request: web.Request, op: Operation) -> None:
        pid = self.partner.id
        missing = [
            c
            for c in ("iss", "aud", "iat", "exp", "jti", "purpose", "legal_basis", "data")
            if c not in claims
        ]
        if missing:
            raise _Refusal(400, "invalid_claims", f"missing claims {missing}")
        if self.expected_issuer is not None and claims["iss"] != self.expected_issuer:
            raise _Refusal(
                400, "invalid_claims", f"iss {claims['iss']!r}; expected {self.expected_issuer!r}"
            )
        aud = claims["aud"]
        if not (aud == pid or (isinstance(aud, list) and pid in aud)):
            raise _Refusal(400, "invalid_audience", f"aud {aud!r}; expected {pid!r}")
        now = self._clock()
        exp, iat = _number(claims["exp"]), _number(claims["iat"])
        if exp is None or iat is None:
            raise _Refusal(400, "invalid_claims", "exp and iat must be NumericDate numbers")
        if exp < now - LEEWAY_S:
            raise _Refusal(400, "expired", f"JWT expired {now - exp:.0f} s ago")
        if iat > now + LEEWAY_S:
            raise _Refusal(400, "invalid_claims", f"iat is {iat - now:.0f} s in the future")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise _Refusal(
                400, "invalid_claims", "jti must be the disclosure id (a non-empty string)"
            )
        idem = request.headers.get("Idempotency-Key")
        if idem is not None and idem != jti:
            raise _Refusal(
                400, "idempotency_key_mismatch", "Idempotency-Key must equal the JWT's jti"
            )
        if claims["purpose"] not in op.purposes:
            raise _Refusal(
                400,
                "purpose_not_agreed",
                f"purpose {claims['purpose']!r} not among {sorted(op.purposes)}",
            )
        if claims["legal_basis"] not in op.legal_bases:
            raise _Refusal(
                400,
                "legal_basis_not_agreed",
                f"legal_basis {claims['legal_basis']!r} not among {sorted(op.legal_bases)}",
            )
        data = claims["data"]
        if not isinstance(data, dict):
            raise _Refusal(400, "invalid_claims", "data must be a JSON object of fields")
        agreed = {name for name, transform in op.fields.items() if transform != "drop"}
        extra = sorted(set(data) - agreed)
        if extra:
            raise _Refusal(
                400,
                "field_not_agreed",
                f"fields {extra} are not agreed for {op.name}; agreed: {sorted(agreed)}",
            )
        for name, segment in request.match_info.items():
            value = data.get(name)
            shown = value if isinstance(value, str) else json.dumps(value)
            if value is None or shown != segment:
                raise _Refusal(
                    400,
                    "path_mismatch",
                    f"path placeholder {{{name}}} does not match data field '{name}'",
                )

    async def _gateway_key(self, kid: str) -> Key:
        """The gateway's signing key `kid`, refetching the JWKS once when it is unknown."""
        jwk = self._jwks.keys.get(kid)
        if jwk is None and self._jwks.url is not None:
            await self._refresh_jwks()
            jwk = self._jwks.keys.get(kid)
        if jwk is None or jwk.get("use", "sig") != "sig":
            raise _Refusal(
                400, "unknown_kid", f"kid {kid!r} is not a signing key in the gateway's JWKS"
            )
        cached = self._jwks.imported.get(kid)
        if cached is not None:
            return cached
        try:
            key = import_key(jwk)
        except (JoseError, ValueError) as exc:
            raise _Refusal(
                400, "unknown_kid", f"kid {kid!r} in the gateway's JWKS is not a usable key"
            ) from exc
        self._jwks.imported[kid] = key
        return key

    async def _refresh_jwks(self) -> None:
        """Fetch the JWKS; requests that waited on a fetch in flight share its result."""
        url = self._jwks.url
        assert url is not None
        seen = self._jwks.fetches
        async with self._jwks_lock:
            if self._jwks.fetches != seen:
                return
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            try:
                async with self._session.get(url) as response:
                    response.raise_for_status()
                    keys = _keys_by_kid(await response.json(content_type=None))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                # 503 so the gateway retries: like a partner whose key cache is down.
                raise _Refusal(
                    503,
                    "jwks_unavailable",
                    f"cannot fetch the gateway's JWKS from {url} ({type(exc).__name__})",
                ) from exc
            self._jwks.keys = keys
            self._jwks.imported.clear()
            self._jwks.fetches += 1

    def _seal_answer(self, plain: bytes) -> str:
        """`plain` as a compact JWE to the gateway's encryption key (the "enc" key of its JWKS)."""
        candidates = [k for k in self._jwks.keys.values() if k.get("use") == "enc"]
        if not candidates:
            raise _Refusal(
                500, "no_gateway_enc_key", "the gateway's JWKS has no key with use 'enc'"
            )
        jwk = candidates[0]
        alg = jwk.get("alg") if jwk.get("alg") in RESPONSE_KEY_ALG.values() else None
        alg = alg or RESPONSE_KEY_ALG.get(str(jwk.get("kty")), "")
        header: dict[str, Any] = {"alg": alg, "enc": RESPONSE_ENC, "cty": "application/json"}
        if "kid" in jwk:
            header["kid"] = jwk["kid"]
        return jwe.encrypt_compact(header, plain, import_key(jwk), algorithms=[alg, RESPONSE_ENC])

    # -- the token endpoint (RFC 6749 §4.4, RFC 7523 for private_key_jwt) --

    async def _issue_token(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
            values = {k: v for k, v in form.items() if isinstance(v, str)}
            if values.get("grant_type") != "client_credentials":
                raise _Refusal(
                    400, "unsupported_grant_type", "grant_type must be client_credentials"
                )
            self._authenticate_client(request, values)
            scope = self._granted_scope(values.get("scope"))
        except _Refusal as refusal:
            self._reject("token", refusal)
            return refusal.response()
        token = secrets.token_urlsafe(32)
        now = self._clock()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        self._tokens[token] = now + self.token_ttl
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.token_ttl),
        }
        if scope:
            body["scope"] = scope
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticate_client(self, request: web.Request, form: Mapping[str, str]) -> None:
        auth = self.partner.auth
        method = auth.token_endpoint_auth_method
        if method == "client_secret_basic":
            scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
            try:
                decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, sep, secret = decoded.partition(":")
            if scheme.lower() != "basic" or not sep:
                raise _Refusal(
                    401,
                    "invalid_client",
                    "authenticate with HTTP Basic client_id:client_secret (client_secret_basic)",
                    {"WWW-Authenticate": 'Basic realm="token"'},
                )
            self._check_secret(unquote(client_id), unquote(secret))
        elif method == "client_secret_post":
            if "Authorization" in request.headers:
                raise _Refusal(
                    401, "invalid_client", "use client_secret_post only, no Authorization header"
                )
            self._check_secret(form.get("client_id", ""), form.get("client_secret", ""))
        else:
            self._check_assertion(request, form)

    def _check_secret(self, client_id: str, secret: str) -> None:
        if client_id != self.partner.auth.client_id or not _same(secret, self._client_secret or ""):
            raise _Refusal(401, "invalid_client", "unknown client_id or wrong client secret")

    def _check_assertion(self, request: web.Request, form: Mapping[str, str]) -> None:
        auth = self.partner.auth
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _Refusal(
                401, "invalid_client", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
            )
        assertion = form.get("client_assertion", "")
        assert self._client_key is not None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)
                claims = jwt.decode(
                    assertion, self._client_key, algorithms=self._client_key_algs
                ).claims
        except (JoseError, ValueError) as exc:
            raise _Refusal(
                401,
                "invalid_client",
                f"client assertion does not verify ({_jose_reason(exc)}); sign it with one of "
                f"{list(self._client_key_algs)} and the registered client key",
            ) from exc
        endpoint = str(request.url.with_query(None))
        audiences = {endpoint, auth.token_url}
        aud = claims.get("aud")
        aud_ok = aud in audiences or (isinstance(aud, list) and bool(audiences & set(aud)))
        now = self._clock()
        exp = _number(claims.get("exp"))
        jti = claims.get("jti")
        problems = []
        if claims.get("iss") != auth.client_id or claims.get("sub") != auth.client_id:
            problems.append(f"iss and sub must be the client_id {auth.client_id!r}")
        if not aud_ok:
            problems.append(f"aud must be the token endpoint {auth.token_url!r}")
        if exp is None or exp < now - LEEWAY_S:
            problems.append("exp missing or passed")
        if not isinstance(jti, str) or jti in self._assertion_ids:
            problems.append("jti missing or already used")
        if problems:
            raise _Refusal(401, "invalid_client", "client assertion: " + "; ".join(problems))
        self._assertion_ids.add(str(jti))

    def _granted_scope(self, requested: str | None) -> str | None:
        configured = self.partner.auth.scope
        if not requested:
            return configured
        allowed = set((configured or "").split())
        extra = sorted(set(requested.split()) - allowed)
        if extra:
            raise _Refusal(
                400, "invalid_scope", f"scopes {extra} not granted; allowed: {sorted(allowed)}"
            )
        return requested

    # -- controls --

    async def _get_received(self, _request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self._received])

    async def _get_rejections(self, _request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self._rejections])

    async def _get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response({"pending": self.faults.pending})

    async def _post_faults(self, request: web.Request) -> web.Response:
        """Queue a fault: `{"kind": "fail"|"hang"|"reset"|"slow"|"drip"|"cut"|"clear",
        "count", ...}` ("seconds" for hang and slow, "byte_delay_s" for drip)."""
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("body must be a JSON object")
            kind = spec.get("kind")
            count = int(spec.get("count", 1))
            endpoint = spec.get("endpoint", "disclosure")
            if kind == "fail":
                self.faults.fail_next(
                    count, int(spec.get("status", 503)), spec.get("retry_after"), endpoint=endpoint
                )
            elif kind == "hang":
                self.faults.hang_next(count, float(spec.get("seconds", 30.0)), endpoint=endpoint)
            elif kind == "reset":
                self.faults.reset_next(count, endpoint=endpoint)
            elif kind == "slow":
                self.faults.slow_body(count, float(spec.get("seconds", 5.0)), endpoint=endpoint)
            elif kind == "drip":
                self.faults.drip_body(
                    count, float(spec.get("byte_delay_s", 0.01)), endpoint=endpoint
                )
            elif kind == "cut":
                self.faults.cut_body(count, endpoint=endpoint)
            elif kind == "clear":
                self.faults.clear()
            else:
                raise ValueError(
                    f"kind must be fail, hang, reset, slow, drip, cut or clear, not {kind!r}"
                )
        except (ValueError, TypeError) as exc:
            return _Refusal(400, "invalid_fault", str(exc)).response()
        return web.json_response({"pending": self.faults.pending})

    # -- helpers --

    def _reject(self, endpoint: str, refusal: _Refusal) -> None:
        self._rejections.append(
            Rejection(endpoint, refusal.status, refusal.error, refusal.detail, datetime.now(UTC))
        )
        log.info("sandbox %s refused %s: %s", self.partner.id, endpoint, refusal.error)

    def _check_material(self) -> None:
        auth = self.partner.auth
        where = self.partner.source or self.partner.id
        if auth.type == "api_key" and not self._api_key:
            raise ConfigError(where, None, "sandbox needs the partner's API key (api_key=...)")
        if auth.type == "oauth2_client_credentials":
            if not auth.token_url:
                raise ConfigError(where, None, "sandbox needs [auth] token_url for oauth2")
            if auth.token_endpoint_auth_method == PRIVATE_KEY_JWT:
                if self._client_key is None:
                    raise ConfigError(
                        where, None, "sandbox needs the client's public JWK for private_key_jwt"
                    )
            elif not self._client_secret:
                raise ConfigError(where, None, "sandbox needs the partner's client secret")


SANDBOX_KEY: Final = web.AppKey("sandbox_partner", SandboxPartner)


def _parse_jwks(source: str | Mapping[str, Any]) -> _Jwks:
    if isinstance(source, str):
        return _Jwks(url=source)
    try:
        return _Jwks(url=None, keys=_keys_by_kid(source))
    except ValueError as exc:
        raise ConfigError("gateway JWKS", None, str(exc)) from exc


def _keys_by_kid(doc: object) -> dict[str, dict[str, Any]]:
    keys = doc.get("keys") if isinstance(doc, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError('the gateway\'s JWKS is not a {"keys": [...]} document')
    return {str(k["kid"]): dict(k) for k in keys if isinstance(k, Mapping) and "kid" in k}


def _sign_algs(sign_alg: str) -> tuple[str, ...]:
    # RFC 9864 renamed EdDSA-with-Ed25519 to "Ed25519"; gateways may still send the old name.
    return (sign_alg, "EdDSA") if sign_alg == "Ed25519" else (sign_alg,)


def _assertion_algs(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    pinned = jwk.get("alg")
    if isinstance(pinned, str):
        return _sign_algs(pinned)
    return ASSERTION_ALGS.get(str(jwk.get("kty")), ())


def _compact_header(token: bytes) -> dict[str, Any]:
    segments = token.split(b".")
    if len(segments) != 3:
        raise _Refusal(
            400, "invalid_signature", "JWE plaintext is not a compact JWS (three segments)"
        )
    try:
        raw = base64.urlsafe_b64decode(segments[0] + b"=" * (-len(segments[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _Refusal(
            400, "invalid_signature", "JWS protected header is not base64url JSON"
        ) from exc
    if not isinstance(header, dict):
        raise _Refusal(400, "invalid_signature", "JWS protected header is not a JSON object")
    return header


def _jose_reason(exc: Exception) -> str:
    code = getattr(exc, "error", None)
    description = getattr(exc, "description", None) or str(exc)
    return f"{code}: {description}" if code else description


def _peer_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


def _same(presented: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(
        presented.encode("utf-8"), expected.encode("utf-8")
    )


def _number(value: object) -> float | None:
    """A JSON number as float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            str(path), None, "sandbox key material not found; run 'gateway keys generate'"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), None, f"not a JSON JWK ({type(exc).__name__})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(str(path), None, "not a JSON JWK object")
    return doc


def _read_secret(
    env_name: str | None, file: Path | None, env: Mapping[str, str], partner: Partner
) -> str:
    if env_name is not None:
        value = env.get(env_name, "")
        if not value:
            raise ConfigError(
                partner.source or partner.id,
                None,
                f"sandbox {partner.id} needs the secret in environment variable {env_name}",
            )
        return value
    assert file is not None
    try:
        value = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            str(file),
            None,
            f"sandbox secret for {partner.id} not readable; run 'gateway keys generate'",
        ) from exc
    if not value:
        raise ConfigError(str(file), None, f"sandbox secret file for {partner.id} is empty")
    return value


# -- pointing a partner elsewhere ----------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def with_base_url(partner: Partner, url: str, *, token_url: str | None = None) -> Partner:
    """`partner` pointed at `url` (e.g. a sandbox on a free port) instead of its base_url.

    An OAuth2 token_url on the same origin as the old base_url moves with it (same
    path, new scheme/host/port); one on another origin stays unless `token_url` is given.
    """
    url = url.rstrip("/")
    auth = partner.auth
    if (
        auth.token_url
        and token_url is None
        and _origin(auth.token_url) == _origin(partner.base_url)
    ):
        old = urlsplit(auth.token_url)
        new = urlsplit(url)
        token_url = old._replace(scheme=new.scheme, netloc=new.netloc).geturl()
    if token_url is not None:
        auth = replace(auth, token_url=token_url)
    return replace(partner, base_url=url, auth=auth)


# -- every loopback partner at once --------------------------------------------------------


@dataclass
class _Site:
    """One listening origin: which sandbox apps it serves and how."""

    scheme: str
    host: str
    port: int
    sandbox: SandboxPartner
    operations: bool
    token: bool


class SandboxCluster:
    """The running sandboxes of `start_sandboxes`; close it (or use `async with`)."""

    def __init__(
        self,
        sandboxes: Mapping[str, SandboxPartner],
        configs: Mapping[str, Partner],
        runners: list[web.AppRunner],
        busy: Mapping[str, str] | None = None,
    ) -> None:
        self._sandboxes = dict(sandboxes)
        self._configs = dict(configs)
        self._runners = runners
        self._busy = dict(busy or {})

    @property
    def busy(self) -> dict[str, str]:
        """Partners not served because an address was in use (skip_busy): id → host:port."""
        return dict(self._busy)

    @property
    def partners(self) -> dict[str, Partner]:
        """Every served partner as the gateway should see it (actual URLs)."""
        return dict(self._configs)

    def partner(self, partner_id: str) -> SandboxPartner:
        """The sandbox of `partner_id`: fault controls and records."""
        try:
            return self._sandboxes[partner_id]
        except KeyError:
            raise KeyError(
                f"no sandbox for {partner_id!r}; running: {sorted(self._sandboxes)}"
            ) from None

    def received(self, partner_id: str) -> list[Received]:
        return self.partner(partner_id).received

    def base_url(self, partner_id: str) -> str:
        return self.partner_config(partner_id).base_url

    def partner_config(self, partner_id: str) -> Partner:
        self.partner(partner_id)
        return self._configs[partner_id]

    async def close(self) -> None:
        for sandbox in self._sandboxes.values():
            await sandbox.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> SandboxCluster:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def start_sandboxes(
    partners: Mapping[str, Partner],
    keys_dir: Path,
    gateway_jwks: str | Mapping[str, Any],
    env: Mapping[str, str],
    *,
    ports: Mapping[str, int] | None = None,
    token_ttl: float = 300.0,
    encrypt_responses: bool = False,
    expected_issuer: str | None = None,
    clock: Clock = time.time,
    shutdown_timeout: float = 1.0,
    remember: bool = True,
    skip_busy: bool = False,
) -> SandboxCluster:
    """Serve every partner whose base_url is on loopback, on its own host:port.

    `ports` overrides the port of a partner's base_url (0 = a free port); a token
    endpoint on another origin of an overridden partner then gets a free port too.
    `cluster.partners` gives the partners with the URLs actually served. https
    base_urls are served with keys/sandbox/<id>.server.{crt,key}.pem and, for mtls
    partners, require a client certificate signed by keys/sandbox/ca.pem.
    Partners not on loopback are not served and not in `cluster.partners`.
    token_ttl, encrypt_responses, expected_issuer, clock and remember go to every
    SandboxPartner. A host:port already in use fails the whole start, unless
    `skip_busy`: then that partner is left out and `cluster.busy` says why.
    """
    options: dict[str, Any] = {
        "remember": remember,
        "token_ttl": token_ttl,
        "encrypt_responses": encrypt_responses,
        "expected_issuer": expected_issuer,
        "clock": clock,
    }
    overrides = dict(ports or {})
    sites: list[_Site] = []
    sandboxes: dict[str, SandboxPartner] = {}

    def claim(site: _Site) -> None:
        """Add a listening origin; a fixed host:port serves one partner only."""
        for taken in sites:
            if site.port == 0 or (taken.host, taken.port) != (site.host, site.port):
                continue
            if taken.sandbox is site.sandbox and taken.scheme == site.scheme:
                taken.operations = taken.operations or site.operations
                taken.token = taken.token or site.token
                return
            partner = site.sandbox.partner
            raise ConfigError(
                partner.source or partner.id,
                None,
                f"sandbox {partner.id} wants {site.host}:{site.port}, already used by sandbox "
                f"{taken.sandbox.partner.id}; give the partners different ports",
            )
        sites.append(site)

    for pid, partner in sorted(partners.items()):
        scheme, host, port = _origin(partner.base_url)
        if not is_loopback_host(host):
            continue
        if partner.auth.type == "mtls" and scheme != "https":
            raise ConfigError(
                partner.source or pid,
                None,
                f"mtls partner {pid} has an http:// base_url: a sandbox can only ask for a "
                "client certificate over https://",
            )
        sandbox = SandboxPartner.from_keys(partner, keys_dir, gateway_jwks, env, **options)
        sandboxes[pid] = sandbox
        token_url = (
            partner.auth.token_url if partner.auth.type == "oauth2_client_credentials" else None
        )
        same_origin = token_url is not None and _origin(token_url) == _origin(partner.base_url)
        port = overrides.get(pid, port)
        claim(_Site(scheme, host, port, sandbox, operations=True, token=same_origin))
        if token_url is not None and not same_origin:
            t_scheme, t_host, t_port = _origin(token_url)
            if is_loopback_host(t_host):
                t_port = 0 if pid in overrides else t_port
                claim(_Site(t_scheme, t_host, t_port, sandbox, operations=False, token=True))

    runners: dict[str, list[web.AppRunner]] = {}
    base_urls: dict[str, str] = {}
    token_urls: dict[str, str] = {}
    busy: dict[str, str] = {}
    try:
        for site in sites:
            partner = site.sandbox.partner
            if partner.id in busy:
                continue
            runner = web.AppRunner(
                site.sandbox.app(operations=site.operations, token=site.token),
                shutdown_timeout=shutdown_timeout,
                access_log=None,
            )
            await runner.setup()
            runners.setdefault(partner.id, []).append(runner)
            context = _server_tls(partner, keys_dir) if site.scheme == "https" else None
            try:
                await web.TCPSite(runner, site.host, site.port, ssl_context=context).start()
            except OSError as exc:
                if not skip_busy:
                    raise InternalServerError(
                        f"sandbox {partner.id} cannot listen on {site.host}:{site.port} "
                        f"({exc.strerror or type(exc).__name__}); free the port or pass "
                        f"ports={{'{partner.id}': 0}}",
                    ) from exc
                busy[partner.id] = f"{site.host}:{site.port}"
                for started in reversed(runners.pop(partner.id)):
                    await started.cleanup()
                base_urls.pop(partner.id, None)
                token_urls.pop(partner.id, None)
                continue
            port = int(runner.addresses[0][1])
            host = f"[{site.host}]" if ":" in site.host else site.host
            origin = f"{site.scheme}://{host}:{port}"
            if site.operations:
                base_urls[partner.id] = origin
            if site.token and not site.operations:
                token_urls[partner.id] = origin + urlsplit(partner.auth.token_url or "").path
    except BaseException:
        for runner in reversed([r for group in runners.values() for r in group]):
            await runner.cleanup()
        raise

    for pid in busy:
        await sandboxes.pop(pid).close()
    configs = {
        pid: with_base_url(sandboxes[pid].partner, base_urls[pid], token_url=token_urls.get(pid))
        for pid in sandboxes
    }
    serving = [r for group in runners.values() for r in group]
    return SandboxCluster(sandboxes, configs, serving, busy)


def _server_tls(partner: Partner, keys_dir: Path) -> ssl.SSLContext:
    """TLS for an https sandbox; client certificates from the sandbox CA for mtls partners."""
    paths = KeyPaths(keys_dir)
    cert, key = paths.sandbox_server_cert(partner.id), paths.sandbox_server_key(partner.id)
    ca = paths.sandbox_ca_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
        if partner.auth.type == "mtls":
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            str(paths.sandbox),
            None,
            f"sandbox TLS material for {partner.id} missing or unusable ({type(exc).__name__}): "
            f"expected {cert.name}, {key.name} and ca.pem; run 'gateway keys generate'",
        ) from exc
    return context
