"""Sandbox partners: real sealed payloads, real loopback servers, real keys."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc import jwe, jwt
from joserfc.jwk import ECKey, Key, RSAKey, import_key

from gateway.config.model import Config
from gateway.crypto.keyring import KeyPaths
from gateway.errors import ConfigError, GatewayError
from gateway.partners import Partner, SecretRef, load_partners
from gateway.sandbox import (
    Received,
    SandboxPartner,
    start_sandboxes,
    with_base_url,
)
from gateway.sandbox.faults import Faults

PAYLOAD_VALUES = ("Somchai Phommavong", "+856 20 5555 1234", "1990-04-02")
ENV = {
    "ADREACH_API_KEY": "adreach-sandbox-key",
    "INSIGHT_API_KEY": "insight-sandbox-key",
    "LXI_API_KEY": "lxi-sandbox-key",
    "BCEL_CLIENT_SECRET": "bcel secret/with:odd chars",
    "BUREAU_CLIENT_SECRET": "bureau-sandbox-secret",
}

# The shipped sandbox partners keep their secrets in files under keys/sandbox/; these
# tests read them from the environment instead, to cover that path and odd characters.
ENV_SECRETS = {
    "adreach": ("key", "ADREACH_API_KEY"),
    "insight-analytics": ("key", "INSIGHT_API_KEY"),
    "lanexang-insurance": ("key", "LXI_API_KEY"),
    "bcel-payments": ("client_secret", "BCEL_CLIENT_SECRET"),
    "lao-credit-bureau": ("client_secret", "BUREAU_CLIENT_SECRET"),
}


@pytest.fixture(scope="module")
def partners(config: Config) -> dict[str, Partner]:
    shipped = load_partners(config.partners_dir, config.root)
    for partner_id, (attr, env) in ENV_SECRETS.items():
        partner = shipped[partner_id]
        auth = replace(partner.auth, **{attr: SecretRef(env=env)})
        shipped[partner_id] = replace(partner, auth=auth)
    return shipped


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# -- keys playing the gateway --------------------------------------------------------------


@pytest.fixture(scope="module")
def signers() -> dict[str, Key]:
    """One gateway signing key per JWS algorithm the partner files use."""
    es = ECKey.generate_key("P-256", private=True, auto_kid=True)
    ps = RSAKey.generate_key(2048, private=True, auto_kid=True)
    return {"ES256": es, "PS256": ps}


@pytest.fixture(scope="module")
def gateway_enc() -> ECKey:
    return ECKey.generate_key("P-256", private=True, auto_kid=True)


@pytest.fixture(scope="module")
def jwks(signers: dict[str, Key], gateway_enc: ECKey) -> dict[str, Any]:
    keys = [k.as_dict(private=False, use="sig", alg=alg) for alg, k in signers.items()]
    keys.append(gateway_enc.as_dict(private=False, use="enc", alg="ECDH-ES+A256KW"))
    return {"keys": keys}


def claims_for(partner: Partner, operation: str, **changes: Any) -> dict[str, Any]:
    op = partner.operations[operation]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://gateway.test",
        "aud": partner.id,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "purpose": sorted(op.purposes)[0],
        "legal_basis": sorted(op.legal_bases)[0],
        "data": {name: f"value-of-{name}" for name in op.fields if name != "name"},
    }
    if "name" in op.fields:
        claims["data"]["name"] = PAYLOAD_VALUES[0]
    claims.update(changes)
    return claims


def seal(
    partner: Partner,
    claims: Mapping[str, Any],
    signer: Key,
    *,
    alg: str | None = None,
    kid: str | None = None,
    jwe_alg: str | None = None,
) -> str:
    """What the gateway sends: a JWT signed by `signer`, encrypted to the partner's key."""
    sign_alg = alg or partner.encryption.sign_alg
    token = jwt.encode(
        {"alg": sign_alg, "kid": kid or signer.kid}, dict(claims), signer, algorithms=[sign_alg]
    )
    assert partner.encryption.public_key is not None
    public = import_key(json.loads(partner.encryption.public_key.read_text()))
    key_alg = jwe_alg or partner.encryption.alg
    enc = partner.encryption.enc
    header = {"alg": key_alg, "enc": enc, "cty": "JWT"}
    return jwe.encrypt_compact(header, token, public, algorithms=[key_alg, enc])


def sandbox_for(
    partner: Partner, project: Path, jwks: Mapping[str, Any] | str, **options: Any
) -> SandboxPartner:
    return SandboxPartner.from_keys(partner, project / "keys", jwks, ENV, **options)


@asynccontextmanager
async def serving(
    app: web.Application, **kwargs: Any
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    server = TestServer(app, **kwargs)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield session, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: str,
    *,
    idempotency_key: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any] | str, Mapping[str, str]]:
    sent = {"Content-Type": "application/jose", **(headers or {})}
    if idempotency_key is not None:
        sent["Idempotency-Key"] = idempotency_key
    async with session.post(url, data=body, headers=sent) as response:
        text = await response.text()
        parsed: dict[str, Any] | str = (
            json.loads(text) if response.content_type == "application/json" else text
        )
        return response.status, parsed, response.headers


# -- accepted and recorded -----------------------------------------------------------------


async def test_sealed_disclosure_is_accepted_and_recorded_by_names_only(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    claims = claims_for(police, "lawful_disclosure")
    async with serving(sandbox.app()) as (session, base):
        status, body, _ = await post(
            session,
            base + "/v1/disclosures",
            seal(police, claims, signers["ES256"]),
            idempotency_key=claims["jti"],
        )
        async with session.get(base + "/_sandbox/received") as response:
            listed = await response.text()

    assert status == 201
    assert isinstance(body, dict)
    assert body["status"] == "ok"
    assert body["operation"] == "lawful_disclosure"
    assert body["received_fields"] == sorted(claims["data"])
    assert body["reference"]
    [received] = sandbox.received
    assert isinstance(received, Received)
    assert received.disclosure_id == claims["jti"]
    assert (received.operation, received.purpose, received.legal_basis) == (
        "lawful_disclosure",
        claims["purpose"],
        claims["legal_basis"],
    )
    assert received.fields == sorted(claims["data"])
    assert "idempotency-key" in received.headers
    assert json.loads(listed)[0]["fields"] == sorted(claims["data"])
    for value in PAYLOAD_VALUES[:1]:
        assert value not in repr(sandbox.received)
        assert value not in listed


async def test_encrypted_response_opens_with_the_gateway_encryption_key(
    partners: dict[str, Partner],
    project: Path,
    signers: dict[str, Key],
    jwks: dict[str, Any],
    gateway_enc: ECKey,
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks, encrypt_responses=True)
    async with serving(sandbox.app()) as (session, base):
        status, body, headers = await post(
            session,
            base + "/v1/disclosures",
            seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"]),
        )
    assert status == 201
    assert headers["Content-Type"].startswith("application/jose")
    assert isinstance(body, str)
    opened = jwe.decrypt_compact(body, gateway_enc, algorithms=["ECDH-ES+A256KW", "A256GCM"])
    assert json.loads(opened.plaintext or b"")["status"] == "ok"


async def test_gateway_crypto_interoperates(partners: dict[str, Partner], project: Path) -> None:
    """The gateway's own sealing is what the sandbox expects, and its answer opens."""
    from datetime import UTC, datetime

    from gateway.crypto.seal import GatewayKeys, load_partner_key_file
    from gateway.crypto.seal import claims_for as gateway_claims

    keys = GatewayKeys.load(project / "keys")
    for pid, operation in (("lanexang-insurance", "quote"), ("lao-credit-bureau", "credit_check")):
        partner = partners[pid]
        sandbox = SandboxPartner(
            replace(partner, auth=replace(partner.auth, type="none")),
            private_key=json.loads(KeyPaths(project / "keys").sandbox_partner(pid).read_text()),
            gateway_jwks=keys.jwks(),
            encrypt_responses=True,
        )
        assert partner.encryption.public_key is not None
        claims = gateway_claims(
            issuer="https://gateway.test",
            partner_id=pid,
            disclosure_id=str(uuid.uuid4()),
            purpose="service_provision",
            legal_basis="consent",
            data={"uuid": "pseudonym-value"},
            now=datetime.now(UTC),
        )
        token = keys.seal(
            claims,
            sign_alg=partner.encryption.sign_alg,
            recipient=load_partner_key_file(partner.encryption.public_key),
            alg=partner.encryption.alg,
            enc=partner.encryption.enc,
        )
        path = partner.operations[operation].path
        async with serving(sandbox.app()) as (session, base):
            status, body, _ = await post(session, base + path, token)
        assert status == 201, body
        assert isinstance(body, str)
        assert json.loads(keys.open_response(body))["received_fields"] == ["uuid"]


# -- what a careful partner refuses --------------------------------------------------------


def _other_es256_with_same_kid(signers: dict[str, Key]) -> Key:
    impostor = ECKey.generate_key("P-256", private=True)
    return ECKey.import_key({**impostor.as_dict(private=True), "kid": str(signers["ES256"].kid)})


REFUSALS: dict[str, tuple[Callable[[Partner, dict[str, Key]], str], str]] = {
    "wrong audience": (
        lambda p, s: seal(p, claims_for(p, "lawful_disclosure", aud="adreach"), s["ES256"]),
        "invalid_audience",
    ),
    "bad signature": (
        lambda p, s: seal(p, claims_for(p, "lawful_disclosure"), _other_es256_with_same_kid(s)),
        "invalid_signature",
    ),
    "unknown kid": (
        lambda p, s: seal(p, claims_for(p, "lawful_disclosure"), s["ES256"], kid="nobody"),
        "unknown_kid",
    ),
    "signature alg not the partner's": (
        lambda p, s: seal(p, claims_for(p, "lawful_disclosure"), s["PS256"], alg="PS256"),
        "invalid_signature",
    ),
    "wrong JWE alg": (
        lambda p, s: seal(p, claims_for(p, "lawful_disclosure"), s["ES256"], jwe_alg="RSA-OAEP"),
        "invalid_jwe",
    ),
    "expired": (
        lambda p, s: seal(
            p, claims_for(p, "lawful_disclosure", exp=int(time.time()) - 600), s["ES256"]
        ),
        "expired",
    ),
    "purpose not agreed": (
        lambda p, s: seal(p, claims_for(p, "lawful_disclosure", purpose="marketing"), s["ES256"]),
        "purpose_not_agreed",
    ),
    "field not agreed": (
        lambda p, s: seal(
            p, claims_for(p, "lawful_disclosure", data={"password": "x"}), s["ES256"]
        ),
        "field_not_agreed",
    ),
    "not a JWE": (lambda p, s: "not.a.jwe", "invalid_jwe"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_payload_problems_are_refused_with_4xx(
    case: str,
    partners: dict[str, Partner],
    project: Path,
    signers: dict[str, Key],
    jwks: dict[str, Any],
) -> None:
    police = partners["vientiane-police"]
    make, error = REFUSALS[case]
    sandbox = sandbox_for(police, project, jwks)
    async with serving(sandbox.app()) as (session, base):
        status, body, _ = await post(session, base + "/v1/disclosures", make(police, signers))
    assert status == 400
    assert isinstance(body, dict)
    assert body["error"] == error, body
    assert sandbox.received == []
    assert [r.error for r in sandbox.rejections] == [error]


async def test_wrong_content_type_is_415(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    sandbox = sandbox_for(partners["vientiane-police"], project, jwks)
    async with serving(sandbox.app()) as (session, base):
        async with session.post(base + "/v1/disclosures", json={"name": "x"}) as response:
            assert response.status == 415


async def test_idempotency_key_must_be_the_disclosure_id(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
    async with serving(sandbox.app()) as (session, base):
        status, body, _ = await post(
            session, base + "/v1/disclosures", token, idempotency_key="other"
        )
    assert (status, body["error"] if isinstance(body, dict) else body) == (
        400,
        "idempotency_key_mismatch",
    )


async def test_path_placeholder_must_match_the_payload(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    bcel = partners["bcel-payments"]
    open_bcel = replace(bcel, auth=replace(bcel.auth, type="none"))
    sandbox = sandbox_for(open_bcel, project, jwks)
    claims = claims_for(bcel, "refund", data={"transaction_id": "tx 42/a", "amount": 10})
    async with serving(sandbox.app()) as (session, base):
        ok, _, _ = await post(
            session, base + "/v1/charges/tx%2042%2Fa/refunds", seal(bcel, claims, signers["ES256"])
        )
        claims = claims_for(bcel, "refund", data={"transaction_id": "tx-43"})
        wrong, body, _ = await post(
            session, base + "/v1/charges/tx-44/refunds", seal(bcel, claims, signers["ES256"])
        )
    assert ok == 201
    assert (wrong, body["error"] if isinstance(body, dict) else body) == (400, "path_mismatch")


# -- the gateway's JWKS --------------------------------------------------------------------


async def test_jwks_url_is_fetched_once_and_again_for_an_unknown_kid(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    published: dict[str, Any] = {"keys": list(jwks["keys"])}
    fetches = 0

    async def serve_jwks(_request: web.Request) -> web.Response:
        nonlocal fetches
        fetches += 1
        return web.json_response(published)

    jwks_app = web.Application()
    jwks_app.router.add_get("/.well-known/jwks.json", serve_jwks)
    rotated = ECKey.generate_key("P-256", private=True, auto_kid=True)
    async with serving(jwks_app) as (_, gateway_url):
        sandbox = sandbox_for(police, project, gateway_url + "/.well-known/jwks.json")
        async with serving(sandbox.app()) as (session, base):
            for _ in range(2):
                claims = claims_for(police, "lawful_disclosure")
                status, _, _ = await post(
                    session, base + "/v1/disclosures", seal(police, claims, signers["ES256"])
                )
                assert status == 201
            assert fetches == 1
            published["keys"].append(rotated.as_dict(private=False, use="sig", alg="ES256"))
            claims = claims_for(police, "lawful_disclosure")
            status, _, _ = await post(
                session, base + "/v1/disclosures", seal(police, claims, rotated)
            )
    assert status == 201
    assert fetches == 2


# -- partner authentication ----------------------------------------------------------------


async def test_api_key_missing_or_wrong_is_401(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    adreach = partners["adreach"]
    sandbox = sandbox_for(adreach, project, jwks)
    url_path = "/v1/audiences/members"
    results = []
    async with serving(sandbox.app()) as (session, base):
        for headers in (
            {},
            {"Authorization-Key": "guess"},
            {"Authorization-Key": ENV["ADREACH_API_KEY"]},
        ):
            token = seal(adreach, claims_for(adreach, "audience_upload"), signers["ES256"])
            status, body, _ = await post(session, base + url_path, token, headers=headers)
            results.append(
                (status, body["error"] if status >= 400 and isinstance(body, dict) else None)
            )
    assert results == [(401, "missing_api_key"), (401, "invalid_api_key"), (201, None)]


async def test_api_key_from_file(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    mekong = partners["mekong-collections"]
    assert mekong.auth.key is not None and mekong.auth.key.file is not None
    secret = mekong.auth.key.file.read_text().strip()
    sandbox = sandbox_for(mekong, project, jwks)
    async with serving(sandbox.app()) as (session, base):
        token = seal(mekong, claims_for(mekong, "open_case"), signers["ES256"])
        status, _, _ = await post(session, base + "/v1/cases", token, headers={"X-Api-Key": secret})
    assert status == 201


async def token_request(
    session: aiohttp.ClientSession,
    url: str,
    *,
    form: Mapping[str, str],
    basic: tuple[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {}
    if basic is not None:
        # RFC 6749 §2.3.1: each part form-urlencoded, then HTTP Basic.
        pair = f"{quote(basic[0], safe='')}:{quote(basic[1], safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    async with session.post(url, data=dict(form), headers=headers) as response:
        return response.status, await response.json()


async def test_oauth2_client_secret_basic_token_then_bearer(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    bcel = partners["bcel-payments"]
    clock = FakeClock()
    sandbox = sandbox_for(bcel, project, jwks, token_ttl=60, clock=clock)
    grant = {"grant_type": "client_credentials", "scope": "payments.write"}
    async with serving(sandbox.app()) as (session, base):
        status, issued = await token_request(
            session,
            base + "/oauth/token",
            form=grant,
            basic=("kokkok-car", ENV["BCEL_CLIENT_SECRET"]),
        )
        assert status == 200, issued
        assert issued["token_type"] == "Bearer"
        assert issued["expires_in"] == 60
        assert issued["scope"] == "payments.write"
        bearer = {"Authorization": f"Bearer {issued['access_token']}"}

        async def charge(headers: Mapping[str, str]) -> int:
            token = seal(bcel, claims_for(bcel, "charge"), signers["ES256"])
            status, _, _ = await post(session, base + "/v1/charges", token, headers=headers)
            return status

        assert await charge(bearer) == 201
        assert await charge({"Authorization": "Bearer not-issued-here"}) == 401
        assert await charge({}) == 401
        clock.now += 61
        assert await charge(bearer) == 401

        wrong, refused = await token_request(
            session, base + "/oauth/token", form=grant, basic=("kokkok-car", "guess")
        )
        as_post, _ = await token_request(
            session,
            base + "/oauth/token",
            form={**grant, "client_id": "kokkok-car", "client_secret": ENV["BCEL_CLIENT_SECRET"]},
        )
        too_wide, scope_error = await token_request(
            session,
            base + "/oauth/token",
            form={**grant, "scope": "payments.write admin"},
            basic=("kokkok-car", ENV["BCEL_CLIENT_SECRET"]),
        )
    assert (wrong, refused["error"]) == (401, "invalid_client")
    assert as_post == 401  # the partner file says client_secret_basic
    assert (too_wide, scope_error["error"]) == (400, "invalid_scope")


async def test_oauth2_client_secret_post(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    bureau = partners["lao-credit-bureau"]
    sandbox = sandbox_for(bureau, project, jwks)
    form = {
        "grant_type": "client_credentials",
        "client_id": "kokkok-car",
        "client_secret": ENV["BUREAU_CLIENT_SECRET"],
    }
    async with serving(sandbox.app()) as (session, base):
        status, issued = await token_request(session, base + "/oauth/token", form=form)
        assert status == 200
        assert issued["scope"] == "credit.read"
        token = seal(bureau, claims_for(bureau, "credit_check"), signers["PS256"])
        accepted, _, _ = await post(
            session,
            base + "/v1/credit-checks",
            token,
            headers={"Authorization": f"Bearer {issued['access_token']}"},
        )
        wrong, _ = await token_request(
            session, base + "/oauth/token", form={**form, "client_secret": "guess"}
        )
        bad_grant, grant_error = await token_request(
            session, base + "/oauth/token", form={**form, "grant_type": "password"}
        )
    assert accepted == 201
    assert wrong == 401
    assert (bad_grant, grant_error["error"]) == (400, "unsupported_grant_type")


async def test_oauth2_private_key_jwt_assertion_is_verified(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    bcel = partners["bcel-payments"]
    client_key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    partner = replace(
        bcel,
        auth=replace(
            bcel.auth,
            token_endpoint_auth_method="private_key_jwt",
            client_secret=None,
            private_key_file=Path("unused"),
        ),
    )
    sandbox = SandboxPartner(
        partner,
        private_key=json.loads(KeyPaths(project / "keys").sandbox_partner(bcel.id).read_text()),
        gateway_jwks=jwks,
        client_public_key=client_key.as_dict(private=False),
    )

    def assertion(key: Key, audience: str, **changes: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": "kokkok-car",
            "sub": "kokkok-car",
            "aud": audience,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
            **changes,
        }
        return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])

    async with serving(sandbox.app()) as (session, base):
        endpoint = base + "/oauth/token"

        async def ask(client_assertion: str) -> int:
            form = {
                "grant_type": "client_credentials",
                "client_id": "kokkok-car",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion,
            }
            status, _ = await token_request(session, endpoint, form=form)
            return status

        good = assertion(client_key, endpoint)
        assert await ask(good) == 200
        assert await ask(good) == 401  # replayed jti
        other = ECKey.generate_key("P-256", private=True, auto_kid=True)
        assert await ask(assertion(other, endpoint)) == 401
        assert await ask(assertion(client_key, "https://elsewhere.example/token")) == 401
        assert await ask(assertion(client_key, endpoint, sub="someone-else")) == 401
        assert await ask(assertion(client_key, bcel.auth.token_url or "")) == 200


# -- faults --------------------------------------------------------------------------------


async def test_fail_next_then_success(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    sandbox.fail_next(2, status=503, retry_after=1)
    statuses = []
    retry_after = []
    async with serving(sandbox.app()) as (session, base):
        for _ in range(3):
            token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
            status, _, headers = await post(session, base + "/v1/disclosures", token)
            statuses.append(status)
            retry_after.append(headers.get("Retry-After"))
    assert statuses == [503, 503, 201]
    assert retry_after == ["1", "1", None]
    assert len(sandbox.received) == 1


async def test_reset_next_drops_the_connection(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    sandbox.reset_next(1)
    async with serving(sandbox.app()) as (session, base):
        token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            await post(session, base + "/v1/disclosures", token)
        status, _, _ = await post(session, base + "/v1/disclosures", token)
    assert status == 201


async def test_hang_next_outlives_a_client_timeout(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    sandbox.hang_next(1, seconds=5)
    async with serving(sandbox.app()) as (session, base):
        token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with session.post(
                base + "/v1/disclosures",
                data=token,
                headers={"Content-Type": "application/jose"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            ):
                pass
        status, _, _ = await post(session, base + "/v1/disclosures", token)
    assert status == 201
    assert time.monotonic() - started < 3


async def test_slow_body_sends_headers_first(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    sandbox.slow_body(1, seconds=0.3)
    async with serving(sandbox.app()) as (session, base):
        token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
        async with session.post(
            base + "/v1/disclosures", data=token, headers={"Content-Type": "application/jose"}
        ) as response:
            assert response.status == 201
            started = time.monotonic()
            body = await response.json()
            waited = time.monotonic() - started
    assert body["status"] == "ok"
    assert waited >= 0.2


async def test_drip_body_sends_the_answer_byte_by_byte(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    sandbox.drip_body(1, byte_delay_s=0.002)
    async with serving(sandbox.app()) as (session, base):
        token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
        async with session.post(
            base + "/v1/disclosures", data=token, headers={"Content-Type": "application/jose"}
        ) as response:
            assert response.status == 201
            chunks = [chunk async for chunk in response.content.iter_any()]
    body = json.loads(b"".join(chunks))
    assert body["status"] == "ok" and len(chunks) > 10
    assert len(sandbox.received) == 1


async def test_cut_body_closes_the_connection_mid_body_after_recording(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    async with serving(sandbox.app()) as (session, base):
        async with session.post(
            base + "/_sandbox/faults", json={"kind": "cut", "count": 1}
        ) as response:
            assert (await response.json())["pending"][0]["kind"] == "cut"
        token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
        with pytest.raises(aiohttp.ClientPayloadError):
            await post(session, base + "/v1/disclosures", token)
        status, _, _ = await post(session, base + "/v1/disclosures", token)
    assert status == 201
    assert len(sandbox.received) == 1  # the repeat met the Idempotency-Key


async def test_faults_over_http(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    async with serving(sandbox.app()) as (session, base):
        async with session.post(
            base + "/_sandbox/faults", json={"kind": "fail", "count": 1, "status": 500}
        ) as response:
            assert response.status == 200
            assert (await response.json())["pending"][0]["kind"] == "fail"
        async with session.post(base + "/_sandbox/faults", json={"kind": "explode"}) as response:
            assert response.status == 400
        token = seal(police, claims_for(police, "lawful_disclosure"), signers["ES256"])
        first, _, _ = await post(session, base + "/v1/disclosures", token)
        second, _, _ = await post(session, base + "/v1/disclosures", token)
    assert (first, second) == (500, 201)


async def test_token_endpoint_faults_leave_disclosures_alone(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    sandbox = sandbox_for(partners["lao-credit-bureau"], project, jwks)
    sandbox.fail_next(1, status=502, endpoint="token")
    form = {
        "grant_type": "client_credentials",
        "client_id": "kokkok-car",
        "client_secret": ENV["BUREAU_CLIENT_SECRET"],
    }
    async with serving(sandbox.app()) as (session, base):
        first, _ = await token_request(session, base + "/oauth/token", form=form)
        second, _ = await token_request(session, base + "/oauth/token", form=form)
    assert (first, second) == (502, 200)


async def test_idempotent_repeat_is_recorded_once_with_the_first_answer(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    sandbox = sandbox_for(police, project, jwks)
    claims = claims_for(police, "lawful_disclosure")
    async with serving(sandbox.app()) as (session, base):
        answers = []
        for _ in range(2):
            # A retry may re-seal the same disclosure: same jti, new JWE.
            token = seal(police, claims, signers["ES256"])
            answers.append(
                await post(session, base + "/v1/disclosures", token, idempotency_key=claims["jti"])
            )
        other = claims_for(police, "lawful_disclosure")
        await post(session, base + "/v1/disclosures", seal(police, other, signers["ES256"]))
    assert answers[0][:2] == answers[1][:2]
    assert [r.disclosure_id for r in sandbox.received] == [claims["jti"], other["jti"]]


# -- every partner at once -----------------------------------------------------------------


async def test_start_sandboxes_serves_every_loopback_partner(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    cluster = await start_sandboxes(
        partners, project / "keys", jwks, ENV, ports={pid: 0 for pid in partners}
    )
    async with cluster:
        assert set(cluster.partners) == set(partners)
        for pid, moved in cluster.partners.items():
            assert moved.base_url != partners[pid].base_url
            assert moved.base_url.startswith(partners[pid].base_url.split(":")[0])
        bureau = cluster.partner_config("lao-credit-bureau")
        assert bureau.auth.token_url == bureau.base_url + "/oauth/token"

        police = cluster.partner_config("vientiane-police")
        claims = claims_for(police, "lawful_disclosure")
        async with aiohttp.ClientSession() as session:
            status, _, _ = await post(
                session, police.base_url + "/v1/disclosures", seal(police, claims, signers["ES256"])
            )
            status_token, _ = await token_request(
                session,
                bureau.auth.token_url or "",
                form={
                    "grant_type": "client_credentials",
                    "client_id": "kokkok-car",
                    "client_secret": ENV["BUREAU_CLIENT_SECRET"],
                },
            )
        assert status == 201
        assert status_token == 200
        assert [r.disclosure_id for r in cluster.received("vientiane-police")] == [claims["jti"]]
        cluster.partner("adreach").fail_next(1)
        with pytest.raises(KeyError, match="running"):
            cluster.partner("nobody")


async def test_token_endpoint_on_another_origin_gets_its_own_server(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    bureau = partners["lao-credit-bureau"]
    apart = replace(bureau, auth=replace(bureau.auth, token_url="http://127.0.0.1:9199/auth/token"))
    cluster = await start_sandboxes(
        {bureau.id: apart}, project / "keys", jwks, ENV, ports={bureau.id: 0}
    )
    form = {
        "grant_type": "client_credentials",
        "client_id": "kokkok-car",
        "client_secret": ENV["BUREAU_CLIENT_SECRET"],
    }
    async with cluster, aiohttp.ClientSession() as session:
        served = cluster.partner_config(bureau.id)
        token_url = served.auth.token_url or ""
        assert token_url.endswith("/auth/token")
        assert not token_url.startswith(served.base_url)
        status, _ = await token_request(session, token_url, form=form)
        async with session.post(served.base_url + "/auth/token", data=form) as response:
            on_base = response.status
    assert status == 200
    assert on_base == 404


async def test_start_sandboxes_refuses_a_busy_port(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    police = {"vientiane-police": partners["vientiane-police"]}
    first = await start_sandboxes(
        police, project / "keys", jwks, ENV, ports={"vientiane-police": 0}
    )
    async with first:
        port = int(first.base_url("vientiane-police").rsplit(":", 1)[1])
        with pytest.raises(GatewayError, match="cannot listen"):
            await start_sandboxes(
                police, project / "keys", jwks, ENV, ports={"vientiane-police": port}
            )


async def test_two_partners_on_one_fixed_port_is_a_config_error(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    police = partners["vientiane-police"]
    twin = with_base_url(partners["adreach"], police.base_url)
    with pytest.raises(ConfigError, match="already used"):
        await start_sandboxes(
            {"vientiane-police": police, "adreach": twin}, project / "keys", jwks, ENV
        )


async def test_missing_secret_is_a_config_error(
    partners: dict[str, Partner], project: Path, jwks: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="ADREACH_API_KEY"):
        SandboxPartner.from_keys(partners["adreach"], project / "keys", jwks, {})


def test_with_base_url_moves_a_same_origin_token_url(partners: dict[str, Partner]) -> None:
    bcel = partners["bcel-payments"]
    moved = with_base_url(bcel, "http://127.0.0.1:40001/")
    assert moved.base_url == "http://127.0.0.1:40001"
    assert moved.auth.token_url == "http://127.0.0.1:40001/oauth/token"
    elsewhere = replace(bcel, auth=replace(bcel.auth, token_url="http://127.0.0.1:9999/token"))
    assert with_base_url(elsewhere, "http://127.0.0.1:1").auth.token_url == (
        "http://127.0.0.1:9999/token"
    )
    given = with_base_url(elsewhere, "http://127.0.0.1:1", token_url="http://127.0.0.1:2/token")
    assert given.auth.token_url == "http://127.0.0.1:2/token"


# -- mTLS ----------------------------------------------------------------------------------


async def test_mtls_refuses_a_client_without_certificate(
    partners: dict[str, Partner],
    project: Path,
    signers: dict[str, Key],
    jwks: dict[str, Any],
    tmp_path: Path,
) -> None:
    veriid = partners["veriid"]
    ca = trustme.CA()
    paths = KeyPaths(tmp_path / "keys")
    paths.sandbox.mkdir(parents=True)
    ca.cert_pem.write_to_path(str(paths.sandbox_ca_cert))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(paths.sandbox_server_cert("veriid")))
    server.private_key_pem.write_to_path(str(paths.sandbox_server_key("veriid")))
    shutil.copy(
        KeyPaths(project / "keys").sandbox_partner("veriid"), paths.sandbox_partner("veriid")
    )

    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    ca.issue_cert("disclosure-gateway").configure_cert(with_cert)
    stranger = ssl.create_default_context()
    ca.configure_trust(stranger)
    trustme.CA().issue_cert("disclosure-gateway").configure_cert(stranger)

    cluster = await start_sandboxes(
        {"veriid": veriid}, tmp_path / "keys", jwks, {}, ports={"veriid": 0}
    )
    async with cluster:
        url = cluster.base_url("veriid") + "/v2/verifications"
        assert url.startswith("https://127.0.0.1:")
        token = seal(veriid, claims_for(veriid, "verify_identity"), signers["ES256"])
        for context in (trusting, stranger):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
                with pytest.raises(aiohttp.ClientError):
                    await post(s, url, token)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as s:
            status, _, _ = await post(s, url, token)
    assert status == 201
    assert len(cluster.received("veriid")) == 1


async def test_mtls_sandbox_without_tls_refuses(
    partners: dict[str, Partner], project: Path, signers: dict[str, Key], jwks: dict[str, Any]
) -> None:
    veriid = partners["veriid"]
    sandbox = sandbox_for(veriid, project, jwks)
    async with serving(sandbox.app()) as (session, base):
        token = seal(veriid, claims_for(veriid, "verify_identity"), signers["ES256"])
        status, body, _ = await post(session, base + "/v2/verifications", token)
    assert status == 401
    assert isinstance(body, dict) and body["error"] == "client_certificate_required"


def test_bad_ack_fault_is_queued_in_process_and_over_json() -> None:
    faults = Faults()
    faults.queue_json({"kind": "ack", "count": 2, "spoil": "missing"})
    faults.bad_ack()
    assert [(f["kind"], f["remaining"], f["spoil"]) for f in faults.pending] == [
        ("ack", 2, "missing"),
        ("ack", 1, "wrong_hash"),
    ]
    with pytest.raises(ValueError, match="spoil must be one of"):
        faults.queue_json({"kind": "ack", "spoil": "CANARY"})
    taken = faults.take("disclosure")
    assert taken is not None and taken.spoil == "missing"
