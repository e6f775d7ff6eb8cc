"""The review site with `[oidc]` naming the loopback OpenID provider of
support.oidc_provider, and what its tests share: following the flow, a signed-in session,
the CLI's check of a token. Used by tests/e2e/test_review_oidc*.py."""

from __future__ import annotations

import argparse
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import NOW, FakeReviewBackend, review_app, review_config
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, LoopbackProvider, running_provider

from gateway.cli.person import proven_person
from gateway.config.model import Config, OidcConfig
from gateway.crypto.subject_keys import LogKeys
from gateway.log.actions import Person
from gateway.partners.model import Partner

HTML = {"Accept": "text/html"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROLES = {
    "privacy-reviewers": frozenset({"reviewer"}),
    "privacy-officers": frozenset({"reviewer", "rights_officer"}),
}


def oidc_config(issuer: str, secret_file: Path, **changes: Any) -> OidcConfig:
    """[oidc] naming the loopback provider; `changes`: e.g. allow_passwords=True or
    algorithms=("ES256",)."""
    keys: dict[str, Any] = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret_env": None,
        "client_secret_file": secret_file,
        "roles_claim": "groups",
        "roles": ROLES,
        "algorithms": ("RS256",),
        "name": "Lao Smart Mobility sign-on",
    }
    return OidcConfig(**(keys | changes))


@dataclass
class OidcSite:
    client: TestClient
    provider: LoopbackProvider
    browser: aiohttp.ClientSession  # the browser's side of the provider: another site
    config: Config

    async def start(self) -> str:
        """Follow the sign-in button to the provider; the callback URL it answers with."""
        r = await self.client.get("/review/oidc/start", allow_redirects=False)
        assert r.status == 303, await r.text()
        authorize = r.headers["Location"]
        assert authorize.startswith(f"{self.provider.issuer}/authorize?")
        at_provider = await self.browser.get(authorize, allow_redirects=False)
        assert at_provider.status == 302, await at_provider.text()
        callback = at_provider.headers["Location"]
        assert callback.startswith(f"http://127.0.0.1:{self.client.port}/review/oidc/callback?")
        return callback

    async def callback(self, url: str) -> aiohttp.ClientResponse:
        parts = urlsplit(url)
        return await self.client.get(f"{parts.path}?{parts.query}", headers=HTML)


@asynccontextmanager
async def open_site(
    config: Config, partners: dict[str, Partner], tmp_path: Path, **oidc: Any
) -> AsyncIterator[OidcSite]:
    """The review site with [oidc] naming a loopback provider (`oidc`: its other keys),
    beside the `[[reviewers]]` password accounts of review_support."""
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    async with running_provider(lambda: NOW) as provider:
        cfg = replace(config, oidc=oidc_config(provider.issuer, secret_file, **oidc))
        async with served_site(cfg, partners, tmp_path, provider) as site:
            yield site


@asynccontextmanager
async def served_site(
    config: Config, partners: dict[str, Partner], tmp_path: Path, provider: LoopbackProvider
) -> AsyncIterator[OidcSite]:
    """The review site of `config`, whose [oidc] names `provider`."""
    cfg = review_config(config, str(tmp_path / "gateway.db"))
    app = review_app(cfg, partners, FakeReviewBackend(LogKeys.load(cfg.keys_dir)))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        async with aiohttp.ClientSession() as browser:
            yield OidcSite(client, provider, browser, cfg)
    finally:
        await client.close()


TOKEN = re.compile(r'id="new-token">(dgpt_[^<]+)<')


async def signed_in(site: OidcSite) -> str:
    """Sign in through the provider; the session's CSRF token."""
    assert (await site.callback(await site.start())).status == 200
    page = await site.client.get("/review/tokens", headers=HTML)
    found = CSRF.search(await page.text())
    assert found is not None
    return found[1]


async def cli_person(
    site: OidcSite, who: str, token: str, roles: tuple[str, ...], days_later: int = 0
) -> Person:
    args = argparse.Namespace(as_=who, token_stdin=True, password_stdin=False)
    now = NOW + timedelta(days=days_later)
    return await proven_person(args, site.config, roles, stdin=io.StringIO(token + "\n"), now=now)
