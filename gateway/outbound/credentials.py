"""How the gateway proves itself to a partner: API keys, OAuth2 tokens, client certificates.

One `PartnerAuthenticator` per process, sharing the outbound aiohttp session.
For each delivery it gives the headers to add (`credentials`) and the TLS
settings to use (`ssl_for`). What it reads (secrets, private keys, certificates) is
read once and kept in `gateway.outbound.partner_secrets`; OAuth2 bearer tokens come from
`gateway.outbound.oauth2`.

Failures leave as `PartnerAuthError`, saying whether trying again could help;
`gateway.outbound.delivery` turns them into the contract's problem codes. Nothing here
ever puts a secret or token into an error message or a log line.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final

import aiohttp

from gateway.outbound.oauth2 import OAuth2Tokens
from gateway.outbound.partner_secrets import PartnerAuthError, PartnerSecrets
from gateway.partners.model import Partner

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


@dataclass(frozen=True)
class Credentials:
    """What to add to one request to a partner. `bearer` is set for OAuth2 partners."""

    headers: Mapping[str, str]
    bearer: str | None = None


class PartnerAuthenticator:
    """Credentials and TLS settings for every partner, cached per process."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        user_agent: str,
    ) -> None:
        self._secrets = PartnerSecrets(env)
        self._tokens = OAuth2Tokens(session, self._secrets, clock=clock, user_agent=user_agent)

    # -- per request --------------------------------------------------------

    async def credentials(self, partner: Partner) -> Credentials:
        """The auth headers for one request to `partner` (fetching a token if needed)."""
        auth = partner.auth
        if auth.type == "api_key":
            return Credentials(
                {self._api_key_header(partner): self._secrets.secret(partner, auth.key, "key")}
            )
        if auth.type == "oauth2_client_credentials":
            token = await self._tokens.bearer(partner)
            return Credentials({"Authorization": f"Bearer {token}"}, bearer=token)
        # `none` and `mtls` add no header; mtls proves itself in the TLS handshake.
        return Credentials({})

    def refreshable(self, partner: Partner) -> bool:
        """Can a 401 from this partner be cured by fetching a new token?"""
        return partner.auth.type == "oauth2_client_credentials"

    def drop_token(self, partner: Partner, bearer: str) -> None:
        """Forget `bearer` after the partner refused it (only if it is still the cached one)."""
        self._tokens.drop(partner, bearer)

    def forget(self, partner_id: str) -> None:
        """Drop every cached secret, key, TLS context and token of the partner (after a
        reload changed its file: the next request reads what the new file names)."""
        self._secrets.forget(partner_id)
        self._tokens.forget(partner_id)

    def ssl_for(self, partner: Partner) -> ssl.SSLContext | bool:
        """The TLS settings for `partner`: True (default verification) or a verifying context."""
        return self._secrets.ssl_for(partner)

    def check(self, partner: Partner) -> list[str]:
        """Load every secret, key and certificate `partner` needs; the problems found."""
        auth = partner.auth
        problems: list[str] = []
        loaders: list[Callable[[], object]] = [partial(self.ssl_for, partner)]
        if auth.type == "api_key":
            loaders.append(partial(self._api_key_header, partner))
            loaders.append(partial(self._secrets.secret, partner, auth.key, "key"))
        if auth.type == "oauth2_client_credentials":
            loaders.append(partial(self._tokens.client_auth, partner))
        for load in loaders:
            try:
                load()
            except PartnerAuthError as exc:
                problems.append(exc.detail)
        return problems

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
