"""Partner lifecycle end to end (issue 9): the real gateway app and a sandbox partner on
loopback. Each refusal over HTTP (agreement_expired, partner_key_expired,
partner_suspended) as problem+json and as a `refused` log entry; suspending over the
API and on the review page; the agreement gauge; reloading partner files (an invalid
set keeps the old one, a request in flight finishes, SIGHUP triggers it); and a
signing-key rotation that partners holding the old JWKS never notice."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import PASSWORDS, review_config
from joserfc.jwk import RSAKey
from support.log import logged
from support.sandboxes import sandboxes_of

from gateway.config.model import Config, load_config
from gateway.crypto.keyring import rotate_signing_keys
from gateway.crypto.seal import claims_for, load_partner_key_file
from gateway.ops.reload import RELOADER, reload_on_sighup
from gateway.partners import Partner, current, load_partners
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.web.app import create_app
from gateway.web.keys import GATEWAY, STORE

MEKONG = "mekong-collections"
SUBJECT = "6f1c2a7e-0000-4000-8000-00000000cccc"
CASE = {
    "partner": MEKONG,
    "operation": "open_case",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "subject": SUBJECT,
    "data": {
        "name": "CANARY-Noy",
        "phone": "+85620CANARY",
        "uuid": "CANARY-U",
        "amount": 1000,
        "currency": "LAK",
        "transaction_id": "t-1",
    },
}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def started(app: web.Application, port: int = 0) -> TestClient:
    client = TestClient(TestServer(app, host="127.0.0.1", port=port))
    await client.start_server()
    return client


@pytest.fixture
async def mekong(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    """The debt collector's sandbox alone (API key from a file: no environment needed)."""
    cluster = await sandboxes_of(config, [partners[MEKONG]])
    yield cluster
    await cluster.close()


@pytest.fixture
async def gateway_for(
    tmp_config: Config,
) -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient] = []

    async def make(partner: Partner, config: Config = tmp_config) -> TestClient:
        client = await started(create_app(config, partners={partner.id: partner}, env={}))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def entries(client: TestClient, disclosure_id: str) -> list[dict[str, Any]]:
    return await logged(client.server.app, disclosure_id)


async def refused_as(
    client: TestClient, auth: Callable[[str], dict[str, str]], code: str, status: int
) -> dict[str, Any]:
    """POST the case; assert a logged refusal with `code`; return the problem document."""
    r = await client.post("/v1/disclosures", json=CASE, headers=auth("payments-service"))
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    problem = await r.json(content_type=None)
    assert problem["type"] == f"/problems/{code}"
    assert problem["status"] == status
    logged = await entries(client, problem["disclosure_id"])
    assert [(e["kind"], e["problem"]) for e in logged] == [("refused", code)]
    assert "CANARY" not in json.dumps(logged) + problem["detail"]
    dry = await client.post("/v1/decisions", json=CASE, headers=auth("payments-service"))
    assert (await dry.json())["problem"] == code
    return dict(problem)


async def sent(client: TestClient, auth: Callable[[str], dict[str, str]]) -> str:
    r = await client.post("/v1/disclosures", json=CASE, headers=auth("payments-service"))
    assert r.status == 201, await r.text()
    return r.headers["Disclosure-Id"]


# -- the three refusals --------------------------------------------------------------------


async def test_expired_agreement_is_refused_with_its_date(mekong, gateway_for, auth):
    partner = replace(mekong.partners[MEKONG], agreement_expires_on=date(2025, 12, 31))
    client = await gateway_for(partner)
    problem = await refused_as(client, auth, "agreement_expired", 403)
    assert "DPA-2025-007" in problem["detail"] and "2025-12-31" in problem["detail"]
    assert "agreement_expires_on" in problem["detail"]
    assert mekong.received(MEKONG) == []


async def test_partner_whose_only_key_expired_is_refused_503(mekong, gateway_for, auth, tmp_path):
    key = RSAKey.generate_key(2048, private=False, auto_kid=True)
    path = tmp_path / "mekong.jwk.json"
    path.write_text(json.dumps(key.as_dict(use="enc", exp=int(datetime.now(UTC).timestamp()) - 60)))
    base = mekong.partners[MEKONG]
    partner = replace(base, encryption=replace(base.encryption, public_key=path))
    client = await gateway_for(partner)
    problem = await refused_as(client, auth, "partner_key_expired", 503)
    assert "must publish a current key" in problem["detail"]
    assert mekong.received(MEKONG) == []


async def test_suspend_over_the_api_refuses_then_resume_allows(mekong, gateway_for, auth):
    client = await gateway_for(mekong.partners[MEKONG])
    await sent(client, auth)
    r = await client.post(
        f"/v1/partners/{MEKONG}/suspend",
        json={"reason": "INC-2026-114 partner reported a breach"},
        headers=auth("reviewer-alice"),
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["suspended"] is True and body["changed"] is True
    assert body["by"] == "reviewer-alice" and body["partner"] == MEKONG
    problem = await refused_as(client, auth, "partner_suspended", 403)
    assert "gateway partners resume mekong-collections" in problem["detail"]
    assert "INC-2026" not in problem["detail"]
    assert len(mekong.received(MEKONG)) == 1  # nothing went out after the suspension

    again = await client.post(
        f"/v1/partners/{MEKONG}/suspend", json={"reason": "again"}, headers=auth("reviewer-bob")
    )
    assert (await again.json())["changed"] is False
    r = await client.post(f"/v1/partners/{MEKONG}/resume", headers=auth("reviewer-bob"))
    assert r.status == 200, await r.text()
    resumed = await r.json()
    assert resumed["changed"] is True and resumed["lifted"]["by"] == "reviewer-alice"
    await sent(client, auth)
    history = await client.server.app[STORE].suspension_history(MEKONG)
    assert [(e.action, e.actor) for e in history] == [
        ("resume", "reviewer-bob"),
        ("suspend", "reviewer-alice"),
    ]


@pytest.mark.parametrize(
    ("caller", "path", "payload", "status", "code"),
    [
        ("payments-service", f"/v1/partners/{MEKONG}/suspend", {"reason": "x"}, 403, "forbidden"),
        ("reviewer-alice", f"/v1/partners/{MEKONG}/suspend", {}, 400, "invalid_request"),
        (
            "reviewer-alice",
            f"/v1/partners/{MEKONG}/suspend",
            {"reason": " "},
            400,
            "invalid_request",
        ),
        (
            "reviewer-alice",
            f"/v1/partners/{MEKONG}/suspend",
            {"reason": "x", "by": "y"},
            400,
            "invalid_request",
        ),
        ("reviewer-alice", "/v1/partners/nobody/suspend", {"reason": "x"}, 404, "unknown_partner"),
        ("reviewer-alice", "/v1/partners/nobody/resume", {}, 404, "unknown_partner"),
    ],
)
async def test_suspension_api_refusals(
    mekong, gateway_for, auth, caller, path, payload, status, code
):
    client = await gateway_for(mekong.partners[MEKONG])
    r = await client.post(path, json=payload, headers=auth(caller))
    assert r.status == status, await r.text()
    assert (await r.json(content_type=None))["type"].endswith(f"/{code}")
    assert await client.server.app[STORE].partner_suspensions() == {}


# -- the review page -----------------------------------------------------------------------


async def test_reviewer_suspends_and_resumes_on_the_review_page(
    mekong, gateway_for, auth, tmp_config, tmp_path
):
    config = review_config(tmp_config, str(tmp_path / "review.db"))
    client = await gateway_for(mekong.partners[MEKONG], config)
    form = await client.get("/review/login")
    token = CSRF.search(await form.text())[1]
    r = await client.post(
        "/review/login",
        data={
            "csrf": token,
            "reviewer_id": "alice",
            "password": PASSWORDS["alice"],
            "next": "/review/partners",
        },
        allow_redirects=False,
    )
    assert r.status == 303
    page = await client.get("/review/partners")
    text = await page.text()
    assert page.status == 200 and MEKONG in text and "DPA-2025-007" in text
    csrf = CSRF.search(text)[1]

    forged = await client.post(f"/review/partners/{MEKONG}/suspend", data={"reason": "x"})
    assert forged.status == 403  # no CSRF token: refused, nothing suspended
    assert await client.server.app[STORE].partner_suspensions() == {}

    r = await client.post(
        f"/review/partners/{MEKONG}/suspend",
        data={"csrf": csrf, "reason": "INC-9 data sent to wrong bucket"},
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()
    page = await (await client.get(r.headers["Location"])).text()
    assert "mekong-collections suspended" in page and "SUSPENDED" in page
    assert "INC-9 data sent to wrong bucket" in page and "by alice" in page
    await refused_as(client, auth, "partner_suspended", 403)

    blank = await client.post(f"/review/partners/{MEKONG}/resume", data={"csrf": "wrong"})
    assert blank.status == 403
    r = await client.post(
        f"/review/partners/{MEKONG}/resume", data={"csrf": csrf}, allow_redirects=False
    )
    assert r.status == 303
    await sent(client, auth)
    missing = await client.post(
        f"/review/partners/{MEKONG}/suspend",
        data={"csrf": csrf, "reason": ""},
        headers={"Accept": "text/html"},
    )
    assert missing.status == 400 and "reason" in await missing.text()


# -- metrics ---------------------------------------------------------------------------------


async def test_metrics_and_the_start_up_log_show_days_left(mekong, gateway_for, caplog):
    today = datetime.now(UTC).date()
    partner = replace(mekong.partners[MEKONG], agreement_expires_on=today + timedelta(days=12))
    with caplog.at_level(logging.WARNING, logger="gateway.lifecycle"):
        client = await gateway_for(partner)
    assert f"agreement of {MEKONG} ends on" in caplog.text and "(12 day(s) left)" in caplog.text
    text = await (await client.get("/metrics")).text()
    assert f'gateway_partner_agreement_days_left{{partner="{MEKONG}"}} 12.0' in text


# -- reload ------------------------------------------------------------------------------------


@pytest.fixture
def copied(tmp_path: Path, project: Path, mekong: SandboxCluster) -> Config:
    """A project of its own (partner files that a test rewrites), with mekong-collections
    alone and pointed at its running sandbox."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(project / "keys", root / "keys")
    (root / "partners").mkdir()
    text = (project / "partners" / f"{MEKONG}.toml").read_text()
    url = mekong.partners[MEKONG].base_url
    (root / "partners" / f"{MEKONG}.toml").write_text(
        text.replace('base_url = "http://127.0.0.1:9107"', f'base_url = "{url}"')
    )
    config = (project / "config.toml").read_text()
    (root / "config.toml").write_text(
        config.replace('url = "sqlite:///var/gateway.db"', f'url = "sqlite:///{tmp_path}/r.db"')
    )
    return load_config(root / "config.toml")


def partner_file(config: Config) -> Path:
    return config.partners_dir / f"{MEKONG}.toml"


async def test_invalid_reload_keeps_the_running_set_and_logs_why(copied, auth, caplog):
    client = await started(create_app(copied, env={}))
    try:
        app = client.server.app
        before = current(app[GATEWAY].partners)
        path = partner_file(copied)
        path.write_text(path.read_text().replace('"keep"', '"everything"', 1))
        with caplog.at_level(logging.ERROR, logger="gateway.lifecycle"):
            result = app[RELOADER].reload()
        assert not result.ok
        assert f"{path}:" in caplog.text and "unknown transform 'everything'" in caplog.text
        assert "the running partner set and config stay in force" in caplog.text
        assert current(app[GATEWAY].partners) is before
        await sent(client, auth)  # still disclosing under the old set
    finally:
        await client.close()


async def test_reload_swaps_the_set_without_dropping_a_request_in_flight(copied, mekong, auth):
    client = await started(create_app(copied, env={}))
    try:
        app = client.server.app
        mekong.partner(MEKONG).hang_next(1, seconds=0.5)
        in_flight = asyncio.create_task(
            client.post("/v1/disclosures", json=CASE, headers=auth("payments-service"))
        )
        while mekong.partner(MEKONG).faults.pending:  # until the sandbox holds it
            await asyncio.sleep(0.01)
        path = partner_file(copied)
        path.write_text(path.read_text().replace('phone = "keep", ', ""))
        assert app[RELOADER].reload().changed == (MEKONG,)
        r = await in_flight
        assert r.status == 201, await r.text()
        assert "phone" in r.headers["Disclosure-Fields"]  # decided under the old set
        r = await client.post("/v1/disclosures", json=CASE, headers=auth("payments-service"))
        assert r.status == 201 and "phone" not in r.headers["Disclosure-Fields"]
        assert [x.fields for x in mekong.received(MEKONG)][-1].count("phone") == 0
    finally:
        await client.close()


async def test_sighup_reloads_the_running_app(copied, auth):
    app = create_app(copied, env={})
    reload_on_sighup(app)
    client = await started(app)
    try:
        path = partner_file(copied)
        path.write_text(
            path.read_text().replace(
                'agreement = "DPA-2025-007"',
                'agreement = "DPA-2025-007"\nagreement_expires_on = 2020-01-31',
            )
        )
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if current(app[GATEWAY].partners)[MEKONG].agreement_expires_on is not None:
                break
            await asyncio.sleep(0.01)
        await refused_as(client, auth, "agreement_expired", 403)
    finally:
        await client.close()


async def test_a_caller_added_by_a_reload_is_named_in_the_shed_metrics(copied, auth):
    """Not `other`: the shed counter's caller label comes from the callers in force (the
    live table the reload swapped, not the list the app started with)."""
    client = await started(create_app(copied, env={}))
    try:
        app = client.server.app
        path = copied.path
        path.write_text(
            path.read_text()
            + '\n[[callers]]\nid = "reload-batch"\nroles = ["discloser"]\n'
            + f'partners = ["{MEKONG}"]\npurposes = ["service_provision"]\nrate = "1/h"\n'
        )
        assert app[RELOADER].reload().ok
        headers = auth("reload-batch")
        first = await client.post("/v1/disclosures", json=CASE, headers=headers)
        assert first.status == 201, await first.text()
        shed = await client.post("/v1/disclosures", json=CASE, headers=headers)
        assert shed.status == 429, await shed.text()
        text = await (await client.get("/metrics")).text()
        assert 'gateway_shed_requests_total{caller="reload-batch"' in text, text
    finally:
        await client.close()


# -- signing-key rotation: no moment where partners cannot verify ---------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_rotation_restart_and_a_partner_with_the_old_jwks_cache(tmp_path, project, auth):
    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    config = replace(load_config(root / "config.toml"), storage_url=f"sqlite:///{tmp_path}/k.db")
    port = free_port()
    jwks_url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    partners = load_partners(config.partners_dir, config.root)
    # The partner fetches the gateway's JWKS from its URL and keeps it (refetching only
    # for a kid it does not hold), like most JOSE libraries' key caches.
    cluster = await start_sandboxes(
        {MEKONG: partners[MEKONG]}, config.keys_dir, jwks_url, {}, ports={MEKONG: 0}
    )
    sandbox = cluster.partner(MEKONG)
    served: list[str] = []

    async def count_jwks(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/.well-known/jwks.json":
            served.append(request.path)

    def gateway_app() -> web.Application:
        app = create_app(config, partners=cluster.partners, env={})
        app.on_response_prepare.append(count_jwks)
        return app

    try:
        first = await started(gateway_app(), port)
        try:
            await sent(first, auth)
            assert len(served) == 1  # the partner fetched the JWKS once
            old_keys = first.server.app[GATEWAY].keys
            old_kid = old_keys.signing_kid("ES256")
            # A disclosure token signed just before the rotation, still on its way.
            claims = claims_for(
                issuer=config.log.origin,
                partner_id=MEKONG,
                disclosure_id="d-signed-before-rotation",
                purpose="service_provision",
                legal_basis="contract",
                data={"amount": 1},
                now=datetime.now(UTC),
            )
            recipient = load_partner_key_file(partners[MEKONG].encryption.public_key)
            old_token = old_keys.seal(
                claims, sign_alg="ES256", recipient=recipient, alg="RSA-OAEP-256", enc="A256GCM"
            )
        finally:
            await first.close()

        new_keys = rotate_signing_keys(config.keys_dir, datetime.now(UTC), timedelta(days=7))
        second = await started(gateway_app(), port)  # the restart after `gateway keys rotate`
        try:
            new_kid = second.server.app[GATEWAY].keys.signing_kid("ES256")
            assert new_kid != old_kid and new_kid in {k.kid for k in new_keys}
            published = await (await second.get("/.well-known/jwks.json")).json()
            assert {old_kid, new_kid} <= {k["kid"] for k in published["keys"]}
            served.clear()

            async def deliver_old_token() -> int:
                api_key = (config.root / "keys" / "sandbox" / f"{MEKONG}.api-key").read_text()
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        cluster.partners[MEKONG].base_url + "/v1/cases",
                        data=old_token,
                        headers={"Content-Type": "application/jose", "X-Api-Key": api_key.strip()},
                    ) as r,
                ):
                    return r.status

            # The old token verifies against the partner's cached (pre-rotation) JWKS.
            assert await deliver_old_token() == 201, sandbox.rejections
            assert served == []
            # A new token carries the new kid: the partner refetches once and verifies it.
            await sent(second, auth)
            assert len(served) == 1
            # The old key is still published (grace), so the old token verifies after too.
            assert await deliver_old_token() == 201, sandbox.rejections
            assert sandbox.rejections == []
        finally:
            await second.close()
    finally:
        await cluster.close()
