"""The development issuer of caller tokens: its key, the JWKS that trusts it, `gateway token`.

`gateway keys generate` writes the issuer's private key (`dev-issuer.private.jwk.json`)
and lists its public half in `callers.jwks.json`, the caller JWKS a fresh config trusts;
`issue_dev_token` (`gateway token CALLER_ID`, and the tests) signs access tokens with it.
It lives here, with its key, rather than in `callers` (which only verifies tokens and
sits in a layer below key material).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from gateway.callers.tokens import parse_jwks
from gateway.config.model import AuthConfig
from gateway.crypto.key_files import PUBLIC, json_bytes, jwk_bytes, read_json_key
from gateway.crypto.keyring import KeyPaths, public_jwk
from gateway.errors import ConfigError
from gateway.files import write_atomically

DEV_ISSUER_ALG: Final = "ES256"
_NO_ISSUER_KEY: Final = "no development issuer key; run `gateway keys generate`"


def new_dev_issuer_key() -> bytes:
    """A fresh development issuer key file's bytes (a private P-256 JWK)."""
    return jwk_bytes(ECKey.generate_key("P-256", private=True), use="sig", alg=DEV_ISSUER_ALG)


def publish_dev_issuer(paths: KeyPaths) -> None:
    """Add the dev issuer's public key to callers.jwks.json, keeping any other key listed."""
    issuer = ECKey.import_key(read_json_key(paths.dev_issuer, missing=_NO_ISSUER_KEY))
    issuer.ensure_kid()
    existing: list[dict[str, Any]] = []
    if paths.callers_jwks.exists():
        jwks = read_json_key(paths.callers_jwks, missing="caller JWKS not found", what="JWKS")
        existing = jwks.get("keys", [])
    public = public_jwk(issuer.as_dict(private=False, use="sig", alg=DEV_ISSUER_ALG))
    keys = [k for k in existing if k.get("kid") != public["kid"]] + [public]
    write_atomically(paths.callers_jwks, json_bytes({"keys": keys}), mode=PUBLIC)


def issue_dev_token(
    keys_dir: Path,
    auth: AuthConfig,
    caller_id: str,
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    """An RFC 9068 access token for `caller_id`, signed by the development issuer key.

    Raises ConfigError when the key is missing or when `auth` would not trust
    it, so `gateway token` never prints a token the gateway will refuse.
    """
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    if not caller_id:
        raise ValueError("caller_id must not be empty")
    path = KeyPaths(keys_dir).dev_issuer
    doc = read_json_key(path, missing=_NO_ISSUER_KEY)
    try:
        key = ECKey.import_key(doc)
    except (ValueError, JoseError) as exc:
        raise ConfigError(str(path), None, f"not a usable EC private JWK: {exc}") from exc
    if not key.is_private or key.kid is None:
        raise ConfigError(str(path), None, "the development issuer JWK needs 'd' and 'kid'")
    if auth.jwks is None:
        raise ConfigError(
            "config.toml",
            None,
            "auth.jwks_url points at an identity provider, which would refuse development "
            "tokens; get a token from it, or set auth.jwks = 'keys/callers.jwks.json'",
        )
    try:
        trusted, _ = parse_jwks(json.loads(auth.jwks.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(auth.jwks), None, f"cannot read the caller JWKS: {exc}") from exc
    if key.kid not in trusted:
        raise ConfigError(
            str(auth.jwks),
            None,
            f"the development issuer key {key.kid!r} is not in this JWKS; "
            "run `gateway keys generate` to add it",
        )
    issued = int(time.time() if now is None else now)
    header = {"typ": "at+jwt", "alg": DEV_ISSUER_ALG, "kid": key.kid}
    claims = {
        "iss": auth.issuer,
        "aud": auth.audience,
        "sub": caller_id,
        "client_id": caller_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(header, claims, key, algorithms=[DEV_ISSUER_ALG])
