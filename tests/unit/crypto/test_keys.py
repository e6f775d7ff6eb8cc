"""Key generation, rotation and the published JWKS, on temp copies of the shipped partners."""

from __future__ import annotations

import json
import shutil
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.crypto.generate import generate_missing as generate
from gateway.crypto.key_files import read_secret_key
from gateway.crypto.keyring import (
    KeyPaths,
    load_key_ring,
    load_signing_keys,
    published_jwks,
    rotate_signing_keys,
)
from gateway.errors import ConfigError
from gateway.partners.loader import load_partners
from gateway.partners.model import SIGN_ALGS

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
LOOPBACK_PARTNERS = sorted(p.stem for p in (REPO / "partners").glob("*.toml"))

PRIVATE_KEY_JWT_PARTNER = """
name = "Sandbox Token Partner"
category = "identity_verification"
jurisdiction = "LA"
agreement = "DPA-TEST-1"
base_url = "http://localhost:9190"
retention_days = 30

[auth]
type = "oauth2_client_credentials"
token_url = "http://localhost:9190/oauth/token"
client_id = "kokkok-car"
token_endpoint_auth_method = "private_key_jwt"
private_key_file = "keys/sandbox/{id}.client-key.{ext}"

[encryption]
public_key = "keys/partners/{id}.jwk.json"
alg = "ECDH-ES"
enc = "A256GCM"

[operations.verify]
method = "POST"
path = "/v1/verify"
purposes = ["service_provision"]
legal_bases = ["contract"]
fields = {{ name = "keep" }}
"""

SECRET_FILE_PARTNER = """
name = "Sandbox Secret Partner"
category = "credit_bureau"
jurisdiction = "LA"
agreement = "DPA-TEST-2"
base_url = "http://127.0.0.1:9191"
retention_days = 30

[auth]
type = "oauth2_client_credentials"
token_url = "http://127.0.0.1:9191/oauth/token"
client_id = "kokkok-car"
client_secret_file = "keys/sandbox/secret-partner.client-secret"

[encryption]
public_key = "keys/partners/secret-partner.jwk.json"
alg = "RSA-OAEP-256"
enc = "A256GCM"

[operations.check]
method = "POST"
path = "/v1/check"
purposes = ["service_provision"]
legal_bases = ["contract"]
fields = { name = "keep" }
"""

REMOTE_PARTNER = """
name = "Real Remote Partner"
category = "credit_bureau"
jurisdiction = "LA"
agreement = "DPA-TEST-3"
base_url = "https://api.remote.example"
retention_days = 30

[auth]
type = "api_key"
key_file = "keys/remote/remote.api-key"

[encryption]
public_key = "keys/partners/remote.jwk.json"
alg = "RSA-OAEP-256"
enc = "A256GCM"

[operations.check]
method = "POST"
path = "/v1/check"
purposes = ["service_provision"]
legal_bases = ["contract"]
fields = { name = "keep" }
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project copy with the shipped partners and no keys yet."""
    shutil.copytree(REPO / "partners", tmp_path / "partners")
    return tmp_path


def _generate(root: Path, now: datetime = NOW) -> list[Path]:
    return generate(root / "keys", root / "partners", now=now)


def _snapshot(directory: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _is_private_file(path: Path) -> bool:
    name = path.name
    return (
        ".private." in name
        or name.endswith((".key", ".key.pem", ".api-key", ".client-secret"))
        or ".client-key." in name
    )


# -- generate_missing ---------------------------------------------------------


def test_generate_creates_everything_and_validating_loader_accepts_it(root: Path) -> None:
    created = _generate(root)
    paths = KeyPaths(root / "keys")
    for expected in (
        paths.gateway_signing,
        paths.gateway_encryption,
        paths.log_signing,
        paths.log_subject,
        paths.pseudonym_master,
        paths.dev_issuer,
        paths.callers_jwks,
        paths.sandbox_ca_cert,
        paths.sandbox_ca_key,
        paths.sandbox_server_cert("veriid"),
        paths.sandbox_server_key("veriid"),
        root / "keys/sandbox/veriid-client.crt.pem",
        root / "keys/sandbox/veriid-client.key.pem",
        root / "keys/sandbox/mekong-collections.api-key",
    ):
        assert expected in created, expected
    for partner_id in LOOPBACK_PARTNERS:
        assert paths.sandbox_partner(partner_id) in created
        assert root / f"keys/partners/{partner_id}.jwk.json" in created
    # lao-credit-bureau acknowledges with an Ed25519 signing key (acknowledgement = "jws").
    ack_private = paths.sandbox_acknowledgement("lao-credit-bureau")
    assert ack_private in created
    assert root / "keys/partners/lao-credit-bureau.ack.jwk.json" in created
    assert json.loads(ack_private.read_text())["crv"] == "Ed25519"
    # The validating loader refuses a missing key file; after generation all load.
    assert sorted(load_partners(root / "partners", root)) == LOOPBACK_PARTNERS


def test_generate_writes_private_files_0600(root: Path) -> None:
    created = _generate(root)
    private = [p for p in created if _is_private_file(p)]
    assert len(private) >= 15
    for path in private:
        assert _mode(path) == 0o600, path
    for path in set(created) - set(private):
        assert not _mode(path) & 0o022, path  # public files: not writable by others


def test_generate_is_idempotent_and_never_overwrites(root: Path) -> None:
    _generate(root)
    secret = KeyPaths(root / "keys").pseudonym_master
    secret.write_text("operator-chosen\n", encoding="ascii")
    before = _snapshot(root / "keys")

    assert _generate(root, NOW + timedelta(days=400)) == []
    assert _snapshot(root / "keys") == before


def test_generate_recreates_only_what_is_missing(root: Path) -> None:
    _generate(root)
    paths = KeyPaths(root / "keys")
    before = _snapshot(root / "keys")
    paths.log_subject.unlink()
    (root / "keys/partners/adreach.jwk.json").unlink()  # private half still there

    created = _generate(root)

    assert sorted(created) == sorted([paths.log_subject, root / "keys/partners/adreach.jwk.json"])
    assert paths.log_subject.read_bytes() != before[paths.log_subject]
    assert paths.log_subject.stat().st_mode & 0o077 == 0
    # The public key is rebuilt from the private half, so it is the same key.
    assert json.loads((root / "keys/partners/adreach.jwk.json").read_text()) == json.loads(
        before[root / "keys/partners/adreach.jwk.json"]
    )
    assert len(read_secret_key(paths.pseudonym_master)) == 32


def test_generate_leaves_public_key_without_private_half_alone(root: Path) -> None:
    _generate(root)
    paths = KeyPaths(root / "keys")
    public = root / "keys/partners/veriid.jwk.json"
    content = public.read_bytes()
    paths.sandbox_partner("veriid").unlink()

    assert _generate(root) == []
    assert public.read_bytes() == content


def test_sandbox_material_only_for_loopback_partners(root: Path) -> None:
    (root / "partners/remote.toml").write_text(REMOTE_PARTNER, encoding="utf-8")
    created = _generate(root)
    assert not [p for p in created if "remote" in p.name]
    assert not (root / "keys/remote").exists()
    assert not KeyPaths(root / "keys").sandbox_partner("remote").exists()


def test_generate_secret_file_for_client_secret(root: Path) -> None:
    (root / "partners/secret-partner.toml").write_text(SECRET_FILE_PARTNER, encoding="utf-8")
    created = _generate(root)
    secret = root / "keys/sandbox/secret-partner.client-secret"
    assert secret in created
    assert _mode(secret) == 0o600
    assert len(secret.read_text().strip()) >= 40
    assert load_partners(root / "partners", root)["secret-partner"].auth.client_secret is not None


@pytest.mark.parametrize("ext", ["jwk.json", "pem"])
def test_generate_private_key_jwt_pair(root: Path, ext: str) -> None:
    partner_id = f"token-partner-{ext.split('.')[0]}"
    (root / f"partners/{partner_id}.toml").write_text(
        PRIVATE_KEY_JWT_PARTNER.format(id=partner_id, ext=ext), encoding="utf-8"
    )
    created = _generate(root)
    private_path = root / f"keys/sandbox/{partner_id}.client-key.{ext}"
    public_path = KeyPaths(root / "keys").sandbox_client_jwk(partner_id)
    assert private_path in created and public_path in created
    assert _mode(private_path) == 0o600

    private = (
        ECKey.import_key(private_path.read_bytes())
        if ext == "pem"
        else ECKey.import_key(json.loads(private_path.read_text()))
    )
    public = json.loads(public_path.read_text())
    assert not PRIVATE_MEMBERS & public.keys()
    assert public["kid"] == private.thumbprint()
    assert (public["alg"], public["use"]) == ("ES256", "sig")
    assert ECKey.import_key(public).as_dict()["x"] == private.as_dict()["x"]

    public_path.unlink()  # rebuilt from the private key, not a new pair
    assert _generate(root) == [public_path]
    assert json.loads(public_path.read_text()) == public


def test_dev_issuer_published_in_callers_jwks(root: Path) -> None:
    _generate(root)
    paths = KeyPaths(root / "keys")
    issuer = json.loads(paths.dev_issuer.read_text())
    published = json.loads(paths.callers_jwks.read_text())["keys"]
    assert [k["kid"] for k in published] == [issuer["kid"]]
    assert not PRIVATE_MEMBERS & published[0].keys()


# -- mTLS sandbox certificates ---------------------------------------------------


def test_mtls_certificates_chain_to_sandbox_ca(root: Path) -> None:
    _generate(root)
    paths = KeyPaths(root / "keys")
    ca = x509.load_pem_x509_certificate(paths.sandbox_ca_cert.read_bytes())
    client = x509.load_pem_x509_certificate(
        (root / "keys/sandbox/veriid-client.crt.pem").read_bytes()
    )
    server = x509.load_pem_x509_certificate(paths.sandbox_server_cert("veriid").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for cert, usage in (
        (client, ExtendedKeyUsageOID.CLIENT_AUTH),
        (server, ExtendedKeyUsageOID.SERVER_AUTH),
    ):
        cert.verify_directly_issued_by(ca)
        assert usage in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


@pytest.fixture
async def mtls_server(tmp_path: Path) -> AsyncIterator[tuple[Path, str]]:
    """A loopback TLS server with the generated server certificate, requiring a client cert."""
    shutil.copytree(REPO / "partners", tmp_path / "partners")
    generate(tmp_path / "keys", tmp_path / "partners")  # certificates valid from now
    paths = KeyPaths(tmp_path / "keys")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(
        paths.sandbox_server_cert("veriid"), paths.sandbox_server_key("veriid")
    )
    server_ctx.load_verify_locations(paths.sandbox_ca_cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED

    async def whoami(request: web.Request) -> web.Response:
        transport = request.transport
        peer: Any = transport.get_extra_info("peercert") if transport else None
        subject = dict(item[0] for item in peer["subject"])
        return web.json_response({"cn": subject["commonName"]})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server(ssl=server_ctx)
    try:
        yield tmp_path, str(server.make_url("/whoami"))
    finally:
        await server.close()


async def test_mtls_handshake_with_generated_certificates(mtls_server: tuple[Path, str]) -> None:
    root, url = mtls_server
    paths = KeyPaths(root / "keys")
    client_ctx = ssl.create_default_context(cafile=paths.sandbox_ca_cert)
    client_ctx.load_cert_chain(
        root / "keys/sandbox/veriid-client.crt.pem", root / "keys/sandbox/veriid-client.key.pem"
    )
    async with aiohttp.ClientSession() as session, session.get(url, ssl=client_ctx) as response:
        assert response.status == 200
        assert await response.json() == {"cn": "disclosure-gateway"}

    without_client_cert = ssl.create_default_context(cafile=paths.sandbox_ca_cert)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(url, ssl=without_client_cert) as response:
                await response.read()


# -- signing keys, rotation, published JWKS -------------------------------------


def test_signing_keys_one_active_per_alg(root: Path) -> None:
    _generate(root)
    path = KeyPaths(root / "keys").gateway_signing
    keys = load_signing_keys(path)
    assert sorted(k.alg for k in keys) == sorted(SIGN_ALGS)
    assert all(k.active and k.issued_at == NOW for k in keys)
    kinds = {"ES256": (ECKey, "P-256"), "Ed25519": (OKPKey, "Ed25519"), "PS256": (RSAKey, None)}
    for key in keys:
        cls, curve = kinds[key.alg]
        members = {k: v for k, v in key.jwk.items() if k != "iat"}
        parsed = cls.import_key(members)  # type: ignore[attr-defined]
        assert key.kid == parsed.thumbprint()  # RFC 7638
        assert key.jwk["use"] == "sig"
        if curve:
            assert key.jwk["crv"] == curve
        else:
            assert parsed.public_key.key_size == 2048


def test_published_jwks_public_members_only(root: Path) -> None:
    _generate(root)
    jwks = published_jwks(root / "keys", NOW)
    assert [k["use"] for k in jwks["keys"]] == ["sig", "sig", "sig", "enc"]
    assert [k["alg"] for k in jwks["keys"]] == [*SIGN_ALGS, "ECDH-ES+A256KW"]
    for key in jwks["keys"]:
        assert not PRIVATE_MEMBERS & key.keys()
        assert set(key) <= {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}


def test_rotation_retires_publishes_through_grace_then_prunes(root: Path) -> None:
    _generate(root)
    keys_dir = root / "keys"
    path = KeyPaths(keys_dir).gateway_signing
    first = {k.kid for k in load_signing_keys(path)}
    at = NOW + timedelta(days=90)
    grace = timedelta(days=7)

    fresh = rotate_signing_keys(keys_dir, at, grace=grace)

    assert _mode(path) == 0o600
    assert sorted(k.alg for k in fresh) == sorted(SIGN_ALGS)
    stored = load_signing_keys(path)
    retired = [k for k in stored if not k.active]
    assert {k.kid for k in retired} == first
    assert all(k.retired_at == at and k.publish_until == at + grace for k in retired)
    ring = load_key_ring(keys_dir)
    assert {ring.active(alg).kid for alg in SIGN_ALGS} == {k.kid for k in fresh}  # type: ignore[union-attr]

    def kids(moment: datetime) -> set[str]:
        return {k["kid"] for k in published_jwks(keys_dir, moment)["keys"] if k["use"] == "sig"}

    assert kids(at) == first | {k.kid for k in fresh}
    assert kids(at + grace - timedelta(seconds=1)) == first | {k.kid for k in fresh}
    assert kids(at + grace) == {k.kid for k in fresh}

    # A later rotation drops keys whose grace ended from the file itself.
    later = at + grace + timedelta(days=1)
    newest = rotate_signing_keys(keys_dir, later, grace=grace)
    remaining = {k.kid for k in load_signing_keys(path)}
    assert remaining == {k.kid for k in fresh} | {k.kid for k in newest}
    assert not first & remaining


def test_generate_after_rotation_changes_nothing(root: Path) -> None:
    _generate(root)
    rotate_signing_keys(root / "keys", NOW + timedelta(days=1))
    before = _snapshot(root / "keys")
    assert _generate(root, NOW + timedelta(days=2)) == []
    assert _snapshot(root / "keys") == before


def test_generate_adds_missing_alg_to_existing_signing_file(root: Path) -> None:
    _generate(root)
    path = KeyPaths(root / "keys").gateway_signing
    doc = json.loads(path.read_text())
    doc["keys"] = [k for k in doc["keys"] if k["alg"] != "PS256"]
    kept = {k["kid"] for k in doc["keys"]}
    path.write_text(json.dumps(doc))

    assert _generate(root) == [path]
    keys = load_signing_keys(path)
    assert kept < {k.kid for k in keys}
    assert sorted(k.alg for k in keys) == sorted(SIGN_ALGS)
    assert _mode(path) == 0o600


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"keys": [{"kty": "oct", "k": "AA", "alg": "HS256", "kid": "x"}]}, "alg 'HS256'"),
        ({"keys": [{"alg": "ES256", "use": "sig", "d": "x", "iat": 1}]}, "missing 'kid'"),
        ({"keys": [{"alg": "ES256", "kid": "x", "use": "sig", "iat": 1}]}, "private key"),
        ({"keys": [{"alg": "ES256", "kid": "x", "use": "sig", "d": "x"}]}, "'iat'"),
        ([], "JWKS object"),
    ],
)
def test_signing_file_refused_when_malformed(tmp_path: Path, doc: object, message: str) -> None:
    path = tmp_path / "signing.jwks.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load_signing_keys(path)
