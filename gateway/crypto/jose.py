"""Compact JWS and JWE straight on `cryptography`: the hot path of `GatewayKeys.seal`.

Sealing a disclosure with joserfc spends about as much time in its registries,
header checks, key wrappers and JSON handling as in the cryptography itself.
For the few algorithms the gateway sends with, this module does only the
steps RFC 7515 §5.1 and RFC 7516 §5.1 prescribe. Keys come in parsed: the
signing keys once at start, a partner's public key as the `cryptography`
object that joserfc parsed once and keeps on the PartnerKey.

It writes tokens and never reads them: partner responses are opened by
joserfc. A signer or recipient it does not cover comes back as None, and the
caller uses joserfc, which also gives the refusal for a combination that is
wrong. Which algorithms may be used at all is the caller's allowlist; this
module only knows how to do these ones.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MIN_RSA_BITS: Final = 2048  # RFC 7518 §3.5 and §4.3
GCM_KEY_BYTES: Final = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32}
GCM_IV_BYTES: Final = 12  # RFC 7518 §5.3: a 96-bit IV
GCM_TAG_BYTES: Final = 16  # RFC 7518 §5.3: a 128-bit tag
ECDH_ALGS: Final = ("ECDH-ES", "ECDH-ES+A256KW")
A256KW_KEY_BITS: Final = 256

_P256_COORDINATE_BYTES: Final = 32
_PSS: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_OAEP_256: Final = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


def b64url(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64json(members: Mapping[str, Any]) -> bytes:
    return b64url(compact_json(members))


def compact_json(value: Mapping[str, Any]) -> bytes:
    """JSON without spaces, UTF-8 as is. orjson, or json for what orjson refuses (an
    integer beyond 64 bits); both parse back to the same values."""
    try:
        return orjson.dumps(dict(value))
    except orjson.JSONEncodeError:
        return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- JWS (RFC 7515 §7.1, compact) -------------------------------------------------


def sign_es256(key: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    """ECDSA P-256 SHA-256 as JWS wants it: R || S, each 32 bytes big-endian (RFC 7518 §3.4)."""
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_P256_COORDINATE_BYTES, "big") + s.to_bytes(_P256_COORDINATE_BYTES, "big")


def sign_ed25519(key: ed25519.Ed25519PrivateKey, signing_input: bytes) -> bytes:
    """Ed25519 over the signing input itself (RFC 8037 §3.1, named `Ed25519` by RFC 9864)."""
    return key.sign(signing_input)


def sign_ps256(key: rsa.RSAPrivateKey, signing_input: bytes) -> bytes:
    """RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 7518 §3.5)."""
    return key.sign(signing_input, _PSS, hashes.SHA256())


@dataclass(frozen=True)
class JwtSigner:
    """Signs JWTs with one key; the header never changes, so it is encoded once."""

    header_b64: bytes
    sign: Callable[[bytes], bytes]

    def jwt(self, claims: Mapping[str, Any]) -> bytes:
        """The compact JWS of `claims` (RFC 7519 §7.1), JSON without spaces, UTF-8 as is."""
        signing_input = self.header_b64 + b"." + b64url(compact_json(claims))
        return signing_input + b"." + b64url(self.sign(signing_input))


def jwt_signer(sign_alg: str, kid: str, private_key: object) -> JwtSigner | None:
    """A signer for `sign_alg` with `private_key`, or None when this module does not cover it."""
    sign: Callable[[bytes], bytes]
    if (
        sign_alg == "ES256"
        and isinstance(private_key, ec.EllipticCurvePrivateKey)
        and isinstance(private_key.curve, ec.SECP256R1)
    ):
        sign = partial(sign_es256, private_key)
    elif sign_alg == "Ed25519" and isinstance(private_key, ed25519.Ed25519PrivateKey):
        sign = partial(sign_ed25519, private_key)
    elif (
        sign_alg == "PS256"
        and isinstance(private_key, rsa.RSAPrivateKey)
        and private_key.key_size >= MIN_RSA_BITS
    ):
        sign = partial(sign_ps256, private_key)
    else:
        return None
    # Member order as joserfc's jwt.encode writes it; any order would be valid.
    return JwtSigner(_b64json({"typ": "JWT", "alg": sign_alg, "kid": kid}), sign)


# -- JWE (RFC 7516 §7.1, compact) of a nested JWT -----------------------------------


def wrap_rsa_oaep_256(key: rsa.RSAPublicKey, cek: bytes) -> bytes:
    """The CEK encrypted with RSAES-OAEP, SHA-256 and MGF1-SHA-256 (RFC 7518 §4.3)."""
    return key.encrypt(cek, _OAEP_256)


def ecdh_ephemeral(
    key: ec.EllipticCurvePublicKey | x25519.X25519PublicKey,
) -> tuple[dict[str, str], bytes]:
    """A fresh ephemeral key on the recipient's curve: its public JWK (the `epk` header,
    RFC 7518 §4.6.1.1) and the shared secret Z with the recipient's key."""
    if isinstance(key, x25519.X25519PublicKey):
        okp = x25519.X25519PrivateKey.generate()
        raw = okp.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # RFC 8037 §2: an OKP public key is its raw bytes in `x`.
        epk = {"kty": "OKP", "crv": "X25519", "x": b64url(raw).decode("ascii")}
        return epk, okp.exchange(key)
    p256 = ec.generate_private_key(ec.SECP256R1())
    point = p256.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    # 0x04 || x || y, each coordinate full length as RFC 7518 §6.2.1.2-3 requires.
    x, y = point[1 : 1 + _P256_COORDINATE_BYTES], point[1 + _P256_COORDINATE_BYTES :]
    epk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(x).decode("ascii"),
        "y": b64url(y).decode("ascii"),
    }
    return epk, p256.exchange(ec.ECDH(), key)


def concat_kdf(shared_secret: bytes, algorithm_id: str, key_bits: int) -> bytes:
    """The Concat KDF of RFC 7518 §4.6.2 with SHA-256 and empty `apu`/`apv`.

    AlgorithmID is the `enc` value for ECDH-ES direct and the `alg` value with
    key wrapping; SuppPubInfo is the key length in bits.
    """
    name = algorithm_id.encode("ascii")
    no_party_info = struct.pack(">I", 0)  # PartyUInfo and PartyVInfo: length 0, no data
    other_info = (
        struct.pack(">I", len(name)) + name + no_party_info * 2 + struct.pack(">I", key_bits)
    )
    return ConcatKDFHash(hashes.SHA256(), key_bits // 8, other_info).derive(shared_secret)


def encrypt_a_gcm(cek: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
    """AES-GCM content encryption (RFC 7518 §5.3): a fresh 96-bit IV, ciphertext, 128-bit tag.

    The AAD is the ASCII of the encoded protected header (RFC 7516 §5.1 step 14).
    """
    iv = os.urandom(GCM_IV_BYTES)
    sealed = AESGCM(cek).encrypt(iv, plaintext, aad)
    return iv, sealed[:-GCM_TAG_BYTES], sealed[-GCM_TAG_BYTES:]


# Without `epk` the header only depends on these three, and encoding it costs
# about 5 µs of the ~120 µs an RSA-OAEP-256 seal takes; kids are few.
@lru_cache(maxsize=256)
def _static_header(alg: str, enc: str, kid: str | None) -> bytes:
    return _b64json(_header(alg, enc, kid))


def _header(alg: str, enc: str, kid: str | None) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": alg, "enc": enc, "cty": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return header


def encrypt_jwt(
    signed_jwt: bytes, *, alg: str, enc: str, kid: str | None, public_key: object
) -> str | None:
    """The compact JWE of a signed JWT (`cty` "JWT", RFC 7519 §5.2) to `public_key`.

    Covers RSA-OAEP-256 to an RSA key of 2048 bits or more, and ECDH-ES or
    ECDH-ES+A256KW to a P-256 or X25519 key, each with A128GCM, A192GCM or
    A256GCM; None for anything else. Each call draws a fresh CEK (or, for
    ECDH-ES direct, a fresh ephemeral key and so a fresh CEK) and a fresh IV.
    """
    cek_bytes = GCM_KEY_BYTES.get(enc)
    if cek_bytes is None:
        return None
    if alg == "RSA-OAEP-256":
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_RSA_BITS:
            return None
        header_b64 = _static_header(alg, enc, kid)
        cek = os.urandom(cek_bytes)
        encrypted_key = wrap_rsa_oaep_256(public_key, cek)
    elif alg in ECDH_ALGS:
        if not (
            isinstance(public_key, x25519.X25519PublicKey)
            or (
                isinstance(public_key, ec.EllipticCurvePublicKey)
                and isinstance(public_key.curve, ec.SECP256R1)
            )
        ):
            return None
        epk, shared_secret = ecdh_ephemeral(public_key)
        header_b64 = _b64json({**_header(alg, enc, kid), "epk": epk})
        if alg == "ECDH-ES":
            # RFC 7518 §4.6: direct key agreement, the derived key is the CEK.
            cek = concat_kdf(shared_secret, enc, cek_bytes * 8)
            encrypted_key = b""
        else:
            cek = os.urandom(cek_bytes)
            kek = concat_kdf(shared_secret, alg, A256KW_KEY_BITS)
            encrypted_key = aes_key_wrap(kek, cek)  # RFC 3394, as RFC 7518 §4.4 uses it
    else:
        return None
    iv, ciphertext, tag = encrypt_a_gcm(cek, signed_jwt, header_b64)
    return b".".join(
        (header_b64, b64url(encrypted_key), b64url(iv), b64url(ciphertext), b64url(tag))
    ).decode("ascii")
