"""OAuth2 client credentials (RFC 6749 §4.4): the partner's bearer token, fetched, shared
and cached.

authlib does the client authentication at the token endpoint — `client_secret_basic`,
`client_secret_post` and `private_key_jwt` (RFC 7523 §2.2) — and this module's own
aiohttp request fetches the token, cached until shortly before expiry, with concurrent
deliveries sharing one fetch. No token or secret ever goes into an error or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
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

from gateway.outbound.http import TLS_FAILURES, TRANSIENT_STATUSES, read_limited
from gateway.outbound.partner_secrets import HEADER_SAFE, PartnerAuthError, PartnerSecrets
from gateway.partners.model import Partner

log = logging.getLogger(__name__)

_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # on the authenticator's monotonic clock


class OAuth2Tokens:
    """Bearer tokens of the OAuth2 partners, one fetch at a time per partner."""

    # Fetch a new token this long before the old one expires (or a tenth of
    # its lifetime, if shorter), so a token never dies in flight.
    TOKEN_REFRESH_MARGIN_S: Final = 30.0
    # RFC 6749 §5.1 makes expires_in optional; assume a short life when absent.
    DEFAULT_TOKEN_LIFETIME_S: Final = 300.0
    # A client assertion is single-use; keep its replay window short.
    ASSERTION_LIFETIME_S: Final = 120
    MAX_TOKEN_RESPONSE_BYTES: Final = 64 * 1024

    def __init__(
        self,
        session: aiohttp.ClientSession,
        secrets: PartnerSecrets,
        *,
        clock: Callable[[], float],
        user_agent: str,
    ) -> None:
        self._session = session
        self._secrets = secrets
        self._clock = clock
        self._user_agent = user_agent
        self._tokens: dict[str, _Token] = {}
        self._inflight: dict[str, asyncio.Task[_Token]] = {}

    def drop(self, partner: Partner, bearer: str) -> None:
        """Forget `bearer` after the partner refused it (only if it is still the cached one)."""
        cached = self._tokens.get(partner.id)
        if cached is not None and cached.value == bearer:
            del self._tokens[partner.id]

    def forget(self, partner_id: str) -> None:
        """Drop the partner's cached token (its file changed)."""
        self._tokens.pop(partner_id, None)

    def client_auth(self, partner: Partner) -> Any:
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
            key, alg = self._secrets.private_key(partner)
            return ClientAuth(
                auth.client_id, key, auth_method=partial(self._private_key_jwt, alg=alg)
            )
        if method == "client_secret_basic":
            secret = self._secrets.secret(partner, auth.client_secret, "client_secret")
            # RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding,
            # which authlib's client leaves out; a ':' or '%' in a secret would
            # otherwise not survive a compliant server's decoding.
            return ClientAuth(quote(auth.client_id, safe=""), quote(secret, safe=""), method)
        if method == "client_secret_post":
            secret = self._secrets.secret(partner, auth.client_secret, "client_secret")
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

    async def bearer(self, partner: Partner) -> str:
        """A bearer token for `partner`: the cached one, or one fetch shared by all waiters."""
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
        client_auth = self.client_auth(partner)
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
                ssl=self._secrets.ssl_for(partner),
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
        if not isinstance(token, str) or not HEADER_SAFE.match(token):
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
