"""Passwords beside an OpenID provider (issue #21 item 1: "Passwords remain only where no
provider is configured"): with `[oidc]` the site and the CLI refuse the `[[reviewers]]`
passwords, and the tokens those accounts made, naming what to use instead; the break-glass
`[oidc] allow_passwords = true` keeps them working, each sign-in marked."""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import (
    PASSWORDS,
    FakeReviewBackend,
    review_app,
    review_config,
    sign_in,
)
from support.oidc_site import (
    HTML,
    TOKEN,
    OidcSite,
    cli_person,
    oidc_config,
    open_site,
    signed_in,
)
from support.processes import free_port

from gateway.cli.person import CredentialError, proven_person
from gateway.config.model import Config
from gateway.crypto.subject_keys import LogKeys
from gateway.log.actions import Person
from gateway.log.columns import checked_search
from gateway.partners.model import Partner
from gateway.store.records import LogQuery
from gateway.web.keys import STORE

PASSWORD_HINT = "password sign-in is off: sign-in goes through http://localhost:"


@pytest.fixture
async def site(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> AsyncIterator[OidcSite]:
    """The provider's site as config.toml leaves it: passwords off."""
    async with open_site(config, partners, tmp_path) as found:
        yield found


async def test_the_sign_in_page_goes_to_the_provider_unless_the_break_glass_is_on(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s")
    base = review_config(config, str(tmp_path / "g.db"))
    for reviewers, allow_passwords, form_shown in (
        (base.reviewers, False, False),  # accounts in config.toml, passwords off: not offered
        (base.reviewers, True, True),  # the break-glass: the form beside the provider
        ({}, True, False),  # no account to sign in with
    ):
        oidc = oidc_config(
            "http://localhost:9", secret_file, allow_passwords=allow_passwords, name=None
        )  # unnamed: the button names the issuer's host
        cfg = replace(base, reviewers=reviewers, oidc=oidc)
        app = review_app(cfg, partners, FakeReviewBackend(LogKeys.load(cfg.keys_dir)))
        async with TestClient(TestServer(app)) as client:
            r = await client.get("/review/login?next=/review/queue", allow_redirects=False)
            if form_shown:
                text = await r.text()
                assert "Sign in with localhost:9" in text and 'name="password"' in text
            else:
                assert r.status == 303
                assert r.headers["Location"] == "/review/oidc/start?next=%2Freview%2Fqueue"


async def test_a_posted_password_is_refused_naming_the_provider(site: OidcSite) -> None:
    form = {"reviewer_id": "alice", "password": PASSWORDS["alice"], "next": "/review/queue"}
    page = await site.client.post("/review/login", data=form, headers=HTML)
    text = await page.text()
    assert page.status == 403 and PASSWORD_HINT in text
    # The page left offers the provider alone.
    assert 'class="button provider"' in text and 'name="password"' not in text
    problem = await site.client.post("/review/login", data=form)
    assert problem.status == 403 and problem.content_type == "application/problem+json"
    assert (await problem.json())["detail"].startswith(PASSWORD_HINT)
    assert "gateway_review" not in {c.key for c in site.client.session.cookie_jar}


async def test_a_password_session_ends_when_the_break_glass_is_turned_off(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> None:
    async with open_site(config, partners, tmp_path, allow_passwords=True) as glass:
        await sign_in(glass.client, "alice")
        [session] = [c.value for c in glass.client.session.cookie_jar if c.key == "gateway_review"]
        assert glass.config.oidc is not None
        off = replace(glass.config, oidc=replace(glass.config.oidc, allow_passwords=False))
        fake = FakeReviewBackend(LogKeys.load(off.keys_dir))
        async with TestClient(TestServer(review_app(off, partners, fake))) as client:
            r = await client.get(
                "/review/queue",
                headers={**HTML, "Cookie": f"gateway_review={session}"},
                allow_redirects=False,
            )
            assert r.status == 303 and r.headers["Location"].startswith("/review/login")


async def test_the_break_glass_signs_in_with_a_password_marked_in_the_log(
    config: Config,
    partners: dict[str, Partner],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_site(config, partners, tmp_path, allow_passwords=True) as glass:
        with caplog.at_level(logging.INFO, logger="gateway.review"):
            csrf = await sign_in(glass.client, "alice")
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "with a password beside the provider" in warning.getMessage()
        assert "allow_passwords = true" in warning.getMessage()
        page = await glass.client.post("/review/tokens", data={"csrf": csrf, "days": "7"})
        token = TOKEN.search(await page.text())
        assert token is not None
        [act] = await checked_search(glass.client.server.app[STORE], LogQuery(kind="action"))
        assert (act.data["actor"], act.data["credential"]) == ("alice", "password:alice")

        # The CLI takes the account's token and its password while the break-glass is on ...
        person = await cli_person(glass, "alice", token[1], ("reviewer",))
        assert person.id == "alice" and person.credential.startswith("personal-token:")
        args = argparse.Namespace(as_="alice", token_stdin=False, password_stdin=True)
        typed = io.StringIO(PASSWORDS["alice"] + "\n")
        assert await proven_person(args, glass.config, ("reviewer",), stdin=typed) == Person(
            "alice", "password:alice"
        )
        # ... and refuses both once it is off.
        assert glass.config.oidc is not None
        oidc_off = replace(glass.config.oidc, allow_passwords=False)
        off = replace(glass, config=replace(glass.config, oidc=oidc_off))
        with pytest.raises(CredentialError, match="was made by the password account 'alice'"):
            await cli_person(off, "alice", token[1], ("reviewer",))
        gone = replace(glass, config=replace(glass.config, reviewers={}))
        with pytest.raises(CredentialError, match="any more; nothing was changed"):
            await cli_person(gone, "alice", token[1], ("reviewer",))


@pytest.mark.parametrize("how", ["--password-stdin", "$GATEWAY_PASSWORD"])
async def test_the_cli_refuses_a_password_beside_the_provider(site: OidcSite, how: str) -> None:
    args = argparse.Namespace(
        as_="alice", token_stdin=False, password_stdin=how == "--password-stdin"
    )
    environ = {} if args.password_stdin else {"GATEWAY_PASSWORD": PASSWORDS["alice"]}
    stdin = io.StringIO(PASSWORDS["alice"] + "\n")
    with pytest.raises(CredentialError) as refused:
        await proven_person(args, site.config, ("reviewer",), stdin=stdin, environ=environ)
    message = str(refused.value)
    assert f"passwords are off: {site.config.path.name} signs people in through " in message
    assert site.provider.issuer in message
    assert "personal API token" in message and "gateway login --device" in message


async def test_the_longest_token_lifetime_is_configurable(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> None:
    async with open_site(config, partners, tmp_path, personal_token_max_days=30) as short:
        csrf = await signed_in(short)
        page = await (await short.client.get("/review/tokens", headers=HTML)).text()
        assert 'value="30"' in page and 'value="90"' not in page
        r = await short.client.post(
            "/review/tokens", data={"csrf": csrf, "days": "90"}, headers=HTML
        )
        assert r.status == 400 and "a token lasts 7, 30 days, not 90" in await r.text()


async def test_a_provider_that_is_down_is_a_503_not_a_refused_person(
    config: Config, partners: dict[str, Partner], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on the issuer's port: the person's credentials were never in question.
    secret_file = tmp_path / "secret"
    secret_file.write_text("s")
    base = review_config(config, str(tmp_path / "g.db"))
    cfg = replace(base, oidc=oidc_config(f"http://127.0.0.1:{free_port()}", secret_file))
    app = review_app(cfg, partners, FakeReviewBackend(LogKeys.load(cfg.keys_dir)))
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.WARNING, logger="gateway"):
            r = await client.get("/review/oidc/start")
        assert r.status == 503 and r.content_type == "application/problem+json"
        problem = await r.json()
        assert problem["type"].endswith("/sign_in_unavailable") and "Retry-After" in r.headers
        assert "the sign-in provider cannot be used now" in problem["detail"]
        assert any("provider cannot be used" in m for m in caplog.messages)
        page = await client.get("/review/oidc/start", headers=HTML)
        assert page.status == 503 and "cannot be used now" in await page.text()
