"""gateway.callers.tokens: caller bearer tokens against a JWKS file or a loopback JWKS URL.

Keys are real (EC P-256 from `generate_missing`, plus Ed25519 and RSA made here);
the identity provider is a real aiohttp app on 127.0.0.1; time is a hand-driven clock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from gateway.callers.tokens import CallerAuthenticator, parse_jwks, require_role
from gateway.config.model import AuthConfig, Caller
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.generate import generate_missing
from gateway.crypto.keyring import KeyPaths
from gateway.errors import ConfigError, GatewayError

ISSUER = "https://idp.test.example"
AUDIENCE = "disclosure-gateway"
T0 = 1_750_000_000.0  # a fixed "now"; every test moves it by hand
PAYMENTS = Caller(
    "payments-service",
    frozenset({"discloser"}),
    frozenset({"bcel-payments"}),
    frozenset({"service_provision"}),
)
REVIEWER = Caller("reviewer-alice", frozenset({"reviewer"}), frozenset(), frozenset())
CALLERS = {c.id: c for c in (PAYMENTS, REVIEWER)}


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims_for(
    sub: str | None = "payments-service", now: float = T0, **changes: Any
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "client_id": sub,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 600,
        "jti": "test-jti",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(
    key: Key,
    claims: dict[str, Any] | None = None,
    *,
    alg: str = "ES256",
    kid: str | None = None,
    typ: str = "at+jwt",
    payload: bytes | None = None,
) -> str:
    header = {"typ": typ, "alg": alg, "kid": kid if kid is not None else key.kid}
    body = payload if payload is not None else json.dumps(claims or claims_for()).encode()
    with warnings.catch_warnings():
        # Signing with "EdDSA" makes joserfc warn (RFC 9864 prefers "Ed25519"); verifying it
        # is what these tests are about.
        warnings.simplefilter("ignore", SecurityWarning)
        return jws.serialize_compact(header, body, key, algorithms=[alg])


def raw_sign(header: dict[str, Any], claims: dict[str, Any], key: Key) -> str:
    """Sign any header the way an attacker's own JOSE code would, without joserfc's checks."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    model = JWSRegistry.algorithms[header["alg"]]
    return f"{head}.{body}.{b64(model.sign(f'{head}.{body}'.encode(), key))}"


def raw_header(header: bytes, key: Key) -> str:
    """A token whose header bytes are exactly `header`, validly signed over them."""
    head = b64(header)
    body = b64(json.dumps(claims_for()).encode())
    signature = JWSRegistry.algorithms["ES256"].sign(f"{head}.{body}".encode(), key)
    return f"{head}.{body}.{b64(signature)}"


def hand_made(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def write_jwks(path: Path, *keys: Key) -> None:
    path.write_text(json.dumps({"keys": [k.as_dict(private=False) for k in keys]}))


def bearer(token: str) -> str:
    return f"Bearer {token}"


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    generate_missing(tmp_path / "keys", None)
    return tmp_path / "keys"


@pytest.fixture
def issuer_key(keys_dir: Path) -> ECKey:
    return ECKey.import_key(json.loads(KeyPaths(keys_dir).dev_issuer.read_text()))


@pytest.fixture
def auth(keys_dir: Path) -> AuthConfig:
    return AuthConfig(ISSUER, AUDIENCE, KeyPaths(keys_dir).callers_jwks, None, ("ES256", "EdDSA"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authenticator(auth: AuthConfig, clock: Clock) -> CallerAuthenticator:
    return CallerAuthenticator(auth, CALLERS, None, clock=clock)


async def refused(authenticator: CallerAuthenticator, header: str | None) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await authenticator.authenticate(header)
    return info.value


def new_ec(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", {"kid": kid, "use": "sig", "alg": "ES256"}, private=True)


# --- the matrix ------------------------------------------------------------


async def test_valid_token_gives_the_configured_caller(
    authenticator: CallerAuthenticator, issuer_key: ECKey
) -> None:
    assert await authenticator.authenticate(bearer(sign(issuer_key))) is PAYMENTS


async def test_scheme_is_case_insensitive_and_aud_may_be_a_list(
    authenticator: CallerAuthenticator, issuer_key: ECKey
) -> None:
    token = sign(issuer_key, claims_for(aud=["other-service", AUDIENCE]))
    assert await authenticator.authenticate(f"bearer  {token} ") is PAYMENTS


async def test_leeway_accepts_a_token_just_expired_and_just_not_yet_valid(
    authenticator: CallerAuthenticator, issuer_key: ECKey
) -> None:
    claims = claims_for(exp=int(T0) - 10, nbf=int(T0) + 10, iat=int(T0) + 10)
    assert await authenticator.authenticate(bearer(sign(issuer_key, claims))) is PAYMENTS


def _cases() -> dict[str, tuple[Callable[[ECKey], str | None], str]]:
    """name -> (make the Authorization header from the issuer key, expected detail fragment)."""
    return {
        "no header": (lambda k: None, "missing Authorization header"),
        "empty header": (lambda k: "", "missing Authorization header"),
        "basic scheme": (lambda k: "Basic dXNlcjpwYXNz", "not 'Bearer <JWT>'"),
        "bare token, no scheme": (lambda k: sign(k), "not 'Bearer <JWT>'"),
        "bearer without token": (lambda k: "Bearer", "not 'Bearer <JWT>'"),
        "garbage": (lambda k: "Bearer not-a-jwt", "not a compact JWS"),
        "three garbage parts": (lambda k: "Bearer a.b.c", "not a compact JWS"),
        "non-ascii": (lambda k: "Bearer ey\u00e9.a.b", "not a compact JWS"),
        "too long": (lambda k: "Bearer " + "a" * 9000, "at most 8192"),
        "expired": (
            lambda k: bearer(sign(k, claims_for(exp=int(T0) - 31))),
            "expired at 2025-06-15T15:06:09Z (now 2025-06-15T15:06:40Z, leeway 30 s)",
        ),
        "no exp": (lambda k: bearer(sign(k, claims_for(exp=None))), "no numeric 'exp'"),
        "exp not a number": (lambda k: bearer(sign(k, claims_for(exp="never"))), "'exp'"),
        "exp infinite": (
            lambda k: bearer(sign(k, payload=json.dumps(claims_for(exp=float("inf"))).encode())),
            "no numeric 'exp'",
        ),
        "nbf in the future": (
            lambda k: bearer(sign(k, claims_for(nbf=int(T0) + 120))),
            "token nbf 2025-06-15T15:08:40Z is in the future",
        ),
        "iat in the future": (
            lambda k: bearer(sign(k, claims_for(iat=int(T0) + 120))),
            "token iat 2025-06-15T15:08:40Z is in the future",
        ),
        "wrong aud": (
            lambda k: bearer(sign(k, claims_for(aud="billing"))),
            f"token aud 'billing' does not include '{AUDIENCE}'",
        ),
        "no aud": (
            lambda k: bearer(sign(k, claims_for(aud=None))),
            f"token aud None does not include '{AUDIENCE}'",
        ),
        "wrong iss": (
            lambda k: bearer(sign(k, claims_for(iss="https://evil.example"))),
            f"token iss 'https://evil.example' is not the expected issuer '{ISSUER}'",
        ),
        "exp absurdly large": (
            lambda k: bearer(sign(k, claims_for(exp=10**400))),
            "no numeric 'exp'",
        ),
        "nbf far beyond datetime": (
            lambda k: bearer(sign(k, claims_for(nbf=1e300))),
            "token nbf 1e+300 is not a NumericDate",
        ),
        "header is a JSON list": (
            lambda k: bearer(raw_header(b'["alg", "b64"]', k)),
            "not a compact JWS",
        ),
        "header is a JSON string": (lambda k: bearer(raw_header(b'"alg"', k)), "not a compact JWS"),
        "alg is a list": (
            lambda k: bearer(raw_header(b'{"alg": ["ES256"], "typ": "at+jwt"}', k)),
            "token alg ['ES256'] is not accepted",
        ),
        "deeply nested payload": (
            lambda k: bearer(sign(k, payload=b"[" * 2000 + b"]" * 2000)),
            "not a JSON object",
        ),
        "missing sub": (lambda k: bearer(sign(k, claims_for(sub=None))), "no 'sub'"),
        "payload not an object": (lambda k: bearer(sign(k, payload=b"[1]")), "not a JSON object"),
        "payload not JSON": (lambda k: bearer(sign(k, payload=b"hello")), "not a JSON object"),
        "id token typ": (lambda k: bearer(sign(k, typ="JWT")), "token typ 'JWT' is not an access"),
        "alg none": (
            lambda k: bearer(
                hand_made({"typ": "at+jwt", "alg": "none", "kid": k.kid}, claims_for(), b"")
            ),
            "token alg 'none' is not accepted; expected one of ES256, EdDSA",
        ),
        "no kid": (
            lambda k: bearer(sign(k, kid="")),
            "no 'kid'",
        ),
        "unknown kid": (
            lambda k: bearer(sign(k, kid="someone-elses-key")),
            "token key id 'someone-elses-key' is not in the caller JWKS",
        ),
        "crit extension": (
            lambda k: bearer(
                raw_sign(
                    {"typ": "at+jwt", "alg": "ES256", "kid": k.kid, "crit": ["exp"], "exp": 1},
                    claims_for(),
                    k,
                )
            ),
            "'crit'",
        ),
        "signature tampered": (
            lambda k: bearer(_tamper_signature(sign(k))),
            "signature does not verify",
        ),
        "payload swapped": (
            lambda k: bearer(_swap_payload(sign(k), claims_for(sub="reviewer-alice"))),
            "signature does not verify",
        ),
        "signature wrong length": (
            lambda k: bearer(_truncate_signature(sign(k))),
            "signature does not verify",
        ),
        "signature not base64url": (lambda k: bearer(sign(k)[:-1] + "+"), "signature is malformed"),
        "signed by a P-256 key not in the JWKS under a known kid": (
            lambda k: bearer(sign(new_ec(str(k.kid)))),
            "signature does not verify",
        ),
    }


def _tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    return f"{head}.{payload}.{b64(bytes(raw))}"


def _truncate_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{b64(base64.urlsafe_b64decode(signature + '==')[:-6])}"


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
async def test_refused_as_unauthenticated(
    name: str, authenticator: CallerAuthenticator, issuer_key: ECKey
) -> None:
    make, expected = CASES[name]
    header = make(issuer_key)
    error = await refused(authenticator, header)
    assert error.code == "unauthenticated", error
    assert error.status == 401
    assert expected in error.detail
    if header:
        # No piece of the presented credential ever shows up in the detail.
        for part in header.removeprefix("Bearer ").split("."):
            if len(part) > 8:
                assert part not in error.detail


async def test_unknown_subject_is_forbidden_without_echoing_it(
    authenticator: CallerAuthenticator, issuer_key: ECKey
) -> None:
    error = await refused(authenticator, bearer(sign(issuer_key, claims_for(sub="u-12345678"))))
    assert error.code == "forbidden"
    assert "not a configured caller" in error.detail
    assert "u-12345678" not in error.detail


async def test_hs256_signed_with_the_public_key_bytes_is_refused(
    auth: AuthConfig, clock: Clock, issuer_key: ECKey
) -> None:
    """The algorithm-confusion attack: HMAC keyed with what the JWKS publishes."""
    public_pem = issuer_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_jwk = json.dumps(issuer_key.as_dict(private=False)).encode()
    jwks_file = auth.jwks
    assert jwks_file is not None
    forgeries = []
    for secret in (public_pem, public_jwk, jwks_file.read_bytes()):
        header = {"typ": "at+jwt", "alg": "HS256", "kid": issuer_key.kid}
        head = b64(json.dumps(header).encode())
        body = b64(json.dumps(claims_for()).encode())
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        forgeries.append(f"{head}.{body}.{b64(mac)}")
    for algorithms in (("ES256", "EdDSA"), ("ES256", "RS256", "PS256")):
        authenticator = CallerAuthenticator(
            AuthConfig(ISSUER, AUDIENCE, jwks_file, None, algorithms), CALLERS, None, clock=clock
        )
        for forged in forgeries:
            error = await refused(authenticator, bearer(forged))
            assert error.code == "unauthenticated"
            assert "token alg 'HS256' is not accepted" in error.detail


@pytest.mark.parametrize("algorithms", [("ES256", "HS256"), ("none",), ()])
def test_unsafe_algorithm_lists_are_refused_at_construction(
    auth: AuthConfig, algorithms: tuple[str, ...]
) -> None:
    bad = AuthConfig(ISSUER, AUDIENCE, auth.jwks, None, algorithms)
    with pytest.raises(ValueError, match="non-empty subset"):
        CallerAuthenticator(bad, CALLERS, None)


async def test_rs256_by_a_key_not_in_the_jwks_is_refused(
    auth: AuthConfig, clock: Clock, issuer_key: ECKey
) -> None:
    rsa = RSAKey.generate_key(2048, {"kid": "rsa-outsider"}, private=True)
    token = sign(rsa, alg="RS256")
    default = CallerAuthenticator(auth, CALLERS, None, clock=clock)
    assert "token alg 'RS256' is not accepted" in (await refused(default, bearer(token))).detail

    rsa_allowed = CallerAuthenticator(
        AuthConfig(ISSUER, AUDIENCE, auth.jwks, None, ("ES256", "RS256")),
        CALLERS,
        None,
        clock=clock,
    )
    error = await refused(rsa_allowed, bearer(token))
    assert "token key id 'rsa-outsider' is not in the caller JWKS" in error.detail
    # Naming the trusted EC key's kid does not help: an RSA signature cannot fit an EC key.
    error = await refused(rsa_allowed, bearer(sign(rsa, alg="RS256", kid=str(issuer_key.kid))))
    assert error.code == "unauthenticated"
    assert "token alg RS256 does not fit key" in error.detail


async def test_ed25519_callers_with_eddsa_and_ed25519_names(tmp_path: Path, clock: Clock) -> None:
    ed = OKPKey.generate_key("Ed25519", {"kid": "ed-1", "use": "sig"}, private=True)
    write_jwks(tmp_path / "jwks.json", ed)
    for alg in ("EdDSA", "Ed25519"):
        authenticator = CallerAuthenticator(
            AuthConfig(ISSUER, AUDIENCE, tmp_path / "jwks.json", None, (alg,)),
            CALLERS,
            None,
            clock=clock,
        )
        # No SecurityWarning escapes on verification (filterwarnings=error would fail here).
        assert await authenticator.authenticate(bearer(sign(ed, alg=alg))) is PAYMENTS


async def test_jwk_alg_pins_the_token_alg(tmp_path: Path, clock: Clock) -> None:
    rsa = RSAKey.generate_key(2048, {"kid": "rsa-1", "alg": "PS256", "use": "sig"}, private=True)
    write_jwks(tmp_path / "jwks.json", rsa)
    authenticator = CallerAuthenticator(
        AuthConfig(ISSUER, AUDIENCE, tmp_path / "jwks.json", None, ("RS256", "PS256")),
        CALLERS,
        None,
        clock=clock,
    )
    assert await authenticator.authenticate(bearer(sign(rsa, alg="PS256"))) is PAYMENTS
    forged = raw_sign({"typ": "at+jwt", "alg": "RS256", "kid": "rsa-1"}, claims_for(), rsa)
    error = await refused(authenticator, bearer(forged))
    assert "token alg RS256 does not fit key 'rsa-1'" in error.detail


# --- roles -----------------------------------------------------------------


def test_require_role() -> None:
    require_role(PAYMENTS, "discloser")
    with pytest.raises(GatewayError) as info:
        require_role(PAYMENTS, "reviewer")
    assert info.value.code == "forbidden"
    assert info.value.detail.startswith(
        "caller 'payments-service' lacks role 'reviewer' (has: discloser)"
    )


# --- the JWKS file ---------------------------------------------------------


def _with_jwks(auth: AuthConfig, path: Path) -> AuthConfig:
    return AuthConfig(ISSUER, AUDIENCE, path, None, auth.algorithms)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"kid": "x"}', "not a JWKS"),
        ('{"keys": []}', "no signature keys"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', r"private key material \(k\)"),
        ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}', "not a usable"),
    ],
)
def test_broken_jwks_file_is_a_config_error(
    auth: AuthConfig, tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        CallerAuthenticator(_with_jwks(auth, tmp_path / "bad.json"), CALLERS, None)
    assert info.value.path.endswith("bad.json")


def test_private_jwk_in_the_jwks_file_is_refused(
    auth: AuthConfig, keys_dir: Path, tmp_path: Path
) -> None:
    private = json.loads(KeyPaths(keys_dir).dev_issuer.read_text())
    (tmp_path / "leak.json").write_text(json.dumps({"keys": [private]}))
    with pytest.raises(ConfigError, match=r"private key material \(d\)"):
        CallerAuthenticator(_with_jwks(auth, tmp_path / "leak.json"), CALLERS, None)


def test_parse_jwks_skips_encryption_keys_and_flags_weak_or_duplicate_ones() -> None:
    sig = new_ec("a")
    enc = ECKey.generate_key("P-256", {"kid": "e", "use": "enc"}, private=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # the point: a key joserfc warns about
        weak = RSAKey.generate_key(1024, {"kid": "weak"}, private=False)
    twin = new_ec("a")
    keys, problems = parse_jwks(
        {"keys": [k.as_dict(private=False) for k in (sig, enc, weak, twin)]}
    )
    assert keys == {}
    assert any("keys[2] is refused as weak: Key size should be >= 2048" in p for p in problems)
    assert any("kid 'a' appears more than once" in p for p in problems)


async def test_reload_picks_up_rotation_and_forgets_cached_tokens(
    authenticator: CallerAuthenticator, auth: AuthConfig, issuer_key: ECKey, clock: Clock
) -> None:
    token = sign(issuer_key)
    assert await authenticator.authenticate(bearer(token)) is PAYMENTS
    assert authenticator.cached_verifications == 1
    successor = new_ec("successor")
    assert auth.jwks is not None
    write_jwks(auth.jwks, successor)
    # Until reload() the old key still counts: the file is parsed once, not per request.
    assert await authenticator.authenticate(bearer(token)) is PAYMENTS
    authenticator.reload()
    assert authenticator.key_ids == {"successor"}
    assert authenticator.cached_verifications == 0
    error = await refused(authenticator, bearer(token))
    assert "is not in the caller JWKS (known: successor)" in error.detail
    assert await authenticator.authenticate(bearer(sign(successor))) is PAYMENTS


def test_failed_reload_keeps_the_old_keys(
    authenticator: CallerAuthenticator, auth: AuthConfig
) -> None:
    before = authenticator.key_ids
    assert auth.jwks is not None
    auth.jwks.write_text("{")
    with pytest.raises(ConfigError):
        authenticator.reload()
    assert authenticator.key_ids == before


# --- the verification cache -------------------------------------------------


async def test_cached_token_is_refused_after_its_exp(
    authenticator: CallerAuthenticator, issuer_key: ECKey, clock: Clock
) -> None:
    token = sign(issuer_key, claims_for(exp=int(T0) + 60))
    assert await authenticator.authenticate(bearer(token)) is PAYMENTS
    assert authenticator.cached_verifications == 1
    clock.now = T0 + 60 + 29  # within leeway: still the same answer as an uncached check
    assert await authenticator.authenticate(bearer(token)) is PAYMENTS
    clock.now = T0 + 60 + 30
    error = await refused(authenticator, bearer(token))
    assert error.code == "unauthenticated"
    assert "expired" in error.detail
    assert authenticator.cached_verifications == 0
    clock.now = T0
    # Going back in time shows the entry was dropped, not merely skipped, and re-verifies.
    assert await authenticator.authenticate(bearer(token)) is PAYMENTS


async def test_cache_is_bounded_and_forgets_the_least_recently_used(
    auth: AuthConfig, issuer_key: ECKey, clock: Clock
) -> None:
    authenticator = CallerAuthenticator(auth, CALLERS, None, clock=clock, cache_size=2)
    tokens = [sign(issuer_key, claims_for(jti=str(i))) for i in range(3)]
    for token in tokens:
        await authenticator.authenticate(bearer(token))
    assert authenticator.cached_verifications == 2


async def test_refusals_are_not_cached(
    authenticator: CallerAuthenticator, issuer_key: ECKey
) -> None:
    await refused(authenticator, bearer(sign(issuer_key, claims_for(sub="nobody"))))
    await refused(authenticator, bearer(_tamper_signature(sign(issuer_key))))
    assert authenticator.cached_verifications == 0


# --- a JWKS URL served by a loopback identity provider ----------------------


class FakeIdp:
    """The identity provider's JWKS endpoint: what it serves and how often it is asked."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.status = 200
        self.body: bytes | None = None
        self.hits = 0
        self.delay_s = 0.0

    async def jwks(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="down for maintenance")
        if self.body is not None:
            return web.Response(body=self.body, content_type="application/json")
        return web.json_response({"keys": [k.as_dict(private=False) for k in self.keys]})


@pytest.fixture
async def idp() -> AsyncIterator[tuple[FakeIdp, str, TestServer]]:
    fake = FakeIdp()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", fake.jwks)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield fake, str(server.make_url("/.well-known/jwks.json")), server
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def url_authenticator(
    url: str,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    refetch_interval_s: float = 60.0,
    jwks_max_age_s: float = 600.0,
) -> CallerAuthenticator:
    auth = AuthConfig(ISSUER, AUDIENCE, None, url, ("ES256",))
    return CallerAuthenticator(
        auth,
        CALLERS,
        session,
        clock=clock,
        refetch_interval_s=refetch_interval_s,
        jwks_max_age_s=jwks_max_age_s,
    )


async def test_jwks_url_first_fetch_then_cached(
    idp: tuple[FakeIdp, str, TestServer], session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake, url, _ = idp
    key = new_ec("idp-1")
    fake.keys = [key]
    authenticator = url_authenticator(url, session, clock)
    assert fake.hits == 0  # nothing fetched before the first token needs it
    assert await authenticator.authenticate(bearer(sign(key))) is PAYMENTS
    assert await authenticator.authenticate(bearer(sign(key, claims_for(jti="2")))) is PAYMENTS
    assert fake.hits == 1


async def test_jwks_url_refetches_on_unknown_kid_after_rotation(
    idp: tuple[FakeIdp, str, TestServer], session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake, url, _ = idp
    old, new = new_ec("idp-old"), new_ec("idp-new")
    fake.keys = [old]
    authenticator = url_authenticator(url, session, clock, refetch_interval_s=60)
    await authenticator.authenticate(bearer(sign(old)))
    fake.keys = [new]  # the IdP rotates
    clock.now += 61
    assert await authenticator.authenticate(bearer(sign(new, claims_for(now=clock.now)))) is (
        PAYMENTS
    )
    assert fake.hits == 2
    assert authenticator.key_ids == {"idp-new"}


async def test_jwks_url_refetch_is_rate_limited(
    idp: tuple[FakeIdp, str, TestServer], session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake, url, _ = idp
    key = new_ec("idp-1")
    fake.keys = [key]
    authenticator = url_authenticator(url, session, clock, refetch_interval_s=60)
    await authenticator.authenticate(bearer(sign(key)))
    for i in range(25):  # a flood of random kids
        error = await refused(authenticator, bearer(sign(key, kid=f"random-{i}")))
        assert "is not in the caller JWKS (known: idp-1)" in error.detail
    assert fake.hits == 1
    clock.now += 60
    await refused(authenticator, bearer(sign(key, kid="random-again")))
    assert fake.hits == 2


async def test_concurrent_unknown_kids_share_one_fetch(
    idp: tuple[FakeIdp, str, TestServer], session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake, url, _ = idp
    key = new_ec("idp-1")
    fake.keys = [key]
    fake.delay_s = 0.05
    authenticator = url_authenticator(url, session, clock)
    tokens = [sign(key, claims_for(jti=str(i))) for i in range(10)]
    results = await asyncio.gather(*(authenticator.authenticate(bearer(t)) for t in tokens))
    assert results == [PAYMENTS] * 10
    assert fake.hits == 1


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (503, None, "HTTP 503, expected 200"),
        (200, b"<html>login</html>", "response is not JSON"),
        (200, b'{"keys": []}', "no signature keys"),
    ],
)
async def test_idp_failure_is_unauthenticated_not_a_crash(
    idp: tuple[FakeIdp, str, TestServer],
    session: aiohttp.ClientSession,
    clock: Clock,
    status: int,
    body: bytes | None,
    reason: str,
) -> None:
    fake, url, _ = idp
    fake.status, fake.body = status, body
    key = new_ec("idp-1")
    authenticator = url_authenticator(url, session, clock)
    error = await refused(authenticator, bearer(sign(key)))
    assert error.code == "unauthenticated"
    assert "caller keys are unavailable" in error.detail
    assert reason in error.detail
    with pytest.raises(GatewayError, match=reason):
        await authenticator.refresh()


async def test_idp_unreachable_is_unauthenticated(
    idp: tuple[FakeIdp, str, TestServer], session: aiohttp.ClientSession, clock: Clock
) -> None:
    _, url, server = idp
    await server.close()  # nothing listens on that port any more
    authenticator = url_authenticator(url, session, clock)
    error = await refused(authenticator, bearer(sign(new_ec("idp-1"))))
    assert error.code == "unauthenticated"
    assert "request failed" in error.detail


async def test_idp_down_later_keeps_known_keys_until_it_returns(
    idp: tuple[FakeIdp, str, TestServer], session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake, url, _ = idp
    old, new = new_ec("idp-old"), new_ec("idp-new")
    fake.keys = [old]
    authenticator = url_authenticator(
        url, session, clock, refetch_interval_s=60, jwks_max_age_s=600
    )
    await authenticator.refresh()
    fake.status = 503
    clock.now += 700  # keys are stale and the IdP is down: stale keys still verify
    assert await authenticator.authenticate(bearer(sign(old, claims_for(now=clock.now)))) is (
        PAYMENTS
    )
    assert fake.hits == 2
    fake.status, fake.keys = 200, [new]  # back, and the old key was withdrawn
    clock.now += 61
    error = await refused(authenticator, bearer(sign(old, claims_for(now=clock.now, jti="x"))))
    assert "is not in the caller JWKS (known: idp-new)" in error.detail
    assert fake.hits == 3


# --- development tokens -----------------------------------------------------


async def test_dev_token_is_an_rfc9068_access_token_the_authenticator_accepts(
    keys_dir: Path, auth: AuthConfig, issuer_key: ECKey, clock: Clock
) -> None:
    token = issue_dev_token(keys_dir, auth, "reviewer-alice", ttl_s=120, now=T0)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"typ": "at+jwt", "alg": "ES256", "kid": issuer_key.kid}
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims.keys() == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "client_id"}
    assert (claims["iss"], claims["aud"], claims["sub"], claims["client_id"]) == (
        ISSUER,
        AUDIENCE,
        "reviewer-alice",
        "reviewer-alice",
    )
    assert claims["exp"] - claims["iat"] == 120
    assert (
        claims["jti"]
        != json.loads(
            base64.urlsafe_b64decode(
                issue_dev_token(keys_dir, auth, "reviewer-alice", now=T0).split(".")[1] + "=="
            )
        )["jti"]
    )
    authenticator = CallerAuthenticator(auth, CALLERS, None, clock=clock)
    assert await authenticator.authenticate(bearer(token)) is REVIEWER
    clock.now = T0 + 120 + 30
    assert "expired" in (await refused(authenticator, bearer(token))).detail


def test_dev_token_without_a_dev_issuer_is_a_config_error(tmp_path: Path, auth: AuthConfig) -> None:
    with pytest.raises(ConfigError, match="gateway keys generate"):
        issue_dev_token(tmp_path / "empty", auth, "payments-service")


def test_dev_token_refused_when_the_gateway_would_not_trust_it(
    keys_dir: Path, auth: AuthConfig, tmp_path: Path
) -> None:
    with_url = AuthConfig(ISSUER, AUDIENCE, None, "https://idp.example/jwks", auth.algorithms)
    with pytest.raises(ConfigError, match="jwks_url"):
        issue_dev_token(keys_dir, with_url, "payments-service")
    write_jwks(tmp_path / "other.json", new_ec("someone-else"))
    with pytest.raises(ConfigError, match="not in this JWKS"):
        issue_dev_token(keys_dir, _with_jwks(auth, tmp_path / "other.json"), "payments-service")
