"""How a sandbox partner knows its client is the gateway: the partner's own authentication.

`ClientAuth` checks what each operation request presents, by the partner file's
`[auth] type`: the API key in its header, a bearer token this partner's own token
endpoint issued and that has not expired (OAuth2 client credentials), or a client
certificate from the sandbox CA (mTLS; the TLS handshake checks it, see
`cluster._server_tls`). It is that token endpoint too (RFC 6749 §4.4): the client
authenticates with client_secret_basic, client_secret_post or a private_key_jwt
assertion (RFC 7523) and gets no more scope than the partner file grants.
`read_client_secrets` reads what `gateway keys generate` made for it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import ssl
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import import_key

from gateway.crypto.key_files import read_json_key
from gateway.crypto.keyring import KeyPaths
from gateway.errors import ConfigError
from gateway.partners.model import Partner, SecretRef
from gateway.sandbox.checks import LEEWAY_S, jose_reason, number, sign_algs
from gateway.sandbox.refusal import Refusal

__all__ = ["ClientAuth", "ClientSecrets", "Clock", "read_client_secrets", "read_jwk"]

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Signature algorithms accepted for a private_key_jwt client assertion, by key type,
# when the client's JWK does not pin one with "alg".
ASSERTION_ALGS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("ES256", "ES384", "ES512"),
    "RSA": ("PS256", "RS256"),
    "OKP": ("Ed25519", "EdDSA"),
}
PRIVATE_KEY_JWT: Final = "private_key_jwt"

Clock = Callable[[], float]


@dataclass(frozen=True)
class ClientSecrets:
    """What the partner holds to recognise its client, as its `[auth]` asks for."""

    api_key: str | None = None
    client_secret: str | None = None
    client_public_key: Mapping[str, Any] | None = None


class ClientAuth:
    """The partner's check of its client on every operation, and its token endpoint."""

    def __init__(
        self,
        partner: Partner,
        material: ClientSecrets,
        *,
        token_ttl: float = 300.0,
        clock: Clock,
    ) -> None:
        self.partner = partner
        self.token_ttl = token_ttl
        self._clock = clock
        self._api_key = material.api_key
        self._client_secret = material.client_secret
        jwk = material.client_public_key
        self._client_key = import_key(dict(jwk)) if jwk else None
        self._client_key_algs = _assertion_algs(jwk) if jwk else ()
        self._tokens: dict[str, float] = {}
        self._assertion_ids: set[str] = set()
        self._check_material()

    def check_request(self, request: web.Request) -> None:
        """Refuse an operation request whose client credentials are missing or wrong."""
        auth = self.partner.auth
        if auth.type == "api_key":
            presented = request.headers.get(auth.header)
            if presented is None:
                raise Refusal(401, "missing_api_key", f"send the API key in header {auth.header}")
            if not _same(presented, self._api_key or ""):
                raise Refusal(401, "invalid_api_key", f"the API key in {auth.header} is not ours")
        elif auth.type == "oauth2_client_credentials":
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Refusal(
                    401,
                    "invalid_token",
                    f"send Authorization: Bearer <token> from {auth.token_url}",
                    {"WWW-Authenticate": "Bearer"},
                )
            expires = self._tokens.get(token.strip())
            if expires is None:
                raise Refusal(401, "invalid_token", "token was not issued here", challenge)
            if self._clock() >= expires:
                raise Refusal(401, "invalid_token", "token expired; fetch a new one", challenge)
        elif auth.type == "mtls" and _peer_certificate(request) is None:
            raise Refusal(
                401, "client_certificate_required", "connect with TLS and a client certificate"
            )

    # -- the token endpoint (RFC 6749 §4.4, RFC 7523 for private_key_jwt) --

    async def issue_token(self, request: web.Request) -> web.Response:
        """The token endpoint's answer; a `Refusal` when the client or its request fails."""
        form = await request.post()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if values.get("grant_type") != "client_credentials":
            raise Refusal(400, "unsupported_grant_type", "grant_type must be client_credentials")
        self._authenticate_client(request, values)
        scope = self._granted_scope(values.get("scope"))
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
                raise Refusal(
                    401,
                    "invalid_client",
                    "authenticate with HTTP Basic client_id:client_secret (client_secret_basic)",
                    {"WWW-Authenticate": 'Basic realm="token"'},
                )
            self._check_secret(unquote(client_id), unquote(secret))
        elif method == "client_secret_post":
            if "Authorization" in request.headers:
                raise Refusal(
                    401, "invalid_client", "use client_secret_post only, no Authorization header"
                )
            self._check_secret(form.get("client_id", ""), form.get("client_secret", ""))
        else:
            self._check_assertion(request, form)

    def _check_secret(self, client_id: str, secret: str) -> None:
        if client_id != self.partner.auth.client_id or not _same(secret, self._client_secret or ""):
            raise Refusal(401, "invalid_client", "unknown client_id or wrong client secret")

    def _check_assertion(self, request: web.Request, form: Mapping[str, str]) -> None:
        auth = self.partner.auth
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise Refusal(
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
            raise Refusal(
                401,
                "invalid_client",
                f"client assertion does not verify ({jose_reason(exc)}); sign it with one of "
                f"{list(self._client_key_algs)} and the registered client key",
            ) from exc
        endpoint = str(request.url.with_query(None))
        audiences = {endpoint, auth.token_url}
        aud = claims.get("aud")
        aud_ok = aud in audiences or (isinstance(aud, list) and bool(audiences & set(aud)))
        now = self._clock()
        exp = number(claims.get("exp"))
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
            raise Refusal(401, "invalid_client", "client assertion: " + "; ".join(problems))
        self._assertion_ids.add(str(jti))

    def _granted_scope(self, requested: str | None) -> str | None:
        configured = self.partner.auth.scope
        if not requested:
            return configured
        allowed = set((configured or "").split())
        extra = sorted(set(requested.split()) - allowed)
        if extra:
            raise Refusal(
                400, "invalid_scope", f"scopes {extra} not granted; allowed: {sorted(allowed)}"
            )
        return requested

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


# -- the material `gateway keys generate` made ---------------------------------------------


def read_client_secrets(partner: Partner, paths: KeyPaths, env: Mapping[str, str]) -> ClientSecrets:
    """What the sandbox of `partner` needs to recognise its client, by its `[auth]`."""
    auth = partner.auth
    if auth.type == "api_key" and auth.key is not None:
        return ClientSecrets(api_key=_read_secret(auth.key, env, partner))
    if auth.type == "oauth2_client_credentials":
        if auth.token_endpoint_auth_method == PRIVATE_KEY_JWT:
            return ClientSecrets(client_public_key=read_jwk(paths.sandbox_client_jwk(partner.id)))
        if auth.client_secret is not None:
            return ClientSecrets(client_secret=_read_secret(auth.client_secret, env, partner))
    return ClientSecrets()


def read_jwk(path: Path) -> dict[str, Any]:
    """A JWK of the sandbox material, as JSON; a ConfigError saying how to make it."""
    return read_json_key(
        path, missing="sandbox key material not found; run 'gateway keys generate'"
    )


def _read_secret(ref: SecretRef, env: Mapping[str, str], partner: Partner) -> str:
    if ref.env is not None:
        value = env.get(ref.env, "")
        if not value:
            raise ConfigError(
                partner.source or partner.id,
                None,
                f"sandbox {partner.id} needs the secret in environment variable {ref.env}",
            )
        return value
    file = ref.file
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


def _assertion_algs(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    pinned = jwk.get("alg")
    if isinstance(pinned, str):
        return sign_algs(pinned)
    return ASSERTION_ALGS.get(str(jwk.get("kty")), ())


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
