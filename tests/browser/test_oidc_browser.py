"""Signing in through an OpenID provider in a real Chromium (issue #21 item 1, "Must show"):
the provider at `localhost`, the gateway at `127.0.0.1` — two sites, as in real life — so
the browser applies the cookie rules of a cross-site answer: the flow cookie must come back
with the provider's redirect (SameSite=Lax), and the Strict session cookie must be sent on
the next page. Then each refused case, with the message the person sees (and no password
form: passwords are off beside the provider), and the break-glass page that keeps them.
Saves docs/screenshots/sign-in-oidc.png, sign-in-oidc-signed-in.png and
sign-in-oidc-refused.png (UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from browser.review_support import (
    NOW,
    Gateway,
    ServedGateway,
    docs_screenshot,
    review_config,
    served_review_site,
)
from browser.test_review_browser import click_and_wait, sign_in
from selenium.webdriver.common.by import By
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, LoopbackProvider

from gateway.config.model import Config, OidcConfig
from gateway.partners.model import Partner
from gateway.web.review.oidc_client import person_id


@pytest.fixture
def provider() -> Iterator[LoopbackProvider]:
    found = LoopbackProvider(lambda: NOW, interactive=True)
    served = ServedGateway(found.app())  # any app on 127.0.0.1; named localhost below
    served.start()
    found.port = served.port
    try:
        yield found
    finally:
        served.stop()


@pytest.fixture
def gateway_site(
    config: Config, partners: dict[str, Partner], tmp_path: Path, provider: LoopbackProvider
) -> Iterator[Gateway]:
    with served_site(config, partners, tmp_path, provider) as site:
        yield site


@contextmanager
def served_site(
    config: Config,
    partners: dict[str, Partner],
    tmp_path: Path,
    provider: LoopbackProvider,
    allow_passwords: bool = False,
) -> Iterator[Gateway]:
    """The review site of conftest's fixture, with [oidc] naming the loopback provider."""
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET)
    oidc = OidcConfig(
        name="Lao Smart Mobility sign-on",
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret_env=None,
        client_secret_file=secret,
        roles_claim="groups",
        roles={"privacy-reviewers": frozenset({"reviewer"})},
        algorithms=("RS256",),
        allow_passwords=allow_passwords,
    )
    cfg = replace(review_config(config, str(tmp_path / "gateway.db")), oidc=oidc)
    with served_review_site(cfg, partners) as site:
        yield site


def sign_in_at_the_provider(browser: Any, site: Gateway, provider: LoopbackProvider) -> None:
    # Passwords are off: the sign-in page sends the browser straight to the provider.
    browser.get(site.url("/review/queue"))
    assert browser.current_url.startswith(f"{provider.issuer}/authorize?")
    click_and_wait(browser, browser.find_element(By.ID, "approve"))  # from the other site


def test_sign_in_with_the_provider(browser, gateway_site, provider, screenshot):
    sign_in_at_the_provider(browser, gateway_site, provider)
    # localhost answered, the callback moved on: the person is on the page they asked for.
    browser.implicitly_wait(5)
    try:
        who = browser.find_element(By.CSS_SELECTOR, ".who")
    finally:
        browser.implicitly_wait(0)
    assert browser.current_url == gateway_site.url("/review/queue")
    assert "Dara Phommachanh" in who.text
    assert person_id(provider.issuer, provider.person.sub) in who.text
    browser.save_screenshot(str(docs_screenshot("sign-in-oidc-signed-in.png")))
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["gateway_review"]["sameSite"] == "Strict"
    assert cookies["gateway_review"]["httpOnly"] is True
    assert "gateway_review_oidc" not in cookies  # the flow cookie is spent

    # A personal API token for the CLI, shown once.
    browser.get(gateway_site.url("/review/tokens"))
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.inline button"))
    made = browser.find_element(By.ID, "new-token").text
    assert made.startswith("dgpt_")
    screenshot("token")
    browser.get(gateway_site.url("/review/tokens"))
    assert made not in browser.page_source


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("forge", "the ID token's signature does not verify with the provider's published keys"),
        ("wrong_nonce", "the ID token's nonce is not this sign-in's"),
        ("expired", "the ID token has expired"),
        ("no_groups", "the ID token has no 'groups' claim"),
    ],
)
def test_refused_sign_ins(browser, gateway_site, provider, screenshot, case, message):
    if case == "no_groups":
        provider.person.groups = None
    else:
        setattr(provider, case, True)
    sign_in_at_the_provider(browser, gateway_site, provider)
    alert = browser.find_element(By.CSS_SELECTOR, "p.notice.error[role=alert]")
    assert message in alert.text
    assert "/review/oidc/callback" in browser.current_url
    # Trying again goes through the provider: no password form beside its button.
    assert browser.find_elements(By.NAME, "password") == []
    button = browser.find_element(By.CSS_SELECTOR, "a.button.provider")
    assert button.text == "Sign in with Lao Smart Mobility sign-on"
    screenshot(case)
    if case == "expired":
        browser.save_screenshot(str(docs_screenshot("sign-in-oidc-refused.png")))
    assert "gateway_review" not in {c["name"] for c in browser.get_cookies()}


def test_the_break_glass_page_offers_passwords_beside_the_provider(
    browser, config, partners, tmp_path, provider, screenshot
):
    # Another gateway (the browser fixture already serves one in tmp_path), on another port.
    (tmp_path / "glass").mkdir()
    glass = served_site(config, partners, tmp_path / "glass", provider, allow_passwords=True)
    with glass as site:
        browser.get(site.url("/review/login"))
        button = browser.find_element(By.CSS_SELECTOR, "a.button.provider")
        assert button.text == "Sign in with Lao Smart Mobility sign-on"
        assert browser.find_elements(By.NAME, "password") != []
        browser.save_screenshot(str(docs_screenshot("sign-in-oidc.png")))
        sign_in(browser, site, "alice", path="/review/queue")
        assert browser.current_url == site.url("/review/queue")
        assert "Alice Vongsa" in browser.find_element(By.CSS_SELECTOR, ".who").text
        screenshot("break-glass")
