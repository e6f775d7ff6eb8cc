"""The review site as an OpenID Connect relying party: what it asks of the provider.

`[oidc]` of config.toml names the provider. Its discovery document
(``{issuer}/.well-known/openid-configuration``) and JWKS are fetched on the first sign-in
and kept (the JWKS fetched again, at most once a minute, when an ID token names a key it
does not hold), so the gateway starts even while the provider is down.

The flow is the authorization-code flow with PKCE (S256, authlib's code challenge),
``state`` and ``nonce``. authlib has no aiohttp client, so the HTTP is aiohttp's and the
checks are joserfc's: the ID token's signature against the provider's JWKS, under the
configured algorithm allowlist only, then its issuer, audience (and ``azp`` when there are
several), expiry, issue time, subject and nonce. Every failure is a GatewayError whose
detail says what was expected — never the token, nor a claim's value.

A person is known by the provider's issuer and subject (`person_id`), never by a name
they could change; their gateway roles come from `roles_claim` through ``[oidc.roles]``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import aiohttp
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingKeyError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption

from gateway.config.model import OidcConfig
from gateway.errors import (
    ConfigError,
    ForbiddenError,
    SignInUnavailableError,
    UnauthenticatedError,
)
from gateway.net import fetchable_url

__all__ = [
    "AuthorizationRequest",
    "OidcClient",
    "OidcPerson",
    "ProviderMetadata",
    "person_id",
    "read_client_secret",
]

FETCH_TIMEOUT_S: Final = 5.0
MAX_RESPONSE_BYTES: Final = 256 * 1024
JWKS_REFETCH_S: Final = 60.0  # an unknown kid refetches the JWKS at most this often
CLOCK_LEEWAY_S: Final = 60  # clocks of the provider and the gateway differ a little
MAX_PERSON_ID: Final = 200  # an action entry's actor (gateway.log.entries.MAX_ACTION_ID)
MAX_NAME: Final = 120
SCOPES: Final = "openid profile"
REVIEWER: Final = "reviewer"


def person_id(issuer: str, subject: str) -> str:
    """Who a person of the provider is, in every `action` entry: issuer and subject."""
    return f"{issuer}#{subject}"


def read_client_secret(config: OidcConfig, environ: Mapping[str, str]) -> str | None:
    """The client secret from where `[oidc]` says it is; None for a public client."""
    if config.client_secret_env:
        secret = environ.get(config.client_secret_env, "")
        if not secret:
            raise ConfigError(
                "oidc.client_secret_env",
                None,
                f"${config.client_secret_env} is empty or unset: set it to the gateway's "
                "client secret at the provider",
            )
        return secret
    if config.client_secret_file:
        path: Path = config.client_secret_file
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                str(path), None, f"oidc.client_secret_file cannot be read ({exc.strerror})"
            ) from None
        if not secret:
            raise ConfigError(str(path), None, "oidc.client_secret_file is empty")
        return secret
    return None


@dataclass(frozen=True)
class ProviderMetadata:
    """The endpoints of the provider's discovery document the sign-in uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    device_authorization_endpoint: str | None = None

    @classmethod
    def parse(cls, document: object, issuer: str) -> ProviderMetadata:
        if not isinstance(document, dict):
            raise _unreachable("its discovery document is not a JSON object")
        if document.get("issuer") != issuer:
            # OpenID Connect Discovery §4.3: a document for another issuer is not this one's.
            raise _unreachable(f"its discovery document names another issuer than {issuer}")
        urls: dict[str, str] = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            url = fetchable_url(document.get(key))
            if url is None:
                raise _unreachable(
                    f"its discovery document's {key} is missing or not https:// "
                    "(http:// only on loopback)"
                )
            urls[key] = url
        return cls(
            issuer=issuer,
            device_authorization_endpoint=fetchable_url(
                document.get("device_authorization_endpoint")
            ),
            **urls,
        )


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what its answer must match (kept in the flow cookie)."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class OidcPerson:
    """A person the provider vouched for, with the gateway roles their groups give."""

    id: str
    name: str
    roles: frozenset[str]
    key_id: str | None


def _unreachable(why: str) -> SignInUnavailableError:
    # 503, not 401: the person's credentials were never in question.
    return SignInUnavailableError(
        f"the sign-in provider cannot be used now: {why}; try again later, or tell the "
        "gateway's operators (the application log has the details)"
    )


def _refused(why: str) -> UnauthenticatedError:
    return UnauthenticatedError(f"the sign-in was refused: {why}; sign in again")


class OidcClient:
    """One configured provider: discovery, the authorization URL, the code exchange and the
    ID token's checks. Safe to share between requests (several sign-ins at once)."""

    def __init__(
        self,
        config: OidcConfig,
        client_secret: str | None,
        clock: Callable[[], datetime],
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self._secret = client_secret
        self._clock = clock
        self._session = session
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._keys_fetched = 0.0
        self._lock = asyncio.Lock()

    @property
    def fingerprint_source(self) -> str:
        """What ends the sessions it opened when it changes (another provider or client)."""
        return f"oidc\x00{self.config.issuer}\x00{self.config.client_id}"

    @property
    def credential(self) -> str:
        """How an `action` entry names this proof (never the token)."""
        return f"oidc:{self.config.issuer}"[:MAX_PERSON_ID]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            url = f"{self.config.issuer}/.well-known/openid-configuration"
            self._metadata = ProviderMetadata.parse(await self._get(url), self.config.issuer)
        return self._metadata

    async def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        metadata = await self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # RFC 7636 §4.1: 43 to 128 characters
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        url = f"{metadata.authorization_endpoint}{separator}{urlencode(query)}"
        return AuthorizationRequest(url, state, nonce, verifier)

    async def sign_in(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> OidcPerson:
        """The person behind an authorization code: exchanged, its ID token checked."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.config.client_id,
        }
        answer = await self._post(metadata.token_endpoint, form)
        id_token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(id_token, str):
            raise _refused("the provider's token answer holds no ID token")
        return await self.person_of(id_token, nonce)

    async def person_of(
        self, id_token: str, nonce: str | None, *, need: str | None = REVIEWER
    ) -> OidcPerson:
        """Check an ID token (signature, algorithm, issuer, audience, expiry, and the nonce
        unless None: the device flow has none) and map its groups to gateway roles; refuse
        a person without the role `need` (None: any role)."""
        claims, key_id = await self._verified_claims(id_token, nonce)
        subject = claims["sub"]
        who = person_id(self.config.issuer, subject)
        if len(who) > MAX_PERSON_ID or not who.isprintable():
            raise _refused(
                f"the provider's issuer and subject make an id longer than {MAX_PERSON_ID} "
                "characters, which the disclosure log cannot record"
            )
        claim = self.config.roles_claim
        if claim not in claims:
            raise ForbiddenError(
                f"the ID token has no {claim!r} claim, so it grants no role here: ask the "
                f"provider's administrators to release {claim!r} to the client "
                f"{self.config.client_id!r}"
            )
        roles = self.config.roles_of(claims[claim])
        if (need not in roles) if need else not roles:
            role = need or "gateway"
            wanted = sorted(k for k, r in self.config.roles.items() if need is None or need in r)
            raise ForbiddenError(
                f"your {claim!r} at the provider give no {role} role; a {role} belongs "
                f"to one of: {', '.join(wanted) or '(none configured)'}"
            )
        return OidcPerson(who, _display_name(claims, subject), roles, key_id)

    async def _verified_claims(
        self, id_token: str, nonce: str | None
    ) -> tuple[dict[str, Any], str | None]:
        keys = await self._key_set()
        try:
            token = jwt.decode(id_token, keys, algorithms=list(self.config.algorithms))
        except JoseError as exc:
            if not _unknown_key(exc) or not await self._refetch_keys():
                raise _refused(
                    "the ID token's signature does not verify with the provider's published "
                    f"keys under the algorithms {', '.join(self.config.algorithms)} (forged, "
                    "or signed with another key or algorithm)"
                ) from exc
            return await self._verified_claims(id_token, nonce)
        now = int(self._clock().timestamp())
        options: dict[str, ClaimsOption] = {
            "iss": {"essential": True, "value": self.config.issuer},
            "aud": {"essential": True, "value": self.config.client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        registry = jwt.JWTClaimsRegistry(now=now, leeway=CLOCK_LEEWAY_S, **options)
        try:
            registry.validate(token.claims)
        except ExpiredTokenError:
            raise _refused("the ID token has expired") from None
        except ClaimError as exc:
            raise _refused(_claim_problem(exc.claim)) from None
        audience, azp = token.claims["aud"], token.claims.get("azp")
        several = isinstance(audience, list) and len(audience) > 1
        if (several or azp is not None) and azp != self.config.client_id:
            # OIDC Core §3.1.3.7: azp, when there or needed, must name this client.
            raise _refused("the ID token was issued to another client (azp)")
        if not isinstance(token.claims["sub"], str) or not token.claims["sub"]:
            raise _refused("the ID token's subject is empty")
        kid = token.header.get("kid")
        return token.claims, kid[:120] if isinstance(kid, str) else None

    async def _key_set(self) -> KeySet:
        if self._keys is None:
            await self._refetch_keys(force=True)
        assert self._keys is not None
        return self._keys

    async def _refetch_keys(self, *, force: bool = False) -> bool:
        """Fetch the JWKS again (a rotated key); False when it was fetched too recently."""
        async with self._lock:
            if not force and time.monotonic() - self._keys_fetched < JWKS_REFETCH_S:
                return False
            document = await self._get((await self.metadata()).jwks_uri)
            try:
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise _unreachable("its JWKS cannot be read as a set of public keys") from exc
            if any(key.is_private for key in keys):
                raise _unreachable("its JWKS holds private key material")
            self._keys, self._keys_fetched = keys, time.monotonic()
            return True

    async def _post(self, url: str, form: dict[str, str]) -> object:
        status, document = await self.post_form(url, form)
        if status != 200 and isinstance(document, dict) and "error" in document:
            # RFC 6749 §5.2: the code was refused (used twice, expired, PKCE mismatch).
            raise _refused(f"the provider refused the code exchange ({oauth_error(document)})")
        return _checked(url, status, document)

    async def post_form(self, url: str, form: dict[str, str]) -> tuple[int, object]:
        """POST `form` to an endpoint of the provider, as this client; its status and JSON
        (None when not JSON), for a caller that reads OAuth errors (the device flow)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        body = urlencode(form)
        if self._secret:
            # client_secret_basic by authlib; RFC 6749 §2.3.1 form-urlencodes both parts
            # first, which authlib leaves to its caller (as gateway.outbound.oauth2 does).
            auth = ClientAuth(
                quote(self.config.client_id, safe=""),
                quote(self._secret, safe=""),
                "client_secret_basic",
            )
            _, headers, body = auth.prepare("POST", url, headers, body)
        return await self._call("POST", url, body, headers)

    async def _get(self, url: str) -> object:
        return _checked(url, *await self._call("GET", url, None, {}))

    async def _call(
        self, method: str, url: str, body: str | None, headers: dict[str, str]
    ) -> tuple[int, object]:
        try:
            async with self._http().request(
                method,
                url,
                data=body,
                headers={"Accept": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S),
                allow_redirects=False,
            ) as response:
                answer = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(f"{method} {url} failed ({type(exc).__name__})") from exc
        if len(answer) > MAX_RESPONSE_BYTES:
            raise _unreachable(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes")
        try:
            document = json.loads(answer)
        except (ValueError, RecursionError):
            document = None
        return status, document


def _checked(url: str, status: int, document: object) -> object:
    if status != 200:
        raise _unreachable(f"{url} answered HTTP {status}, expected 200")
    if document is None:
        raise _unreachable(f"{url} did not answer JSON")
    return document


def peek_issuer(token: str) -> str | None:
    """The `iss` a JWT claims, unverified: only to choose which check it gets."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16384:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def oauth_error(document: Mapping[str, object]) -> str:
    """An OAuth error code, shown only when it is one (a short token of safe characters)."""
    error = document.get("error")
    if isinstance(error, str) and len(error) <= 64 and error.replace("_", "").isalnum():
        return error
    return "an unreadable error"


def _unknown_key(exc: JoseError) -> bool:
    return isinstance(exc, InvalidKeyIdError | MissingKeyError)


def _claim_problem(claim: str) -> str:
    return {
        "nonce": "the ID token's nonce is not this sign-in's (a replayed or mixed-up answer)",
        "iss": "the ID token was issued by another issuer than the configured one",
        "aud": "the ID token is meant for another client than this gateway",
        "iat": "the ID token claims to be issued in the future",
        "nbf": "the ID token is not valid yet",
    }.get(claim, f"the ID token's {claim!r} claim is missing or invalid")


def _display_name(claims: Mapping[str, Any], subject: str) -> str:
    for key in ("name", "preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip() and value.isprintable():
            return value.strip()[:MAX_NAME]
    return subject[:MAX_NAME]
