"""The secrets, private keys and TLS contexts a partner's `[auth]` names, each read once.

A secret comes from an environment variable or a file, a private JWK (for
`private_key_jwt`) from a file, a TLS context from the partner's `ca_bundle` and, for
`mtls`, its client certificate. TLS verification is always on: the default CA store, or
the partner's `ca_bundle` when one is given (then only that bundle is trusted).
A problem leaves as `PartnerAuthError` naming the partner and the file or variable,
never the secret.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from joserfc import jwk
from joserfc.errors import JoseError

from gateway.partners.model import Partner, SecretRef

# Visible ASCII: nothing that could split a header.
HEADER_SAFE: Final = re.compile(r"^[\x21-\x7e]+$")


class PartnerAuthError(Exception):
    """The gateway could not authenticate to a partner.

    `transient`: a later attempt may succeed (token endpoint down or busy).
    `misconfigured`: the gateway's own setup is wrong (missing secret, bad
    key file); no request was made.
    """

    def __init__(self, detail: str, *, transient: bool, misconfigured: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient
        self.misconfigured = misconfigured


class PartnerSecrets:
    """Every partner's secrets, private keys and TLS contexts, read on first use and kept."""

    # private_key_jwt: key type (and EC curve) -> signing algorithm. A JWK's
    # own `alg` is honoured when it is one of these.
    ASSERTION_ALGS: Final = ("ES256", "ES384", "RS256", "PS256", "Ed25519")
    _ALG_FOR_KEY: Final = {"RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "Ed25519": "Ed25519"}

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._secrets: dict[tuple[str, str], str] = {}
        self._private_keys: dict[str, tuple[jwk.Key, str]] = {}
        self._ssl: dict[tuple[str, Path | None, Path | None, Path | None], ssl.SSLContext] = {}

    def forget(self, partner_id: str) -> None:
        """Drop the partner's secrets, key and TLS contexts (its file changed)."""
        for secret in [k for k in self._secrets if k[0] == partner_id]:
            del self._secrets[secret]
        for context in [k for k in self._ssl if k[0] == partner_id]:
            del self._ssl[context]
        self._private_keys.pop(partner_id, None)

    def ssl_for(self, partner: Partner) -> ssl.SSLContext | bool:
        """The TLS settings for `partner`: True (default verification) or a verifying context."""
        auth = partner.auth
        ca_bundle = partner.ca_bundle
        if auth.type != "mtls" and ca_bundle is None:
            return True
        if auth.type == "mtls" and not partner.base_url.startswith("https://"):
            # Over plain HTTP the client certificate would silently not be sent.
            raise PartnerAuthError(
                f"partner {partner.id}: mtls needs an https:// base_url, got {partner.base_url}",
                transient=False,
                misconfigured=True,
            )
        key = (partner.id, ca_bundle, auth.cert_file, auth.cert_key_file)
        context = self._ssl.get(key)
        if context is None:
            context = self._ssl_context(partner, ca_bundle)
            self._ssl[key] = context
        return context

    def secret(self, partner: Partner, ref: SecretRef | None, what: str) -> str:
        """The `what` ("key", "client_secret") of `partner`, from where `ref` names it."""
        cached = self._secrets.get((partner.id, what))
        if cached is not None:
            return cached
        value = self._read_secret(partner, ref, what)
        # An API key goes into a header as it is; a client secret is always
        # encoded (Basic or form) and may hold anything.
        if what == "key" and not HEADER_SAFE.match(value):
            raise PartnerAuthError(
                f"partner {partner.id}: the {what} holds spaces or control characters; "
                "store it as a single line of visible ASCII",
                transient=False,
                misconfigured=True,
            )
        self._secrets[(partner.id, what)] = value
        return value

    def _read_secret(self, partner: Partner, ref: SecretRef | None, what: str) -> str:
        if ref is None:
            raise PartnerAuthError(
                f"partner {partner.id}: no {what} configured; set '{what}_env' or "
                f"'{what}_file' under [auth]",
                transient=False,
                misconfigured=True,
            )
        if ref.env is not None:
            value = self._env.get(ref.env, "")
            if not value:
                raise PartnerAuthError(
                    f"partner {partner.id}: environment variable {ref.env} (the {what}) is "
                    "not set or empty; set it before starting the gateway",
                    transient=False,
                    misconfigured=True,
                )
            return value
        assert ref.file is not None
        try:
            value = ref.file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise PartnerAuthError(
                f"partner {partner.id}: cannot read the {what} from {ref.file} "
                f"({exc.__class__.__name__}); check the path and its permissions",
                transient=False,
                misconfigured=True,
            ) from exc
        if not value:
            raise PartnerAuthError(
                f"partner {partner.id}: {ref.file} (the {what}) is empty",
                transient=False,
                misconfigured=True,
            )
        return value

    def private_key(self, partner: Partner) -> tuple[jwk.Key, str]:
        """The private JWK `partner` signs client assertions with, and its algorithm."""
        cached = self._private_keys.get(partner.id)
        if cached is not None:
            return cached
        path = partner.auth.private_key_file
        where = f"partner {partner.id}: private_key_file {path}"

        def refuse(problem: str) -> PartnerAuthError:
            return PartnerAuthError(f"{where} {problem}", transient=False, misconfigured=True)

        if path is None:
            raise refuse("is not set; private_key_jwt needs a private JWK file")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise refuse(f"cannot be read as JSON ({exc.__class__.__name__})") from exc
        if isinstance(doc, dict) and isinstance(doc.get("keys"), list) and len(doc["keys"]) == 1:
            doc = doc["keys"][0]
        if not isinstance(doc, dict):
            raise refuse("must hold one private JWK (a JSON object)")
        try:
            key = jwk.import_key(doc)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise refuse(f"is not a valid JWK ({exc.__class__.__name__})") from exc
        if not key.is_private:
            raise refuse("holds a public key; private_key_jwt needs the private half")
        alg = doc.get("alg") or self._ALG_FOR_KEY.get(
            "RSA" if key.key_type == "RSA" else str(doc.get("crv"))
        )
        if alg not in self.ASSERTION_ALGS:
            raise refuse(
                f"has a key (kty {key.key_type}, alg {doc.get('alg')}) the gateway cannot sign "
                f"client assertions with; use one for {', '.join(self.ASSERTION_ALGS)}"
            )
        self._private_keys[partner.id] = (key, alg)
        return key, alg

    def _ssl_context(self, partner: Partner, ca_bundle: Path | None) -> ssl.SSLContext:
        auth = partner.auth
        try:
            # With a bundle, only that bundle is trusted (pinning); without,
            # the system store. Hostname checks and CERT_REQUIRED either way.
            context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if auth.type == "mtls":
                if auth.cert_file is None or auth.cert_key_file is None:
                    raise PartnerAuthError(
                        f"partner {partner.id}: mtls needs cert_file and cert_key_file",
                        transient=False,
                        misconfigured=True,
                    )
                context.load_cert_chain(auth.cert_file, auth.cert_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise PartnerAuthError(
                f"partner {partner.id}: cannot load the TLS files (ca_bundle {ca_bundle}, "
                f"cert_file {auth.cert_file}, cert_key_file {auth.cert_key_file}): "
                f"{exc.__class__.__name__}; check they exist and are PEM",
                transient=False,
                misconfigured=True,
            ) from exc
        return context
