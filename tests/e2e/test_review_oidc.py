"""Signing in to the review site through an OpenID provider: the whole authorization-code
flow against the loopback provider of tests/support (on `localhost`, the gateway on
`127.0.0.1`), and each way it must refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from browser.review_support import NOW, SUBJECT_A
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, running_provider
from support.oidc_site import (
    CSRF,
    HTML,
    TOKEN,
    OidcSite,
    cli_person,
    oidc_config,
    open_site,
    served_site,
    signed_in,
)

from gateway.cli.login import device_login
from gateway.cli.person import CredentialError
from gateway.clock import utc_now
from gateway.config.model import Config, load_config
from gateway.errors import UnauthenticatedError
from gateway.log.actions import Person
from gateway.log.columns import checked_search
from gateway.partners.model import Partner
from gateway.store.records import LogQuery
from gateway.web.keys import STORE
from gateway.web.review.oidc_client import OidcClient, peek_issuer, person_id
from gateway.web.review.oidc_device import start_device_flow, wait_for_id_token


@pytest.fixture
async def site(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> AsyncIterator[OidcSite]:
    async with open_site(config, partners, tmp_path) as found:
        yield found


def _cookie(response: aiohttp.ClientResponse, name: str) -> str:
    found = [h for h in response.headers.getall("Set-Cookie", []) if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.getall("Set-Cookie", [])
    return found[0]


async def test_sign_in_through_the_provider_and_act_as_issuer_and_subject(
    site: OidcSite,
) -> None:
    start = await site.client.get("/review/oidc/start?next=/review/queue", allow_redirects=False)
    flow_cookie = _cookie(start, "gateway_review_oidc")
    # The provider's answer is a cross-site GET: a Strict cookie would not come back with it.
    assert "SameSite=Lax" in flow_cookie and "HttpOnly" in flow_cookie
    assert "Path=/review/oidc" in flow_cookie
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"http://127.0.0.1:{site.client.port}/review/oidc/callback"]
    assert query["state"][0] and query["nonce"][0] and query["scope"] == ["openid profile"]
    at_provider = await site.browser.get(start.headers["Location"], allow_redirects=False)

    signed_in = await site.callback(at_provider.headers["Location"])
    text = await signed_in.text()
    assert signed_in.status == 200, text
    assert 'http-equiv="refresh" content="0;url=/review/queue"' in text
    session_cookie = _cookie(signed_in, "gateway_review")
    assert "SameSite=Strict" in session_cookie and "HttpOnly" in session_cookie

    page = await site.client.get("/review/disclosures", headers=HTML)
    body = await page.text()
    assert page.status == 200 and "Dara Phommachanh" in body
    who = person_id(site.provider.issuer, site.provider.person.sub)
    assert who in body

    # An act is recorded under the provider's issuer and subject.
    csrf = CSRF.search(body)
    assert csrf is not None
    r = await site.client.post(
        "/review/search", data={"csrf": csrf[1], "subject": SUBJECT_A}, allow_redirects=False
    )
    assert r.status == 303
    assert (await site.client.get(r.headers["Location"], headers=HTML)).status == 200
    store = site.client.server.app[STORE]
    [act] = await checked_search(store, LogQuery(kind="action", limit=10))
    assert act.data["actor"] == who
    assert act.data["credential"] == f"oidc:{site.provider.issuer}"


# [oidc] word for word as issue #21 shows it, the issuer aside (the loopback provider's).
ISSUE_OIDC = """
[oidc]
issuer = "{issuer}"
client_id = "disclosure-gateway"
client_secret_env = "REVIEW_OIDC_CLIENT_SECRET"
roles_claim = "groups"
[oidc.roles]
"privacy-reviewers" = ["reviewer"]
"privacy-officers" = ["reviewer", "rights_officer"]
"""


async def test_the_issues_config_signs_in_with_its_callback_on_the_public_url(
    config: Config,
    partners: dict[str, Partner],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The secret from $REVIEW_OIDC_CLIENT_SECRET (the provider refuses any other), and the
    # callback on [server] public_url, not on the address this client used (127.0.0.1).
    monkeypatch.setenv("REVIEW_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    public_url = "https://gateway.example.com"
    written = tmp_path / "config.toml"
    async with running_provider(lambda: NOW) as provider:
        text = config.path.read_text(encoding="utf-8").replace(
            "[server]\n", f'[server]\npublic_url = "{public_url}/"\n', 1
        )
        written.write_text(text + ISSUE_OIDC.format(issuer=provider.issuer), encoding="utf-8")
        loaded = load_config(written)
        assert loaded.oidc is not None and loaded.oidc.client_secret_file is None
        issue_config = replace(config, server=loaded.server, oidc=loaded.oidc)
        async with served_site(issue_config, partners, tmp_path, provider) as site:
            start = await site.client.get("/review/oidc/start", allow_redirects=False)
            authorize = start.headers["Location"]
            query = parse_qs(urlsplit(authorize).query)
            assert query["redirect_uri"] == [f"{public_url}/review/oidc/callback"]
            flow_cookie = _cookie(start, "gateway_review_oidc")
            assert "Secure" in flow_cookie  # the browser reaches the gateway over https
            answer = (await site.browser.get(authorize, allow_redirects=False)).headers
            assert answer["Location"].startswith(f"{public_url}/review/oidc/callback?")
            # As the browser at https://gateway.example.com: the Secure flow cookie goes back.
            parts = urlsplit(answer["Location"])
            signed_in = await site.client.get(
                f"{parts.path}?{parts.query}",
                headers={**HTML, "Cookie": flow_cookie.split(";", 1)[0]},
            )
            assert signed_in.status == 200, await signed_in.text()
            assert "Secure" in _cookie(signed_in, "gateway_review")
            assert provider.token_requests == 1  # the code exchanged with that redirect_uri


async def test_the_code_is_exchanged_once_with_the_pkce_verifier(site: OidcSite) -> None:
    callback = await site.start()
    assert (await site.callback(callback)).status == 200
    # A new flow cookie: the old answer replayed against it is not this sign-in's.
    again = await site.client.get("/review/oidc/start", allow_redirects=False)
    assert again.status == 303
    replayed = await site.callback(callback)
    assert replayed.status == 403
    assert "does not belong to the sign-in this browser started" in await replayed.text()


@pytest.mark.parametrize(
    ("knob", "status", "message"),
    [
        ("forge", 401, "the ID token&#39;s signature does not verify with the provider&#39;s"),
        ("wrong_nonce", 401, "the ID token&#39;s nonce is not this sign-in&#39;s"),
        ("expired", 401, "the ID token has expired"),
    ],
)
async def test_a_bad_id_token_is_refused(
    site: OidcSite, knob: str, status: int, message: str
) -> None:
    setattr(site.provider, knob, True)
    refused = await site.callback(await site.start())
    text = await refused.text()
    assert refused.status == status, text
    assert message in text and "Sign in with Lao Smart Mobility sign-on" in text
    assert "gateway_review=" not in " ".join(refused.headers.getall("Set-Cookie", []))
    assert (await site.client.get("/review/disclosures", allow_redirects=False)).status == 303


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ("another-client", "the ID token is meant for another client than this gateway"),
        ([CLIENT_ID, "another-client"], "the ID token was issued to another client (azp)"),
    ],
)
async def test_an_id_token_for_another_client_is_refused(
    site: OidcSite, audience: str | list[str], message: str
) -> None:
    site.provider.audience = audience
    refused = await site.callback(await site.start())
    assert refused.status == 401
    assert message in (await refused.text()).replace("&#39;", "'")


async def test_an_id_token_of_another_issuer_is_refused(site: OidcSite) -> None:
    site.provider.token_issuer = "https://login.elsewhere.example"
    refused = await site.callback(await site.start())
    assert refused.status == 401
    assert "the ID token was issued by another issuer than the configured one" in (
        await refused.text()
    )


async def test_an_id_token_signed_with_an_algorithm_not_allowed_is_refused(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> None:
    # The provider signs RS256 with its published key: a good token but for the allowlist.
    async with open_site(config, partners, tmp_path, algorithms=("ES256",)) as site:
        refused = await site.callback(await site.start())
        text = (await refused.text()).replace("&#39;", "'")
    assert refused.status == 401
    assert "signature does not verify with the provider's published keys under the " in text
    assert "algorithms ES256" in text


async def test_a_state_of_any_text_is_refused_not_a_failure(site: OidcSite) -> None:
    await site.start()
    refused = await site.client.get(
        "/review/oidc/callback?code=x&state=%C3%A9t%C3%A9", headers=HTML
    )
    assert refused.status == 403
    assert "its state does not match" in await refused.text()


async def test_a_person_without_the_roles_claim_is_refused(site: OidcSite) -> None:
    site.provider.person.groups = None
    refused = await site.callback(await site.start())
    text = await refused.text()
    assert refused.status == 403
    assert "the ID token has no &#39;groups&#39; claim" in text


async def test_a_person_whose_groups_give_no_reviewer_role_is_refused(site: OidcSite) -> None:
    site.provider.person.groups = ["finance"]
    refused = await site.callback(await site.start())
    text = await refused.text()
    assert refused.status == 403
    assert "give no reviewer role" in text and "privacy-officers, privacy-reviewers" in text


async def test_an_answer_without_this_browsers_flow_cookie_is_refused(site: OidcSite) -> None:
    callback = await site.start()
    site.client.session.cookie_jar.clear()  # as a browser that dropped the flow cookie
    refused = await site.callback(callback)
    assert refused.status == 403
    assert "this browser has no sign-in in progress" in await refused.text()
    assert site.provider.token_requests == 0  # refused before the code is exchanged


async def test_a_client_that_asks_for_json_gets_a_problem(site: OidcSite) -> None:
    site.provider.expired = True
    parts = urlsplit(await site.start())
    r = await site.client.get(f"{parts.path}?{parts.query}")
    assert r.status == 401 and r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["type"].endswith("/unauthenticated")
    assert problem["detail"] == "the sign-in was refused: the ID token has expired; sign in again"


# -- personal API tokens: made on the site, used by the CLI -----------------------------


async def test_a_personal_token_made_on_the_site_proves_the_person_on_the_cli(
    site: OidcSite,
) -> None:
    csrf = await signed_in(site)
    made = await site.client.post("/review/tokens", data={"csrf": csrf, "days": "30"})
    page = await made.text()
    assert made.status == 200, page
    token = TOKEN.search(page)
    assert token is not None
    token_id = token[1].split("_")[1]
    who = person_id(site.provider.issuer, site.provider.person.sub)
    # shown once: the list names it by id only
    listed = await (await site.client.get("/review/tokens", headers=HTML)).text()
    assert token[1] not in listed and f"dgpt_{token_id}_…" in listed

    person = await cli_person(site, who, token[1], ("reviewer",))
    assert person == Person(who, f"personal-token:{token_id}")
    with pytest.raises(CredentialError, match="carries the roles reviewer; this needs"):
        await cli_person(site, who, token[1], ("consent_writer",))
    with pytest.raises(CredentialError, match="is not 'someone-else'"):
        await cli_person(site, "someone-else", token[1], ("reviewer",))
    with pytest.raises(CredentialError, match="no such personal token"):
        await cli_person(site, who, token[1][:-2] + "xx", ("reviewer",))

    without_provider = replace(site, config=replace(site.config, oidc=None))
    with pytest.raises(CredentialError, match="is neither a \\[\\[reviewers\\]\\] account"):
        await cli_person(without_provider, who, token[1], ("reviewer",))

    revoked = await site.client.post(
        f"/review/tokens/{token_id}/revoke", data={"csrf": csrf}, allow_redirects=False
    )
    assert revoked.status == 303
    with pytest.raises(CredentialError, match="was revoked; make a new one"):
        await cli_person(site, who, token[1], ("reviewer",))
    again = await site.client.post(
        f"/review/tokens/{token_id}/revoke", data={"csrf": csrf}, headers=HTML
    )
    assert again.status == 404 and "no unrevoked personal token" in await again.text()

    store = site.client.server.app[STORE]
    acts = await checked_search(store, LogQuery(kind="action", limit=10))
    assert [(a.data["action"], a.data["target"], a.data["actor"]) for a in acts] == [
        ("create_personal_token", f"personal_token:{token_id}", who),
        ("revoke_personal_token", f"personal_token:{token_id}", who),
    ]
    assert all(token[1] not in a.raw.decode() for a in acts)


async def test_an_expired_personal_token_proves_nobody(site: OidcSite) -> None:
    csrf = await signed_in(site)
    page = await (await site.client.post("/review/tokens", data={"csrf": csrf, "days": "7"})).text()
    token = TOKEN.search(page)
    assert token is not None
    store = site.client.server.app[STORE]
    [record] = await store.personal_tokens_of(
        person_id(site.provider.issuer, "7d3f0c2a-reviewer-dara")
    )
    assert record.expires_at == NOW + timedelta(days=7)
    assert await cli_person(site, record.person, token[1], ("reviewer",), days_later=6)
    with pytest.raises(CredentialError, match="expired; make a new one"):
        await cli_person(site, record.person, token[1], ("reviewer",), days_later=7)


async def test_a_token_lifetime_not_offered_is_refused(site: OidcSite) -> None:
    csrf = await signed_in(site)
    r = await site.client.post("/review/tokens", data={"csrf": csrf, "days": "3650"}, headers=HTML)
    assert r.status == 400 and "choose one of the offered lifetimes" in await r.text()


# -- the device sign-in: an ID token for the CLI -----------------------------------------


async def device_id_token(site: OidcSite) -> str:
    """`gateway login --device` against the provider (with the tests' clock)."""
    assert site.config.oidc is not None
    client = OidcClient(site.config.oidc, CLIENT_SECRET, lambda: NOW)
    try:
        device = await start_device_flow(client)
        assert device.user_code == "WDJB-MJHT"
        return await wait_for_id_token(client, device, sleep=no_wait)
    finally:
        await client.close()


async def no_wait(seconds: float) -> None:
    return None


async def test_an_id_token_of_the_device_sign_in_proves_the_person_on_the_cli(
    site: OidcSite,
) -> None:
    site.provider.device = True
    id_token = await device_id_token(site)
    assert site.provider.token_requests == 2  # authorization_pending, then the tokens
    who = person_id(site.provider.issuer, site.provider.person.sub)
    person = await cli_person(site, who, id_token, ("reviewer",))
    assert person == Person(who, "id-token:provider-key-1")
    with pytest.raises(CredentialError, match=r"is .*'s, not 'someone-else'"):
        await cli_person(site, "someone-else", id_token, ("reviewer",))
    with pytest.raises(CredentialError, match="has the roles reviewer at the provider"):
        await cli_person(site, who, id_token, ("consent_writer",))
    with pytest.raises(CredentialError, match="the ID token has expired"):
        await cli_person(site, who, id_token, ("reviewer",), days_later=1)


async def test_a_forged_device_id_token_is_refused_on_the_cli(site: OidcSite) -> None:
    site.provider.device = site.provider.forge = True
    id_token = await device_id_token(site)
    who = person_id(site.provider.issuer, site.provider.person.sub)
    with pytest.raises(CredentialError, match="signature does not verify"):
        await cli_person(site, who, id_token, ("reviewer",))


async def test_without_device_support_the_cli_says_to_make_a_personal_token(
    site: OidcSite,
) -> None:
    with pytest.raises(UnauthenticatedError, match="make a personal API token on the review"):
        await device_id_token(site)


async def test_gateway_login_device_prints_the_id_token_and_says_where_to_approve(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(CLIENT_SECRET)
    async with running_provider(utc_now) as provider:  # the CLI reads the real clock
        provider.device = True
        cfg = replace(config, oidc=oidc_config(provider.issuer, secret_file))
        id_token = await device_login(cfg)
    err = capsys.readouterr().err
    assert f"Open {provider.issuer}/activate and enter the code WDJB-MJHT" in err
    assert f"signed in as {person_id(provider.issuer, provider.person.sub)} (reviewer)" in err
    assert peek_issuer(id_token) == provider.issuer
