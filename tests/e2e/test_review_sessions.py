"""Review-site sessions end on the server (schema 15), on SQLite and PostgreSQL: a cookie
copied before sign-out opens nothing after it, `gateway tokens revoke --person` ends a
live session held on another instance sharing the store, "sign out everywhere" ends every
session of the person and is an `action` entry, and a session nobody can check (the store
down) opens nothing: 503, never a page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import reviewers, sign_in

from gateway.cli.tokens import end_person
from gateway.config.model import Config
from gateway.log.actions import Person
from gateway.log.columns import checked_search
from gateway.store.records import LogQuery, StoreUnavailable
from gateway.web.app import create_app
from gateway.web.keys import ACTIONS, LOG, STORE
from gateway.web.review.site import COOKIE

HTML = {"Accept": "text/html"}
OPERATOR = Person("host:operator", "host-shell")


async def instance(config: Config) -> TestClient:
    client = TestClient(TestServer(create_app(config, env={})))
    await client.start_server()
    return client


@pytest.fixture
async def instances(tmp_config: Config) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two gateway instances on one store and one keys directory."""
    config = replace(tmp_config, reviewers=reviewers())
    first = await instance(config)
    try:
        second = await instance(config)
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


def session_cookie(client: TestClient) -> dict[str, str]:
    [value] = [c.value for c in client.session.cookie_jar if c.key == COOKIE]
    return {COOKIE: value}


async def opens(client: TestClient, cookie: dict[str, str]) -> bool:
    """Whether `cookie` opens the site's home page on `client`'s instance."""
    r = await client.get("/review/", cookies=cookie, headers=HTML, allow_redirects=False)
    if r.status == 303:
        assert r.headers["Location"].startswith("/review/login")
        return False
    assert r.status == 200, await r.text()
    return True


async def actions_named(client: TestClient, action: str) -> list:
    await client.server.app[LOG].settle()
    rows = await checked_search(client.server.app[STORE], LogQuery(kind="action", limit=1000))
    return [r for r in rows if r.action == action]


async def test_a_cookie_copied_before_sign_out_opens_nothing_after(instances) -> None:
    first, second = instances
    csrf = await sign_in(first, "alice")
    copied = session_cookie(first)
    assert await opens(second, copied)  # the other instance knows the session
    r = await first.post("/review/logout", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/review/login"
    assert not await opens(first, copied)
    assert not await opens(second, copied)
    # A form sent with it: the sign-in page for a browser, 401 problem+json otherwise.
    form = {"csrf": csrf}
    r = await second.post(
        "/review/sessions/end", data=form, cookies=copied, headers=HTML, allow_redirects=False
    )
    assert r.status == 303 and r.headers["Location"] == "/review/login"
    r = await second.post("/review/sessions/end", data=form, cookies=copied)
    assert r.status == 401
    problem = await r.json(content_type=None)
    assert problem["type"].endswith("/unauthenticated") and "sign in again" in problem["detail"]
    assert await actions_named(first, "end_sessions") == []


async def test_revoke_person_ends_a_session_held_on_another_instance(instances) -> None:
    first, second = instances
    await sign_in(second, "alice")
    alice = session_cookie(second)
    await sign_in(first, "bob")
    bob = session_cookie(first)
    app = first.server.app
    # What `gateway tokens revoke --person alice` does, from the first instance's store.
    assert await end_person(app[STORE], app[ACTIONS], OPERATOR, "alice") == ([], 1)
    assert not await opens(second, alice)
    assert await opens(second, bob)  # nobody else's
    [act] = await actions_named(first, "end_sessions")
    assert (act.actor, act.data["target"]) == (OPERATOR.id, "sessions:alice")
    assert await end_person(app[STORE], app[ACTIONS], OPERATOR, "alice") == ([], 0)
    assert len(await actions_named(first, "end_sessions")) == 1  # nothing ended: no entry


async def test_sign_out_everywhere_ends_every_session_and_is_logged(instances) -> None:
    first, second = instances
    await sign_in(second, "alice")
    phone = session_cookie(second)
    csrf = await sign_in(first, "alice")
    laptop = session_cookie(first)
    page = await first.get("/review/tokens", headers=HTML)
    assert 'action="/review/sessions/end"' in await page.text()
    r = await first.post(
        "/review/sessions/end", data={"csrf": csrf}, headers=HTML, allow_redirects=False
    )
    assert r.status == 303 and r.headers["Location"] == "/review/login"
    assert not await opens(first, laptop)
    assert not await opens(second, phone)
    [act] = await actions_named(first, "end_sessions")
    assert (act.actor, act.credential, act.data["target"]) == (
        "alice",
        "password:alice",
        "sessions:alice",
    )
    await sign_in(second, "alice")  # signing in again works
    assert await opens(second, session_cookie(second))


async def test_a_session_nobody_can_check_opens_nothing(instances, monkeypatch) -> None:
    first, _ = instances
    await sign_in(first, "alice")

    async def store_down(*args: object) -> bool:
        raise StoreUnavailable("the database is not reachable")

    monkeypatch.setattr(first.server.app[STORE], "review_session_live", store_down)
    for headers in (HTML, {}):
        r = await first.get("/review/queue", headers=headers, allow_redirects=False)
        assert r.status == 503, await r.text()
        assert "Retry-After" in r.headers
    assert "application/problem+json" in r.headers["Content-Type"]
