"""How the gateway proves itself to a partner: API keys, OAuth2 tokens, client certificates.

One `PartnerAuthenticator` per process, sharing the outbound aiohttp session.
For each delivery it gives the headers to add (`credentials`) and the TLS
settings to use (`ssl_for`); it reads each secret, private key and certificate
once and keeps it. OAuth2 client credentials (RFC 6749 §4.4) use authlib for
the client authentication at the token endpoint — `client_secret_basic`,
`client_secret_post` and `private_key_jwt` (RFC 7523 §2.2) — and this module's
own aiohttp request for the token itself, cached until shortly before expiry,
with concurrent deliveries sharing one fetch.

TLS verification is always on: the default CA store, or the partner's
`ca_bundle` when one is given (then only that bundle is trusted).

Failures leave as `PartnerAuthError`, saying whether trying again could help;
`gateway.outbound.delivery` turns them into the contract's problem codes. Nothing here
ever puts a secret or token into an error message or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

import aiohttp
from authlib.common.urls import add_params_to_qs  # type: ignore[import-untyped]
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_token_request,
)
from authlib.oauth2.rfc7523 import private_key_jwt_sign  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE  # type: ignore[import-untyped]
from joserfc import jwk
from joserfc.errors import JoseError

from gateway.partners.model import Partner, SecretRef

log = logging.getLogger(__name__)

# TLS failures are configuration problems (wrong CA, wrong certificate, wrong
# host), not weather: retrying them only repeats the refusal.
TLS_FAILURES: Final = (
    aiohttp.ClientConnectorCertificateError,
    aiohttp.ClientConnectorSSLError,
    aiohttp.ClientSSLError,
    aiohttp.ServerFingerprintMismatch,
)

# Statuses from a token endpoint (or partner) that say "not now" rather than "no".
TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

# Headers the gateway sets on every delivery; an api_key header may not take their place.
RESERVED_HEADERS: Final = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "accept",
        "user-agent",
        "idempotency-key",
        "cookie",
    }
)

_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: nothing that could split a header


class PartnerAuthError(Exception):
    """The gateway could not authenticate to a partner.

    `transient`: a later attempt may succeed (token endpoint down or busy).
    `misconfigured`: the gateway's own setup is wrong (missing secret, bad
    key file); no request was made.
    """

    def __init__(self, detail: str, *, transient: bool, misconfigured: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient
        self.misconfigured = misconfigured


@dataclass(frozen=True)
class Credentials:
    """What to add to one request to a partner. `bearer` is set for OAuth2 partners."""

    headers: Mapping[str, str]
    bearer: str | None = None


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # on the authenticator's monotonic clock


class _SizedResponse(Protocol):
    content: aiohttp.StreamReader

    @property
    def content_length(self) -> int | None: ...


async def read_limited(response: _SizedResponse, limit: int) -> bytes | None:
    """The body of `response`, or None when it is longer than `limit` bytes."""
    if response.content_length is not None and response.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class PartnerAuthenticator:
    """Credentials and TLS settings for every partner, cached per process."""

    # Fetch a new token this long before the old one expires (or a tenth of
    # its lifetime, if shorter), so a token never dies in flight.
    TOKEN_REFRESH_MARGIN_S: Final = 30.0
    # RFC 6749 §5.1 makes expires_in optional; assume a short life when absent.
    DEFAULT_TOKEN_LIFETIME_S: Final = 300.0
    # A client assertion is single-use; keep its replay window short.
    ASSERTION_LIFETIME_S: Final = 120
    MAX_TOKEN_RESPONSE_BYTES: Final = 64 * 1024
    # private_key_jwt: key type (and EC curve) -> signing algorithm. A JWK's
    # own `alg` is honoured when it is one of these.
    ASSERTION_ALGS: Final = ("ES256", "ES384", "RS256", "PS256", "Ed25519")
    _ALG_FOR_KEY: Final = {"RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "Ed25519": "Ed25519"}

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        user_agent: str,
    ) -> None:
        self._session = session
        self._env = env
        self._clock = clock
        self._user_agent = user_agent
        self._secrets: dict[tuple[str, str], str] = {}
        self._private_keys: dict[str, tuple[jwk.Key, str]] = {}
        self._ssl: dict[tuple[str, Path | None, Path | None, Path | None], ssl.SSLContext] = {}
        self._tokens: dict[str, _Token] = {}
        self._inflight: dict[str, asyncio.Task[_Token]] = {}

    # -- per request --------------------------------------------------------

    async def credentials(self, partner: Partner) -> Credentials:
        """The auth headers for one request to `partner` (fetching a token if needed)."""
        auth = partner.auth
        if auth.type == "api_key":
            return Credentials(
                {self._api_key_header(partner): self._secret(partner, auth.key, "key")}
            )
        if auth.type == "oauth2_client_credentials":
            token = await self._bearer(partner)
            return Credentials({"Authorization": f"Bearer {token}"}, bearer=token)
        # `none` and `mtls` add no header; mtls proves itself in the TLS handshake.
        return Credentials({})

    def refreshable(self, partner: Partner) -> bool:
        """Can a 401 from this partner be cured by fetching a new token?"""
        return partner.auth.type == "oauth2_client_credentials"

    def drop_token(self, partner: Partner, bearer: str) -> None:
        """Forget `bearer` after the partner refused it (only if it is still the cached one)."""
        cached = self._tokens.get(partner.id)
        if cached is not None and cached.value == bearer:
            del self._tokens[partner.id]

    def forget(self, partner_id: str) -> None:
        """Drop every cached secret, key, TLS context and token of the partner (after a
        reload changed its file: the next request reads what the new file names)."""
        for secret in [k for k in self._secrets if k[0] == partner_id]:
            del self._secrets[secret]
        for context in [k for k in self._ssl if k[0] == partner_id]:
            del self._ssl[context]
        self._private_keys.pop(partner_id, None)
        self._tokens.pop(partner_id, None)

    def ssl_for(self, partner: Partner) -> ssl.SSLContext | bool:
        """The TLS settings for `partner`: True (default verification) or a verifying context."""
        auth = partner.auth
        ca_bundle = partner.ca_bundle
        if auth.type != "mtls" and ca_bundle is None:
            return True
        if auth.type == "mtls" and not partner.base_url.startswith("https://"):
            # Over plain HTTP the client certificate would silently not be sent.
            raise PartnerAuthError(
                f"partner {partner.id}: mtls needs an https:// base_url, got {partner.base_url}",
                transient=False,
                misconfigured=True,
            )
        key = (partner.id, ca_bundle, auth.cert_file, auth.cert_key_file)
        context = self._ssl.get(key)
        if context is None:
            context = self._ssl_context(partner, ca_bundle)
            self._ssl[key] = context
        return context

    def check(self, partner: Partner) -> list[str]:
        """Load every secret, key and certificate `partner` needs; the problems found."""
        auth = partner.auth
        problems: list[str] = []
        loaders: list[Callable[[], object]] = [partial(self.ssl_for, partner)]
        if auth.type == "api_key":
            loaders.append(partial(self._api_key_header, partner))
            loaders.append(partial(self._secret, partner, auth.key, "key"))
        if auth.type == "oauth2_client_credentials":
            loaders.append(partial(self._client_auth, partner))
        for load in loaders:
            try:
                load()
            except PartnerAuthError as exc:
                problems.append(exc.detail)
        return problems

    # -- secrets, keys, certificates (read once) ----------------------------

    def _api_key_header(self, partner: Partner) -> str:
        header = partner.auth.header
        if header.lower() in RESERVED_HEADERS:
            raise PartnerAuthError(
                f"partner {partner.id}: api_key header {header!r} would replace a header the "
                "gateway sets itself; use the partner's key header (e.g. X-Api-Key)",
                transient=False,
                misconfigured=True,
            )
        return header

    def _secret(self, partner: Partner, ref: SecretRef | None, what: str) -> str:
        cached = self._secrets.get((partner.id, what))
        if cached is not None:
            return cached
        value = self._read_secret(partner, ref, what)
        # An API key goes into a header as it is; a client secret is always
        # encoded (Basic or form) and may hold anything.
        if what == "key" and not _HEADER_SAFE.match(value):
            raise PartnerAuthError(
                f"partner {partner.id}: the {what} holds spaces or control characters; "
                "store it as a single line of visible ASCII",
                transient=False,
                misconfigured=True,
            )
        self._secrets[(partner.id, what)] = value
        return value

    def _read_secret(self, partner: Partner, ref: SecretRef | None, what: str) -> str:
        if ref is None:
            raise PartnerAuthError(
                f"partner {partner.id}: no {what} configured; set '{what}_env' or "
                f"'{what}_file' under [auth]",
                transient=False,
                misconfigured=True,
            )
        if ref.env is not None:
            value = self._env.get(ref.env, "")
            if not value:
                raise PartnerAuthError(
                    f"partner {partner.id}: environment variable {ref.env} (the {what}) is "
                    "not set or empty; set it before starting the gateway",
                    transient=False,
                    misconfigured=True,
                )
            return value
        assert ref.file is not None
        try:
            value = ref.file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise PartnerAuthError(
                f"partner {partner.id}: cannot read the {what} from {ref.file} "
                f"({exc.__class__.__name__}); check the path and its permissions",
                transient=False,
                misconfigured=True,
            ) from exc
        if not value:
            raise PartnerAuthError(
                f"partner {partner.id}: {ref.file} (the {what}) is empty",
                transient=False,
                misconfigured=True,
            )
        return value

    def _private_key(self, partner: Partner) -> tuple[jwk.Key, str]:
        cached = self._private_keys.get(partner.id)
        if cached is not None:
            return cached
        path = partner.auth.private_key_file
        where = f"partner {partner.id}: private_key_file {path}"

        def refuse(problem: str) -> PartnerAuthError:
            return PartnerAuthError(f"{where} {problem}", transient=False, misconfigured=True)

        if path is None:
            raise refuse("is not set; private_key_jwt needs a private JWK file")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise refuse(f"cannot be read as JSON ({exc.__class__.__name__})") from exc
        if isinstance(doc, dict) and isinstance(doc.get("keys"), list) and len(doc["keys"]) == 1:
            doc = doc["keys"][0]
        if not isinstance(doc, dict):
            raise refuse("must hold one private JWK (a JSON object)")
        try:
            key = jwk.import_key(doc)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise refuse(f"is not a valid JWK ({exc.__class__.__name__})") from exc
        if not key.is_private:
            raise refuse("holds a public key; private_key_jwt needs the private half")
        alg = doc.get("alg") or self._ALG_FOR_KEY.get(
            "RSA" if key.key_type == "RSA" else str(doc.get("crv"))
        )
        if alg not in self.ASSERTION_ALGS:
            raise refuse(
                f"has a key (kty {key.key_type}, alg {doc.get('alg')}) the gateway cannot sign "
                f"client assertions with; use one for {', '.join(self.ASSERTION_ALGS)}"
            )
        self._private_keys[partner.id] = (key, alg)
        return key, alg

    def _ssl_context(self, partner: Partner, ca_bundle: Path | None) -> ssl.SSLContext:
        auth = partner.auth
        try:
            # With a bundle, only that bundle is trusted (pinning); without,
            # the system store. Hostname checks and CERT_REQUIRED either way.
            context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if auth.type == "mtls":
                if auth.cert_file is None or auth.cert_key_file is None:
                    raise PartnerAuthError(
                        f"partner {partner.id}: mtls needs cert_file and cert_key_file",
                        transient=False,
                        misconfigured=True,
                    )
                context.load_cert_chain(auth.cert_file, auth.cert_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise PartnerAuthError(
                f"partner {partner.id}: cannot load the TLS files (ca_bundle {ca_bundle}, "
                f"cert_file {auth.cert_file}, cert_key_file {auth.cert_key_file}): "
                f"{exc.__class__.__name__}; check they exist and are PEM",
                transient=False,
                misconfigured=True,
            ) from exc
        return context

    # -- OAuth2 client credentials ------------------------------------------

    def _client_auth(self, partner: Partner) -> Any:
        """authlib's ClientAuth for this partner's token endpoint authentication method."""
        auth = partner.auth
        if not auth.token_url or not auth.client_id:
            raise PartnerAuthError(
                f"partner {partner.id}: oauth2_client_credentials needs token_url and client_id",
                transient=False,
                misconfigured=True,
            )
        method = auth.token_endpoint_auth_method
        if method == "private_key_jwt":
            key, alg = self._private_key(partner)
            return ClientAuth(
                auth.client_id, key, auth_method=partial(self._private_key_jwt, alg=alg)
            )
        if method == "client_secret_basic":
            secret = self._secret(partner, auth.client_secret, "client_secret")
            # RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding,
            # which authlib's client leaves out; a ':' or '%' in a secret would
            # otherwise not survive a compliant server's decoding.
            return ClientAuth(quote(auth.client_id, safe=""), quote(secret, safe=""), method)
        if method == "client_secret_post":
            secret = self._secret(partner, auth.client_secret, "client_secret")
            return ClientAuth(auth.client_id, secret, auth_method=method)
        raise PartnerAuthError(
            f"partner {partner.id}: token_endpoint_auth_method {method!r} is not one of "
            "client_secret_basic, client_secret_post, private_key_jwt",
            transient=False,
            misconfigured=True,
        )

    def _private_key_jwt(
        self, client: Any, method: str, uri: str, headers: dict[str, str], body: str, *, alg: str
    ) -> tuple[str, dict[str, str], str]:
        # authlib's PrivateKeyJWT signs for an hour; the same RFC 7523 helper
        # with a short lifetime narrows the window in which a leaked
        # assertion could be replayed. `kid` lets the server pick our key.
        key: jwk.Key = client.client_secret
        header = {"kid": key.kid} if key.kid else None
        assertion = private_key_jwt_sign(
            key,
            client_id=client.client_id,
            token_endpoint=uri,
            alg=alg,
            header=header,
            expires_in=self.ASSERTION_LIFETIME_S,
        )
        body = add_params_to_qs(
            body or "",
            [
                ("client_id", client.client_id),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
        )
        return uri, headers, body

    async def _bearer(self, partner: Partner) -> str:
        cached = self._tokens.get(partner.id)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        task = self._inflight.get(partner.id)
        if task is None:
            # One fetch per partner at a time; every waiter shares its result.
            # The task outlives a cancelled waiter (shield), so one caller
            # giving up does not fail the others.
            task = asyncio.get_running_loop().create_task(self._fetch_token(partner))
            self._inflight[partner.id] = task
            task.add_done_callback(partial(self._fetch_done, partner.id))
        token = await asyncio.shield(task)
        return token.value

    def _fetch_done(self, partner_id: str, task: asyncio.Task[_Token]) -> None:
        if self._inflight.get(partner_id) is task:
            del self._inflight[partner_id]
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch nobody awaits any more is not "lost"

    async def _fetch_token(self, partner: Partner) -> _Token:
        auth = partner.auth
        client_auth = self._client_auth(partner)
        assert auth.token_url is not None
        body = prepare_token_request("client_credentials", scope=auth.scope)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        _, headers, body = client_auth.prepare("POST", auth.token_url, headers, body)
        started = self._clock()
        where = f"partner {partner.id}: token endpoint {auth.token_url}"
        try:
            async with self._session.post(
                auth.token_url,
                data=body.encode("ascii"),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=partner.timeout_s),
                allow_redirects=False,
                raise_for_status=False,
                ssl=self.ssl_for(partner),
            ) as response:
                status = response.status
                raw = await read_limited(response, self.MAX_TOKEN_RESPONSE_BYTES)
        except TLS_FAILURES as exc:
            raise PartnerAuthError(
                f"{where}: TLS verification failed ({exc.__class__.__name__}); check its "
                "certificate and the partner's ca_bundle",
                transient=False,
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PartnerAuthError(
                f"{where}: {exc.__class__.__name__}; will retry", transient=True
            ) from exc
        log.info("token endpoint answered %s for partner %s", status, partner.id)
        token = self._parse_token(where, status, raw, started)
        self._tokens[partner.id] = token
        return token

    def _parse_token(self, where: str, status: int, raw: bytes | None, started: float) -> _Token:
        if raw is None:
            raise PartnerAuthError(
                f"{where}: response larger than {self.MAX_TOKEN_RESPONSE_BYTES} bytes",
                transient=False,
            )
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if status != 200:
            error = doc.get("error") if isinstance(doc, dict) else None
            said = (
                f" (error {error!r})"
                if isinstance(error, str) and _OAUTH_ERROR_CODE.match(error)
                else ""
            )
            hint = (
                "; check client_id and the client secret or key"
                if status in (400, 401, 403)
                else ""
            )
            raise PartnerAuthError(
                f"{where}: answered {status}{said}{hint}",
                transient=status in TRANSIENT_STATUSES,
            )
        if not isinstance(doc, dict):
            raise PartnerAuthError(f"{where}: answer is not a JSON object", transient=False)
        token = doc.get("access_token")
        if not isinstance(token, str) or not _HEADER_SAFE.match(token):
            raise PartnerAuthError(
                f"{where}: answer has no usable access_token (a single visible-ASCII string)",
                transient=False,
            )
        token_type = doc.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise PartnerAuthError(
                f"{where}: token_type must be Bearer (RFC 6750); other types are not supported",
                transient=False,
            )
        lifetime = _seconds(doc.get("expires_in")) or self.DEFAULT_TOKEN_LIFETIME_S
        margin = min(self.TOKEN_REFRESH_MARGIN_S, lifetime / 10)
        return _Token(token, started + lifetime - margin)


def _seconds(value: object) -> float | None:
    """A positive `expires_in`, given as a number or (by some servers) a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and value > 0:
        return float(value)
    return None
