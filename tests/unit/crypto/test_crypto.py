"""Sign-then-encrypt with real keys: round trips, interop with jwcrypto, refusals, partner keys."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwe, jws
from joserfc.jwe import JWERegistry
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from jwcrypto import jwe as jc_jwe  # type: ignore[import-untyped]
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

from gateway.crypto.generate import generate_missing
from gateway.crypto.keyring import rotate_signing_keys
from gateway.crypto.seal import (
    GatewayKeys,
    PartnerKey,
    PartnerKeyCache,
    claims_for,
    load_partner_key_file,
)
from gateway.errors import GatewayError
from gateway.partners.model import SIGN_ALGS, Partner, PartnerEncryption
from gateway.problem_catalog import KEY_RECHECK_S, PARTNER_RETRY_AFTER_S

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

# (partner alg, key type) — every combination a partner file may ask for.
PARTNER_KEYS = [
    ("RSA-OAEP-256", "RSA"),
    ("ECDH-ES+A256KW", "X25519"),
    ("ECDH-ES+A256KW", "P-256"),
    ("ECDH-ES", "X25519"),
    ("ECDH-ES", "P-256"),
]
PrivateJwk = ECKey | OKPKey | RSAKey


def _new_key(kind: str) -> PrivateJwk:
    key: PrivateJwk
    if kind == "RSA":
        key = RSAKey.generate_key(2048, private=True)
    elif kind == "X25519":
        key = OKPKey.generate_key("X25519", private=True)
    else:
        key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    return key


@pytest.fixture(scope="module")
def partner_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[PrivateJwk, Path]]:
    """One private key per key type, its public half written as a partner would publish it."""
    root = tmp_path_factory.mktemp("partner-keys")
    made: dict[str, tuple[PrivateJwk, Path]] = {}
    for kind in ("RSA", "X25519", "P-256"):
        key = _new_key(kind)
        path = root / f"{kind}.jwk.json"
        path.write_text(json.dumps(key.as_dict(private=False, use="enc")), encoding="utf-8")
        made[kind] = (key, path)
    return made


@pytest.fixture(scope="module")
def gateway_keys(project: Path) -> GatewayKeys:
    return GatewayKeys.load(project / "keys", NOW)


def _claims(**extra: Any) -> dict[str, Any]:
    return claims_for(
        issuer="https://gateway.kokkok.example",
        partner_id="lao-credit-bureau",
        disclosure_id="dsc_01HTESTDISCLOSURE",
        purpose="service_provision",
        legal_basis="consent",
        data={"name": "Somchai", "date_of_birth": "1990", "uuid": "ps_abc"},
        now=NOW,
        extra=extra or None,
    )


def _b64json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return doc


def _b64int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _jwks_key(gateway_keys: GatewayKeys, kid: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [k for k in gateway_keys.jwks(NOW)["keys"] if k["kid"] == kid]
    assert len(matches) == 1, f"kid {kid} not published exactly once"
    return matches[0]


# -- round trips --------------------------------------------------------------


@pytest.mark.parametrize("sign_alg", SIGN_ALGS)
@pytest.mark.parametrize(("alg", "kind"), PARTNER_KEYS)
def test_round_trip_every_partner_alg_and_sign_alg(
    gateway_keys: GatewayKeys,
    partner_keys: dict[str, tuple[PrivateJwk, Path]],
    alg: str,
    kind: str,
    sign_alg: str,
) -> None:
    private, public_path = partner_keys[kind]
    recipient = load_partner_key_file(public_path, alg=alg)
    token = gateway_keys.seal(
        _claims(), sign_alg=sign_alg, recipient=recipient, alg=alg, enc="A256GCM"
    )

    assert token.count(".") == 4  # compact JWE
    opened = jwe.decrypt_compact(token, private, registry=JWERegistry(algorithms=[alg, "A256GCM"]))
    assert opened.protected["alg"] == alg
    assert opened.protected["enc"] == "A256GCM"
    assert opened.protected["cty"] == "JWT"
    assert opened.protected["kid"] == private.kid

    signed = (opened.plaintext or b"").decode()
    header = _b64json(signed.split(".")[0])
    assert header == {"alg": sign_alg, "kid": gateway_keys.signing_kid(sign_alg), "typ": "JWT"}
    verifier = _jwks_key(gateway_keys, header["kid"])
    assert verifier["alg"] == sign_alg
    verified = jws.deserialize_compact(
        signed,
        ECKey.import_key(verifier)
        if verifier["kty"] == "EC"
        else OKPKey.import_key(verifier)
        if verifier["kty"] == "OKP"
        else RSAKey.import_key(verifier),
        registry=JWSRegistry(algorithms=[sign_alg]),
    )
    assert json.loads(verified.payload) == _claims()


@pytest.mark.parametrize("enc", ["A128GCM", "A192GCM"])
def test_other_content_encryptions(
    gateway_keys: GatewayKeys, partner_keys: dict[str, tuple[PrivateJwk, Path]], enc: str
) -> None:
    private, path = partner_keys["X25519"]
    token = gateway_keys.seal(
        _claims(),
        sign_alg="ES256",
        recipient=load_partner_key_file(path),
        alg="ECDH-ES+A256KW",
        enc=enc,
    )
    opened = jwe.decrypt_compact(
        token, private, registry=JWERegistry(algorithms=["ECDH-ES+A256KW", enc])
    )
    assert opened.protected["enc"] == enc


# -- interop: an independent implementation opens and verifies -----------------


@pytest.mark.parametrize("sign_alg", SIGN_ALGS)
@pytest.mark.parametrize(("alg", "kind"), PARTNER_KEYS)
def test_jwcrypto_decrypts_and_verifies(
    gateway_keys: GatewayKeys,
    partner_keys: dict[str, tuple[PrivateJwk, Path]],
    alg: str,
    kind: str,
    sign_alg: str,
) -> None:
    private, public_path = partner_keys[kind]
    token = gateway_keys.seal(
        _claims(bound_by_policy_version="2024-09-30"),
        sign_alg=sign_alg,
        recipient=load_partner_key_file(public_path),
        alg=alg,
        enc="A256GCM",
    )

    decrypter = jc_jwe.JWE()
    decrypter.allowed_algs = [alg, "A256GCM"]
    decrypter.deserialize(token, key=jc_jwk.JWK(**private.as_dict(private=True)))
    signed = decrypter.payload.decode()

    published = jc_jwk.JWKSet.from_json(json.dumps(gateway_keys.jwks(NOW)))
    verifier = jc_jws.JWS()
    verifier.allowed_algs = [sign_alg]
    verifier.deserialize(signed)
    kid = verifier.jose_header["kid"]
    key = published.get_key(kid)
    assert key is not None
    verifier.verify(key, alg=sign_alg)
    claims = json.loads(verifier.payload)
    assert claims["jti"] == "dsc_01HTESTDISCLOSURE"
    assert claims["bound_by_policy_version"] == "2024-09-30"


def test_jwcrypto_encrypted_response_opens(gateway_keys: GatewayKeys) -> None:
    enc_key = next(k for k in gateway_keys.jwks(NOW)["keys"] if k["use"] == "enc")
    token = jc_jwe.JWE(
        b'{"status":"ok"}',
        json.dumps({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": enc_key["kid"]}),
    )
    token.add_recipient(jc_jwk.JWK(**enc_key))
    assert gateway_keys.open_response(token.serialize(compact=True)) == b'{"status":"ok"}'


# -- partner responses: allowlist -----------------------------------------------


def _to_gateway(gateway_keys: GatewayKeys, alg: str, enc: str, **header: Any) -> str:
    enc_key = next(k for k in gateway_keys.jwks(NOW)["keys"] if k["use"] == "enc")
    return jwe.encrypt_compact(
        {"alg": alg, "enc": enc, **header},
        b'{"result":"match"}',
        ECKey.import_key(enc_key),
        registry=JWERegistry(algorithms=[alg, enc, "DEF"]),
    )


@pytest.mark.parametrize(
    ("alg", "enc"),
    [("ECDH-ES+A256KW", "A256GCM"), ("ECDH-ES", "A256GCM"), ("ECDH-ES+A256KW", "A128GCM")],
)
def test_open_response_accepts_allowlisted(gateway_keys: GatewayKeys, alg: str, enc: str) -> None:
    assert gateway_keys.open_response(_to_gateway(gateway_keys, alg, enc)) == b'{"result":"match"}'


@pytest.mark.parametrize(
    ("alg", "enc", "extra"),
    [
        ("ECDH-ES+A128KW", "A256GCM", {}),  # key wrap outside the allowlist
        ("ECDH-ES+A256KW", "A128CBC-HS256", {}),  # content encryption outside it
        ("ECDH-ES+A256KW", "A192GCM", {}),
        ("ECDH-ES+A256KW", "A256GCM", {"zip": "DEF"}),  # compression: refused
    ],
)
def test_open_response_refuses_outside_allowlist(
    gateway_keys: GatewayKeys, alg: str, enc: str, extra: dict[str, str]
) -> None:
    token = _to_gateway(gateway_keys, alg, enc, **extra)
    with pytest.raises(GatewayError) as caught:
        gateway_keys.open_response(token)
    assert caught.value.code == "partner_unavailable"
    assert "JWE" in caught.value.detail


def test_open_response_refuses_symmetric_dir(gateway_keys: GatewayKeys) -> None:
    token = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM"},
        b"{}",
        OctKey.generate_key(256),
        registry=JWERegistry(algorithms=["dir", "A256GCM"]),
    )
    with pytest.raises(GatewayError, match="partner_unavailable"):
        gateway_keys.open_response(token)


def test_open_response_refuses_key_type_confusion(
    gateway_keys: GatewayKeys, partner_keys: dict[str, tuple[PrivateJwk, Path]]
) -> None:
    # RSA-OAEP-256 is allowlisted, but the gateway's encryption key is EC: no key fits.
    rsa, _ = partner_keys["RSA"]
    token = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM"},
        b"{}",
        rsa,
        registry=JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"]),
    )
    with pytest.raises(GatewayError, match="partner_unavailable"):
        gateway_keys.open_response(token)


def _flip_last_char(segment: str) -> str:
    return segment[:-1] + ("A" if segment[-1] != "A" else "B")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "",
        lambda t: "not-a-jwe",
        lambda t: "a.b.c.d.e",
        lambda t: t.rsplit(".", 1)[0],  # tag missing
        lambda t: ".".join(
            [*t.split(".")[:3], _flip_last_char(t.split(".")[3]), *t.split(".")[4:]]
        ),
        lambda t: ".".join([*t.split(".")[:4], _flip_last_char(t.split(".")[4])]),
        lambda t: (
            base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=") + t[t.index(".") :]
        ),
    ],
)
def test_open_response_refuses_bad_tokens(
    gateway_keys: GatewayKeys, mangle: Callable[[str], str]
) -> None:
    token = _to_gateway(gateway_keys, "ECDH-ES+A256KW", "A256GCM")
    with pytest.raises(GatewayError) as caught:
        gateway_keys.open_response(mangle(token))
    assert caught.value.code == "partner_unavailable"
    assert token not in caught.value.detail


# -- partner key files ----------------------------------------------------------


def test_partner_key_file_refuses_private_key(tmp_path: Path) -> None:
    key = _new_key("P-256")
    path = tmp_path / "leaked.jwk.json"
    path.write_text(json.dumps(key.as_dict(private=True)), encoding="utf-8")
    with pytest.raises(GatewayError, match="private"):
        load_partner_key_file(path)
    jwks = tmp_path / "leaked.jwks.json"
    jwks.write_text(
        json.dumps({"keys": [_new_key("X25519").as_dict(), key.as_dict(private=True)]}),
        encoding="utf-8",
    )
    with pytest.raises(GatewayError, match="private"):
        load_partner_key_file(jwks)


def test_partner_key_file_picks_encryption_key_from_jwks(tmp_path: Path) -> None:
    signing = _new_key("P-256").as_dict(use="sig")
    encryption = _new_key("X25519").as_dict(use="enc")
    path = tmp_path / "partner.jwks.json"
    path.write_text(json.dumps({"keys": [signing, encryption]}), encoding="utf-8")
    assert load_partner_key_file(path).kid == encryption["kid"]


def test_partner_key_file_picks_key_fitting_alg(tmp_path: Path) -> None:
    ec = _new_key("P-256").as_dict()
    rsa = _new_key("RSA").as_dict()
    path = tmp_path / "partner.jwks.json"
    path.write_text(json.dumps({"keys": [ec, rsa]}), encoding="utf-8")
    assert load_partner_key_file(path, alg="RSA-OAEP-256").kid == rsa["kid"]
    assert load_partner_key_file(path, alg="ECDH-ES").kid == ec["kid"]


@pytest.mark.parametrize(
    "doc",
    [
        {"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "x": "a", "y": "b"}]},
        {"keys": []},
        ["not", "a", "jwk"],
        OctKey.generate_key(256).as_dict(private=True),
        "small-rsa",
        OKPKey.generate_key("Ed25519", private=True).as_dict(private=False),
    ],
)
def test_partner_key_file_refuses_unusable(tmp_path: Path, doc: object) -> None:
    if doc == "small-rsa":
        numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
        doc = {"kty": "RSA", "n": _b64int(numbers.n), "e": _b64int(numbers.e)}
    path = tmp_path / "bad.jwk.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(GatewayError) as caught:
        load_partner_key_file(path)
    assert caught.value.code == "internal_error"
    assert str(path) in caught.value.detail


def test_partner_key_expiry(tmp_path: Path) -> None:
    key = _new_key("X25519").as_dict(exp=int(NOW.timestamp()))
    path = tmp_path / "expiring.jwk.json"
    path.write_text(json.dumps(key), encoding="utf-8")
    loaded = load_partner_key_file(path)
    assert loaded.expires_at == NOW
    assert not loaded.expired(NOW - timedelta(seconds=1))
    assert loaded.expired(NOW)


# -- partner key cache ----------------------------------------------------------


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


class JwksPartner:
    """A loopback partner that publishes its encryption JWKS and counts fetches."""

    def __init__(self) -> None:
        self.keys = [_new_key("X25519").as_dict(use="enc")]
        self.status = 200
        self.fetches = 0
        self.app = web.Application()
        self.app.router.add_get("/jwks.json", self.jwks)

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.Response(status=self.status)
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def jwks_partner() -> AsyncIterator[tuple[JwksPartner, str]]:
    partner = JwksPartner()
    server = TestServer(partner.app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield partner, str(server.make_url("/jwks.json"))
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _with_url(partner: Partner, url: str) -> Partner:
    encryption = PartnerEncryption("ECDH-ES+A256KW", "A256GCM", "ES256", None, url)
    return dataclasses.replace(partner, encryption=encryption, timeout_s=2.0)


async def test_cache_serves_file_key_parsed_once(
    partners: dict[str, Partner], tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    original = partners["veriid"]
    assert original.encryption.public_key is not None
    copy = tmp_path / "veriid.jwk.json"
    shutil.copy(original.encryption.public_key, copy)
    partner = dataclasses.replace(
        original, encryption=dataclasses.replace(original.encryption, public_key=copy)
    )
    cache = PartnerKeyCache(session)
    first = await cache.key_for(partner)
    copy.unlink()  # parsed once: the file is not read again
    assert await cache.key_for(partner) is first
    assert first.kid == json.loads(original.encryption.public_key.read_text())["kid"]


async def test_cache_fetches_url_once_within_ttl(
    partners: dict[str, Partner],
    jwks_partner: tuple[JwksPartner, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = jwks_partner
    clock = FakeClock(NOW)
    cache = PartnerKeyCache(session, ttl=600, clock=clock)
    partner = _with_url(partners["adreach"], url)

    first = await cache.key_for(partner)
    assert first.kid == fake.keys[0]["kid"]
    clock.now += 599
    assert (await cache.key_for(partner)).kid == first.kid
    assert fake.fetches == 1

    fake.keys = [_new_key("X25519").as_dict(use="enc")]  # the partner rotated
    clock.now += 2  # stale now
    assert (await cache.key_for(partner)).kid == fake.keys[0]["kid"]
    assert fake.fetches == 2


async def test_cache_refetches_for_unknown_kid(
    partners: dict[str, Partner],
    jwks_partner: tuple[JwksPartner, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = jwks_partner
    clock = FakeClock(NOW)
    cache = PartnerKeyCache(session, ttl=3600, min_refetch=30, clock=clock)
    partner = _with_url(partners["adreach"], url)
    await cache.key_for(partner)

    newer = _new_key("X25519")
    fake.keys.append(newer.as_dict(use="enc"))
    clock.now += 31
    assert (await cache.key_for(partner, kid=newer.kid)).kid == newer.kid
    assert fake.fetches == 2

    # A kid the partner never published: refused, and not refetched on every call.
    with pytest.raises(GatewayError) as caught:
        await cache.key_for(partner, kid="never-published")
    assert caught.value.code == "partner_unavailable"
    with pytest.raises(GatewayError):
        await cache.key_for(partner, kid="never-published")
    assert fake.fetches == 2


async def test_cache_refetches_when_keys_expired(
    partners: dict[str, Partner],
    jwks_partner: tuple[JwksPartner, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = jwks_partner
    clock = FakeClock(NOW)
    cache = PartnerKeyCache(session, ttl=3600, min_refetch=30, clock=clock)
    partner = _with_url(partners["adreach"], url)
    expiring = _new_key("X25519").as_dict(use="enc", exp=int(NOW.timestamp()) + 60)
    fake.keys = [expiring]
    assert (await cache.key_for(partner)).kid == expiring["kid"]
    fake.keys = [_new_key("X25519").as_dict(use="enc")]
    clock.now += 61
    assert (await cache.key_for(partner)).kid == fake.keys[0]["kid"]


@pytest.mark.parametrize("status", [404, 500, 302])
async def test_cache_fetch_failure_is_partner_unavailable(
    partners: dict[str, Partner],
    jwks_partner: tuple[JwksPartner, str],
    session: aiohttp.ClientSession,
    status: int,
) -> None:
    fake, url = jwks_partner
    fake.status = status
    cache = PartnerKeyCache(session)
    with pytest.raises(GatewayError) as caught:
        await cache.key_for(_with_url(partners["adreach"], url))
    assert caught.value.code == "partner_unavailable"
    assert f"status {status}" in caught.value.detail


async def test_cache_unreachable_is_partner_unavailable(
    partners: dict[str, Partner], session: aiohttp.ClientSession
) -> None:
    server = TestServer(web.Application(), host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url("/jwks.json"))
    await server.close()  # nothing listens there any more
    with pytest.raises(GatewayError) as caught:
        await PartnerKeyCache(session).key_for(_with_url(partners["adreach"], url))
    assert caught.value.code == "partner_unavailable"
    assert "network error" in caught.value.detail


async def test_cache_refuses_private_key_at_url(
    partners: dict[str, Partner], session: aiohttp.ClientSession
) -> None:
    app = web.Application()
    leaked = _new_key("X25519").as_dict(private=True)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"keys": [leaked]})

    app.router.add_get("/jwks.json", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        with pytest.raises(GatewayError, match="private") as caught:
            await PartnerKeyCache(session).key_for(
                _with_url(partners["adreach"], str(server.make_url("/jwks.json")))
            )
        assert caught.value.code == "partner_unavailable"
    finally:
        await server.close()


# -- the gateway's JWKS and rotation --------------------------------------------


def test_jwks_is_public_only(gateway_keys: GatewayKeys) -> None:
    keys = gateway_keys.jwks(NOW)["keys"]
    assert {k["use"] for k in keys} == {"sig", "enc"}
    assert {k["alg"] for k in keys if k["use"] == "sig"} == set(SIGN_ALGS)
    for key in keys:
        assert not PRIVATE_MEMBERS & key.keys(), key["kid"]
        assert not {"iat", "retired_at", "publish_until"} & key.keys()


def test_rotation_changes_kid_and_keeps_old_key_through_grace(
    project: Path, tmp_path: Path, partner_keys: dict[str, tuple[PrivateJwk, Path]]
) -> None:
    keys_dir = tmp_path / "keys"
    generate_missing(keys_dir, None, now=NOW)
    before = GatewayKeys.load(keys_dir, NOW)
    old_kids = {alg: before.signing_kid(alg) for alg in SIGN_ALGS}

    rotated_at = NOW + timedelta(days=30)
    grace = timedelta(days=7)
    rotate_signing_keys(keys_dir, rotated_at, grace=grace)
    after = GatewayKeys.load(keys_dir, rotated_at)

    private, path = partner_keys["P-256"]
    for alg in SIGN_ALGS:
        token = after.seal(
            _claims(),
            sign_alg=alg,
            recipient=load_partner_key_file(path),
            alg="ECDH-ES",
            enc="A256GCM",
        )
        opened = jwe.decrypt_compact(
            token, private, registry=JWERegistry(algorithms=["ECDH-ES", "A256GCM"])
        )
        kid = _b64json((opened.plaintext or b"").decode().split(".")[0])["kid"]
        assert kid == after.signing_kid(alg) != old_kids[alg]

    def published(at: datetime) -> set[str]:
        return {k["kid"] for k in after.jwks(at)["keys"]}

    assert set(old_kids.values()) <= published(rotated_at)
    assert set(old_kids.values()) <= published(rotated_at + grace - timedelta(seconds=1))
    assert not set(old_kids.values()) & published(rotated_at + grace)
    assert {after.signing_kid(alg) for alg in SIGN_ALGS} <= published(rotated_at + grace)


# -- claims ---------------------------------------------------------------------


def test_claims_for_contract_claims() -> None:
    claims = _claims(bound_by_policy_version="2024-09-30")
    assert claims == {
        "iss": "https://gateway.kokkok.example",
        "aud": "lao-credit-bureau",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "dsc_01HTESTDISCLOSURE",
        "purpose": "service_provision",
        "legal_basis": "consent",
        "data": {"name": "Somchai", "date_of_birth": "1990", "uuid": "ps_abc"},
        "bound_by_policy_version": "2024-09-30",
    }


@pytest.mark.parametrize("name", ["aud", "exp", "jti", "data"])
def test_claims_for_extra_cannot_replace(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        _claims(**{name: "x"})


def test_seal_refuses_unknown_sign_alg(
    gateway_keys: GatewayKeys, partner_keys: dict[str, tuple[PrivateJwk, Path]]
) -> None:
    recipient = load_partner_key_file(partner_keys["RSA"][1])
    for sign_alg in ("EdDSA", "HS256", "none", "RS256"):
        with pytest.raises(GatewayError, match="sign_alg"):
            gateway_keys.seal(
                _claims(), sign_alg=sign_alg, recipient=recipient, alg="RSA-OAEP-256", enc="A256GCM"
            )


def test_seal_refuses_alg_that_does_not_fit_key(
    gateway_keys: GatewayKeys, partner_keys: dict[str, tuple[PrivateJwk, Path]]
) -> None:
    recipient: PartnerKey = load_partner_key_file(partner_keys["X25519"][1])
    with pytest.raises(GatewayError) as caught:
        gateway_keys.seal(
            _claims(), sign_alg="ES256", recipient=recipient, alg="RSA-OAEP-256", enc="A256GCM"
        )
    assert caught.value.code == "internal_error"
    with pytest.raises(GatewayError):
        gateway_keys.seal(
            _claims(), sign_alg="ES256", recipient=recipient, alg="RSA1_5", enc="A256GCM"
        )


def test_open_response_takes_bytes_and_refuses_non_ascii(gateway_keys: GatewayKeys) -> None:
    token = _to_gateway(gateway_keys, "ECDH-ES+A256KW", "A256GCM")
    assert gateway_keys.open_response(token.encode("ascii")) == b'{"result":"match"}'
    with pytest.raises(GatewayError, match="partner_unavailable"):
        gateway_keys.open_response("é".encode() + token.encode("ascii"))


# -- Retry-After: a key problem the gateway clears by itself says when ------------------


async def test_expired_jwks_keys_say_when_the_gateway_looks_again(
    partners: dict[str, Partner],
    jwks_partner: tuple[JwksPartner, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = jwks_partner
    fake.keys = [_new_key("X25519").as_dict(use="enc", exp=int(NOW.timestamp()) - 60)]
    cache = PartnerKeyCache(session, clock=FakeClock(NOW))
    with pytest.raises(GatewayError) as caught:
        await cache.key_for(_with_url(partners["adreach"], url))
    assert caught.value.code == "partner_key_expired"
    assert caught.value.retry_after_s == KEY_RECHECK_S


async def test_an_expired_key_file_waits_for_an_operator(
    partners: dict[str, Partner], tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    expired = tmp_path / "expired.jwk.json"
    key = _new_key("X25519").as_dict(use="enc", exp=int(NOW.timestamp()) - 60)
    expired.write_text(json.dumps(key))
    encryption = PartnerEncryption("ECDH-ES+A256KW", "A256GCM", "ES256", expired, None)
    partner = dataclasses.replace(partners["adreach"], encryption=encryption)
    with pytest.raises(GatewayError) as caught:
        await PartnerKeyCache(session, clock=FakeClock(NOW)).key_for(partner)
    assert caught.value.code == "partner_key_expired"
    assert caught.value.retry_after_s is None


async def test_a_failed_jwks_fetch_says_when_to_retry(
    partners: dict[str, Partner],
    jwks_partner: tuple[JwksPartner, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = jwks_partner
    fake.status = 503
    with pytest.raises(GatewayError) as caught:
        await PartnerKeyCache(session).key_for(_with_url(partners["adreach"], url))
    assert caught.value.code == "partner_unavailable"
    assert caught.value.retry_after_s == PARTNER_RETRY_AFTER_S
