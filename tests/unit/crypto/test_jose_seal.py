"""The direct sealing path (gateway.crypto.jose) against joserfc and jwcrypto, with real keys.

What it writes must open and verify with both libraries, carry the headers
the joserfc path wrote, draw fresh randomness per call, and leave every
refusal to joserfc with the same detail as before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwe, jws, jwt
from joserfc.jwe import JWERegistry
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from jwcrypto import jwe as jc_jwe  # type: ignore[import-untyped]
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

from gateway.crypto import jose as jose_seal
from gateway.crypto.keyring import load_key_ring
from gateway.crypto.seal import GatewayKeys, PartnerKey, claims_for, load_partner_key_file
from gateway.errors import GatewayError
from gateway.partners.model import CONTENT_ENCS, KEY_ALGS, SIGN_ALGS

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PrivateJwk = ECKey | OKPKey | RSAKey

# (alg, whose key): the shipped partners' combinations, and P-256, which a
# partner may publish for ECDH though none of the shipped ones does.
RECIPIENTS = [
    ("RSA-OAEP-256", "bcel-payments"),
    ("ECDH-ES+A256KW", "adreach"),
    ("ECDH-ES", "veriid"),
    ("ECDH-ES+A256KW", "P-256"),
    ("ECDH-ES", "P-256"),
]
JOSERFC_JWE = JWERegistry(algorithms=[*KEY_ALGS, *CONTENT_ENCS])


@pytest.fixture(scope="module")
def gateway_keys(project: Path) -> GatewayKeys:
    return GatewayKeys.load(project / "keys", NOW)


@pytest.fixture(scope="module")
def recipients(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[PrivateJwk, Path]]:
    """Each recipient's private key (as the sandbox partner holds it) and public key file."""
    found: dict[str, tuple[PrivateJwk, Path]] = {}
    for _, name in RECIPIENTS:
        if name == "P-256":
            key: PrivateJwk = ECKey.generate_key("P-256", private=True)
            key.ensure_kid()
            public = tmp_path_factory.mktemp("p256") / "p256.jwk.json"
            public.write_text(json.dumps(key.as_dict(private=False, use="enc")), encoding="utf-8")
        else:
            private = project / "keys" / "sandbox" / f"{name}.private.jwk.json"
            key = _import(json.loads(private.read_text(encoding="utf-8")))
            public = project / "keys" / "partners" / f"{name}.jwk.json"
        found[name] = (key, public)
    return found


def _import(members: Mapping[str, Any]) -> PrivateJwk:
    kinds: dict[str, type[PrivateJwk]] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
    kept = {k: v for k, v in members.items() if k not in ("iat", "retired_at", "publish_until")}
    return kinds[str(members["kty"])].import_key(kept)


def _claims() -> dict[str, Any]:
    return claims_for(
        issuer="https://gateway.kokkok.example",
        partner_id="bcel-payments",
        disclosure_id="dsc_01HTESTDISCLOSURE",
        purpose="service_provision",
        legal_basis="contract",
        # Lao script: the payload is UTF-8 as is, not \u escapes.
        data={"name": "ສົມໃຈ ພົມມະຈັນ", "amount": 125000, "uuid": "ps_abc"},
        now=NOW,
        extra={"bound_by_policy_version": "2024-09-30"},
    )


def _segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(_segment(token, 0))
    return header


def _signing_key(project: Path, sign_alg: str) -> tuple[str, PrivateJwk]:
    stored = load_key_ring(project / "keys").active(sign_alg)
    assert stored is not None
    return stored.kid, _import(stored.jwk)


def _open_with_joserfc(token: str, private: PrivateJwk, alg: str, enc: str) -> bytes:
    opened = jwe.decrypt_compact(token, private, registry=JWERegistry(algorithms=[alg, enc]))
    assert opened.plaintext is not None
    return opened.plaintext


def _verify_with_joserfc(signed: bytes, gateway_keys: GatewayKeys, sign_alg: str) -> bytes:
    kid = _header(signed.decode())["kid"]
    published = next(k for k in gateway_keys.jwks(NOW)["keys"] if k["kid"] == kid)
    verified = jws.deserialize_compact(
        signed, _import(published), registry=JWSRegistry(algorithms=[sign_alg])
    )
    return verified.payload


def _open_with_jwcrypto(
    token: str, private: PrivateJwk, gateway_keys: GatewayKeys, alg: str, enc: str, sign_alg: str
) -> tuple[Any, dict[str, Any]]:
    """The jwcrypto JWE object (its `cek` is what it unwrapped) and the verified claims."""
    decrypter = jc_jwe.JWE()
    decrypter.allowed_algs = [alg, enc]
    decrypter.deserialize(token, key=jc_jwk.JWK(**private.as_dict(private=True)))
    verifier = jc_jws.JWS()
    verifier.allowed_algs = [sign_alg]
    verifier.deserialize(decrypter.payload.decode())
    published = jc_jwk.JWKSet.from_json(json.dumps(gateway_keys.jwks(NOW)))
    key = published.get_key(verifier.jose_header["kid"])
    assert key is not None
    verifier.verify(key, alg=sign_alg)
    claims: dict[str, Any] = json.loads(verifier.payload)
    return decrypter, claims


# -- (a) every combination opens and verifies with joserfc and jwcrypto ----------


@pytest.mark.parametrize("enc", CONTENT_ENCS)
@pytest.mark.parametrize(("alg", "name"), RECIPIENTS)
@pytest.mark.parametrize("sign_alg", SIGN_ALGS)
def test_seal_opens_and_verifies_with_joserfc_and_jwcrypto(
    gateway_keys: GatewayKeys,
    recipients: dict[str, tuple[PrivateJwk, Path]],
    sign_alg: str,
    alg: str,
    name: str,
    enc: str,
) -> None:
    private, public = recipients[name]
    recipient = load_partner_key_file(public, alg=alg)
    token = gateway_keys.seal(_claims(), sign_alg=sign_alg, recipient=recipient, alg=alg, enc=enc)

    signed = _open_with_joserfc(token, private, alg, enc)
    assert json.loads(_verify_with_joserfc(signed, gateway_keys, sign_alg)) == _claims()
    _, claims = _open_with_jwcrypto(token, private, gateway_keys, alg, enc, sign_alg)
    assert claims == _claims()


@pytest.mark.parametrize(("alg", "name"), RECIPIENTS)
@pytest.mark.parametrize("sign_alg", SIGN_ALGS)
def test_shipped_combinations_never_fall_back_to_joserfc(
    gateway_keys: GatewayKeys,
    recipients: dict[str, tuple[PrivateJwk, Path]],
    monkeypatch: pytest.MonkeyPatch,
    sign_alg: str,
    alg: str,
    name: str,
) -> None:
    def joserfc_called(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("sealed through joserfc, not jose_seal")

    monkeypatch.setattr(jwe, "encrypt_compact", joserfc_called)
    monkeypatch.setattr(jwt, "encode", joserfc_called)
    recipient = load_partner_key_file(recipients[name][1], alg=alg)
    for enc in CONTENT_ENCS:
        gateway_keys.seal(_claims(), sign_alg=sign_alg, recipient=recipient, alg=alg, enc=enc)


@pytest.mark.parametrize(
    "key",
    [
        ECKey.generate_key("P-384", private=True),
        OKPKey.generate_key("X448", private=True),
    ],
    ids=["P-384", "X448"],
)
def test_keys_jose_seal_does_not_cover_still_seal_through_joserfc(
    gateway_keys: GatewayKeys, key: PrivateJwk
) -> None:
    recipient = PartnerKey(type(key).import_key(key.as_dict(private=False)), "other-curve")
    assert (
        jose_seal.encrypt_jwt(
            b"a.b.c", alg="ECDH-ES", enc="A256GCM", kid=None, public_key=recipient.key.public_key
        )
        is None
    )
    token = gateway_keys.seal(
        _claims(), sign_alg="ES256", recipient=recipient, alg="ECDH-ES", enc="A256GCM"
    )
    signed = _open_with_joserfc(token, key, "ECDH-ES", "A256GCM")
    assert json.loads(_verify_with_joserfc(signed, gateway_keys, "ES256")) == _claims()


# -- (b) the JWE header is what the joserfc path wrote ------------------------------


@pytest.mark.parametrize("kid", [True, False], ids=["with-kid", "no-kid"])
@pytest.mark.parametrize(("alg", "name"), RECIPIENTS)
def test_jwe_header_matches_the_joserfc_path(
    gateway_keys: GatewayKeys,
    recipients: dict[str, tuple[PrivateJwk, Path]],
    alg: str,
    name: str,
    kid: bool,
) -> None:
    loaded = load_partner_key_file(recipients[name][1], alg=alg)
    recipient = PartnerKey(loaded.key, loaded.kid if kid else None)
    token = gateway_keys.seal(
        _claims(), sign_alg="ES256", recipient=recipient, alg=alg, enc="A256GCM"
    )
    # What the joserfc path (the code before jose_seal) wrote as the header.
    old_header: dict[str, Any] = {"alg": alg, "enc": "A256GCM", "cty": "JWT"}
    if recipient.kid is not None:
        old_header["kid"] = recipient.kid
    reference = jwe.encrypt_compact(old_header, b"a.b.c", recipient.key, registry=JOSERFC_JWE)

    new, old = _header(token), _header(reference)
    new_epk, old_epk = new.pop("epk", None), old.pop("epk", None)
    assert new == old
    assert (new_epk is None) == (old_epk is None) == (alg == "RSA-OAEP-256")
    if new_epk is not None and old_epk is not None:
        assert new_epk.keys() == old_epk.keys()
        assert (new_epk["kty"], new_epk["crv"]) == (old_epk["kty"], old_epk["crv"])
    assert token.split(".")[0] == jose_seal.b64url(_segment(token, 0)).decode()  # no padding


# -- (c) the JWS header and payload ---------------------------------------------------


@pytest.mark.parametrize("sign_alg", SIGN_ALGS)
def test_jws_header_carries_alg_kid_typ(
    gateway_keys: GatewayKeys, recipients: dict[str, tuple[PrivateJwk, Path]], sign_alg: str
) -> None:
    private, public = recipients["veriid"]
    token = gateway_keys.seal(
        _claims(),
        sign_alg=sign_alg,
        recipient=load_partner_key_file(public),
        alg="ECDH-ES",
        enc="A256GCM",
    )
    signed = _open_with_joserfc(token, private, "ECDH-ES", "A256GCM").decode()
    assert _header(signed) == {
        "alg": sign_alg,
        "kid": gateway_keys.signing_kid(sign_alg),
        "typ": "JWT",
    }


def test_ed25519_jwt_is_byte_for_byte_joserfc_s(project: Path) -> None:
    """Ed25519 signatures are deterministic, so header, payload and signature must all match."""
    kid, key = _signing_key(project, "Ed25519")
    signer = jose_seal.jwt_signer("Ed25519", kid, key.private_key)
    assert signer is not None
    expected = jwt.encode(
        {"alg": "Ed25519", "kid": kid, "typ": "JWT"},
        _claims(),
        key,
        registry=JWSRegistry(algorithms=["Ed25519"]),
    )
    assert signer.jwt(_claims()).decode() == expected


def test_es256_signatures_are_raw_r_s(project: Path) -> None:
    """RFC 7518 §3.4: always 64 bytes, also when R or S is short (1 in 128 signatures)."""
    kid, key = _signing_key(project, "ES256")
    signer = jose_seal.jwt_signer("ES256", kid, key.private_key)
    assert signer is not None
    public = _import(key.as_dict(private=False))
    for index in range(300):
        signed = signer.jwt({"n": index})
        assert len(_segment(signed.decode(), 2)) == 64
        verified = jws.deserialize_compact(
            signed, public, registry=JWSRegistry(algorithms=["ES256"])
        )
        assert json.loads(verified.payload) == {"n": index}


@pytest.mark.parametrize(
    ("sign_alg", "private_key"),
    [
        ("ES256", ec.generate_private_key(ec.SECP384R1())),
        ("ES256", ed25519.Ed25519PrivateKey.generate()),
        ("Ed25519", ec.generate_private_key(ec.SECP256R1())),
        ("PS256", rsa.generate_private_key(65537, 1024)),
        ("RS256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_signers_jose_seal_does_not_cover(sign_alg: str, private_key: object) -> None:
    assert jose_seal.jwt_signer(sign_alg, "kid", private_key) is None


# -- (d) fresh randomness per call ----------------------------------------------------


@pytest.mark.parametrize(("alg", "name"), RECIPIENTS)
def test_each_seal_draws_fresh_cek_iv_and_ephemeral_key(
    gateway_keys: GatewayKeys,
    recipients: dict[str, tuple[PrivateJwk, Path]],
    alg: str,
    name: str,
) -> None:
    private, public = recipients[name]
    recipient = load_partner_key_file(public, alg=alg)
    tokens = [
        gateway_keys.seal(
            _claims(), sign_alg="Ed25519", recipient=recipient, alg=alg, enc="A256GCM"
        )
        for _ in range(2)
    ]
    opened = [
        _open_with_jwcrypto(token, private, gateway_keys, alg, "A256GCM", "Ed25519")
        for token in tokens
    ]
    assert opened[0][1] == opened[1][1]  # same claims, and Ed25519 signs them identically
    assert opened[0][0].cek != opened[1][0].cek
    assert _segment(tokens[0], 2) != _segment(tokens[1], 2)  # IV
    assert len(_segment(tokens[0], 2)) == 12 and len(_segment(tokens[0], 4)) == 16
    if alg != "RSA-OAEP-256":
        assert _header(tokens[0])["epk"] != _header(tokens[1])["epk"]
    if alg == "ECDH-ES":
        assert _segment(tokens[0], 1) == b""  # direct agreement: no encrypted key


# -- (e) wrong inputs: the same refusals as before ------------------------------------


def _detail(sign_alg: str, alg: str, enc: str, kty: str, error: str) -> str:
    return (
        f"cannot seal with sign_alg {sign_alg}, alg {alg}, enc {enc} to a {kty} key: {error}; "
        "check the partner's [encryption] alg (RSA-OAEP-256, ECDH-ES+A256KW, ECDH-ES) "
        "and enc (A256GCM, A192GCM, A128GCM)"
    )


@pytest.mark.parametrize(
    ("alg", "enc", "name", "kty", "error"),
    [
        ("RSA-OAEP-256", "A256GCM", "veriid", "OKP", "InvalidKeyTypeError"),
        ("ECDH-ES", "A256GCM", "bcel-payments", "RSA", "InvalidKeyTypeError"),
        ("ECDH-ES+A256KW", "A256GCM", "bcel-payments", "RSA", "InvalidKeyTypeError"),
        ("RSA1_5", "A256GCM", "bcel-payments", "RSA", "UnsupportedAlgorithmError"),
        ("RSA-OAEP-256", "A256CBC-HS512", "bcel-payments", "RSA", "UnsupportedAlgorithmError"),
        ("ECDH-ES", "A512GCM", "veriid", "OKP", "UnsupportedAlgorithmError"),
    ],
)
def test_wrong_alg_enc_or_key_refused_as_before(
    gateway_keys: GatewayKeys,
    recipients: dict[str, tuple[PrivateJwk, Path]],
    alg: str,
    enc: str,
    name: str,
    kty: str,
    error: str,
) -> None:
    recipient = load_partner_key_file(recipients[name][1])
    with pytest.raises(GatewayError) as caught:
        gateway_keys.seal(_claims(), sign_alg="ES256", recipient=recipient, alg=alg, enc=enc)
    assert caught.value.code == "internal_error"
    assert caught.value.detail == _detail("ES256", alg, enc, kty, error)


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
@pytest.mark.parametrize(
    ("kind", "alg", "error"),
    [
        ("RSA-1024", "RSA-OAEP-256", "InvalidKeyLengthError"),
        ("Ed25519", "ECDH-ES", "InvalidExchangeKeyError"),
    ],
)
def test_unusable_recipient_key_refused_as_before(
    gateway_keys: GatewayKeys, kind: str, alg: str, error: str
) -> None:
    # Partner key files never yield these; a PartnerKey built by hand still must not seal.
    key: PrivateJwk
    if kind == "RSA-1024":
        key = RSAKey.generate_key(1024, private=False)
    else:
        key = OKPKey.generate_key("Ed25519", private=False)
    with pytest.raises(GatewayError) as caught:
        gateway_keys.seal(
            _claims(), sign_alg="PS256", recipient=PartnerKey(key, "k"), alg=alg, enc="A256GCM"
        )
    assert caught.value.code == "internal_error"
    assert caught.value.detail == _detail("PS256", alg, "A256GCM", key.key_type, error)


def test_unknown_sign_alg_refused_as_before(
    gateway_keys: GatewayKeys, recipients: dict[str, tuple[PrivateJwk, Path]]
) -> None:
    recipient = load_partner_key_file(recipients["veriid"][1])
    with pytest.raises(GatewayError) as caught:
        gateway_keys.seal(
            _claims(), sign_alg="EdDSA", recipient=recipient, alg="ECDH-ES", enc="A256GCM"
        )
    assert caught.value.code == "internal_error"
    assert caught.value.detail == "sign_alg 'EdDSA' is not one of ES256, Ed25519, PS256"


def test_jose_seal_covers_only_what_it_knows(
    recipients: dict[str, tuple[PrivateJwk, Path]],
) -> None:
    rsa_key = load_partner_key_file(recipients["bcel-payments"][1]).key.public_key
    x25519_key = load_partner_key_file(recipients["veriid"][1]).key.public_key
    for alg, enc, key in [
        ("RSA-OAEP-256", "A256CBC-HS512", rsa_key),
        ("RSA-OAEP", "A256GCM", rsa_key),
        ("RSA-OAEP-256", "A256GCM", x25519_key),
        ("ECDH-ES+A128KW", "A256GCM", x25519_key),
        ("ECDH-ES", "A256GCM", rsa_key),
        ("dir", "A256GCM", x25519_key),
    ]:
        assert jose_seal.encrypt_jwt(b"a.b.c", alg=alg, enc=enc, kid=None, public_key=key) is None
