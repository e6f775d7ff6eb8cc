"""Partner onboarding files (`partners/<id>.toml`, CONTRACT §2) → validated Partner objects.

The privacy team writes these files; the gateway refuses to start with a
broken one. Every refusal is `file:line: what is wrong — what would be valid`,
and all problems in a directory are reported together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gateway import vocabulary as v
from gateway.config.limits import read_limits
from gateway.config.tomlfile import TomlDocument, load
from gateway.errors import ConfigError, ConfigErrors
from gateway.net import fetchable_url, is_loopback_host
from gateway.partners.keyfile import (
    AcknowledgementKey,
    PartnerKeyError,
    read_acknowledgement_key_file,
    read_partner_key_file,
)
from gateway.partners.model import (
    ACKNOWLEDGEMENTS,
    AUTH_KEYS,
    AUTH_TYPES,
    CONTENT_ENCS,
    ENCRYPTION_KEYS,
    INLINE_SECRETS,
    JURISDICTION,
    KEY_ALGS,
    PARTNER_ID,
    SECRET_NAME,
    SIGN_ALGS,
    TOKEN_AUTH_METHODS,
    TOP_KEYS,
    Partner,
    PartnerAuth,
    PartnerEncryption,
    SecretRef,
    file_line,
)
from gateway.partners.operations import read_operations


def load_partners(
    directory: Path, base_dir: Path | None = None, *, check_keys: bool = True
) -> dict[str, Partner]:
    """Load every `*.toml` under `directory`; raise ConfigErrors listing every problem.

    Relative paths inside the files (key files) resolve against `base_dir`,
    by default the directory above `directory` (the project root). With
    `check_keys=False` key files are not opened (`gateway partners diff` reads
    old revisions whose key files need not exist here).
    """
    base = base_dir if base_dir is not None else directory.resolve().parent
    if not directory.is_dir():
        raise ConfigErrors([ConfigError(str(directory), None, "partners directory not found")])
    files = ((path, None) for path in sorted(directory.glob("*.toml")))
    return load_partner_files(files, base, check_keys=check_keys)


def load_partner_files(
    files: Iterable[tuple[Path, str | None]], base_dir: Path, *, check_keys: bool = True
) -> dict[str, Partner]:
    """Load each `(path, name shown in its messages)`; raise ConfigErrors listing every
    problem of them all, so one run shows everything there is to fix."""
    partners: dict[str, Partner] = {}
    errors: list[ConfigError] = []
    for path, display in files:
        try:
            partner = load_partner(path, base_dir, display=display, check_keys=check_keys)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
        else:
            partners[partner.id] = partner
    if errors:
        raise ConfigErrors(errors)
    return partners


def load_partner(
    path: Path, base_dir: Path, *, display: str | None = None, check_keys: bool = True
) -> Partner:
    """Load and validate one partner file (`display` names it in messages)."""
    try:
        doc = load(path, display)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from exc
    return _PartnerReader(doc, path.stem, base_dir, check_keys=check_keys).read()


class _PartnerReader:
    """Collects every problem in one file before giving up."""

    def __init__(
        self, doc: TomlDocument, partner_id: str, base_dir: Path, *, check_keys: bool = True
    ) -> None:
        self.doc = doc
        self.id = partner_id
        self.base = base_dir
        self.check_keys = check_keys
        self.errors: list[ConfigError] = []

    def fail(self, message: str, *key: str | int) -> None:
        self.errors.append(ConfigError(self.doc.path, file_line(self.doc.lines, key), message))

    def read(self) -> Partner:
        d = self.doc.data
        if not PARTNER_ID.match(self.id):
            self.fail(
                f"file name {self.id!r} is not a valid partner id: use lowercase letters, "
                "digits and '-' (e.g. lao-credit-bureau.toml)"
            )
        self.unknown_keys(d, TOP_KEYS.keys(), ())
        name = self._string(d, "name")
        category = self._choice(d, "category", v.PARTNER_CATEGORIES)
        jurisdiction = self._string(d, "jurisdiction")
        if jurisdiction and not JURISDICTION.match(jurisdiction):
            self.fail(
                f"jurisdiction {jurisdiction!r} is not an ISO 3166-1 alpha-2 code "
                '(two capital letters, e.g. "LA")',
                "jurisdiction",
            )
        agreement = self._string(d, "agreement")
        agreement_expires_on = self._date(d, "agreement_expires_on")
        base_url = self._base_url(d)
        retention_days = self._int(d, "retention_days", minimum=0)
        timeout_s = self._number(d, "timeout_s", default=10.0)
        max_attempts = self._int(d, "max_attempts", minimum=1, default=3)
        privacy_contact = self._string(d, "privacy_contact", required=False)
        ca_bundle = self._path(d["ca_bundle"], "ca_bundle") if "ca_bundle" in d else None
        auth = self._auth(d.get("auth"))
        encryption = self._encryption(d.get("encryption"))
        operations = read_operations(d.get("operations"), category, self)
        acknowledgement, ack_key, ack_keys = self._acknowledgement(d)
        forward_trace_context = self._bool(d, "forward_trace_context", default=False)
        notice_operation = self._string(d, "notice_operation", required=False) or None
        limits = read_limits(d, self.fail)
        if notice_operation is not None and notice_operation not in operations:
            self.fail(
                f"notice_operation {notice_operation!r} is not an operation of this file; "
                f"declare [operations.{notice_operation}] or remove the key (default: erasure)",
                "notice_operation",
            )
        elif notice_operation is not None:
            # A notice is sent for purpose `legal` on basis `legal_obligation` (CONTRACT
            # §4.4): an operation not declaring both refuses every notice, which would then
            # wait in the outbox until it is given up.
            route = operations[notice_operation]
            if "legal" not in route.purposes or "legal_obligation" not in route.legal_bases:
                self.fail(
                    f"notice_operation {notice_operation!r} must declare purpose 'legal' and "
                    "legal basis 'legal_obligation': notices are sent for them "
                    f"(add them to [operations.{notice_operation}])",
                    "notice_operation",
                )
        if self.errors:
            raise ConfigErrors(self.errors)
        return Partner(
            id=self.id,
            name=name,
            category=category,
            jurisdiction=jurisdiction,
            agreement=agreement,
            base_url=base_url,
            retention_days=retention_days,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            privacy_contact=privacy_contact or None,
            auth=auth,
            encryption=encryption,
            operations=MappingProxyType(operations),
            ca_bundle=ca_bundle,
            agreement_expires_on=agreement_expires_on,
            acknowledgement=acknowledgement,
            acknowledgement_key=ack_key,
            acknowledgement_keys=tuple(ack_keys),
            forward_trace_context=forward_trace_context,
            notice_operation=notice_operation,
            max_in_flight=limits.max_in_flight,
            rate=limits.rate,
            source=self.doc.path,
            lines=MappingProxyType(dict(self.doc.lines)),
        )

    # -- scalar readers: record an error and return a harmless placeholder --

    def unknown_keys(
        self, table: Mapping[str, Any], known: Iterable[str], at: tuple[str, ...]
    ) -> None:
        allowed = sorted(known)
        for key in table:
            if key in allowed:
                continue
            if key in INLINE_SECRETS or key.endswith("secret"):
                self.fail(
                    f"'{key}' would put a secret inline: secrets come from "
                    f"'{key}_env' (environment variable) or '{key}_file' (a file path)",
                    *at,
                    key,
                )
            else:
                self.fail(f"unknown key '{key}'; valid keys here: {', '.join(allowed)}", *at, key)

    def _string(
        self, table: Mapping[str, Any], key: str, *, required: bool = True, at: tuple[str, ...] = ()
    ) -> str:
        value = table.get(key)
        if value is None:
            if required:
                self.fail(f"missing required key '{key}' ({TOP_KEYS.get(key, 'a string')})", *at)
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail(f"'{key}' must be a non-empty string", *at, key)
            return ""
        return value

    def _choice(
        self,
        table: Mapping[str, Any],
        key: str,
        choices: Iterable[str],
        *,
        at: tuple[str, ...] = (),
        default: str | None = None,
    ) -> str:
        options = tuple(choices)
        value = table.get(key, default)
        if value is None:
            self.fail(f"missing required key '{key}'; one of: {', '.join(options)}", *at)
            return ""
        if value not in options:
            self.fail(f"{key} {value!r} is not one of: {', '.join(options)}", *at, key)
            return ""
        return str(value)

    def _int(
        self, table: Mapping[str, Any], key: str, *, minimum: int, default: int | None = None
    ) -> int:
        value = table.get(key, default)
        if value is None:
            self.fail(f"missing required key '{key}' ({TOP_KEYS.get(key, 'an integer')})")
            return minimum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(f"'{key}' must be a whole number >= {minimum}, got {value!r}", key)
            return minimum
        return value

    def _bool(self, table: Mapping[str, Any], key: str, *, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"'{key}' must be true or false (no quotes), got {value!r}", key)
            return default
        return value

    def _date(self, table: Mapping[str, Any], key: str) -> date | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, date) or isinstance(value, datetime):
            self.fail(f"'{key}' must be a TOML date such as 2026-12-31 (no quotes, no time)", key)
            return None
        return value

    def _number(self, table: Mapping[str, Any], key: str, *, default: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.fail(f"'{key}' must be a positive number of seconds, got {value!r}", key)
            return default
        return float(value)

    def _path(self, value: object, *key: str) -> Path | None:
        if not isinstance(value, str) or not value:
            self.fail(f"'{key[-1]}' must be a file path", *key)
            return None
        path = Path(value)
        return path if path.is_absolute() else self.base / path

    def _secret(
        self, table: Mapping[str, Any], stem: str, at: tuple[str, ...], required: bool
    ) -> SecretRef | None:
        env, file = table.get(f"{stem}_env"), table.get(f"{stem}_file")
        if env is None and file is None:
            if required:
                self.fail(f"missing '{stem}_env' or '{stem}_file' (where the secret is kept)", *at)
            return None
        if env is not None and file is not None:
            self.fail(f"give '{stem}_env' or '{stem}_file', not both", *at, f"{stem}_env")
            return None
        if env is not None:
            if not isinstance(env, str) or not SECRET_NAME.match(env):
                self.fail(f"'{stem}_env' must name an environment variable", *at, f"{stem}_env")
                return None
            return SecretRef(env=env)
        path = self._path(file, *at, f"{stem}_file")
        return SecretRef(file=path) if path else None

    # -- sections --

    def _base_url(self, d: Mapping[str, Any]) -> str:
        url = self._string(d, "base_url")
        if not url:
            return ""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host:
            self.fail(f"base_url {url!r} must be an absolute https:// URL", "base_url")
        elif parts.scheme == "http" and not is_loopback_host(host):
            self.fail(
                f"base_url {url!r} uses http:// to non-loopback host {host!r}: "
                "use https:// (plain http is only for 127.0.0.1, ::1 or localhost sandboxes)",
                "base_url",
            )
        elif parts.username or parts.password or parts.query or parts.fragment:
            self.fail("base_url must not hold credentials, a query or a fragment", "base_url")
        return url.rstrip("/")

    def _auth(self, table: object) -> PartnerAuth:
        at = ("auth",)
        if table is None:
            self.fail('missing [auth] table; set type = "none" if the partner needs none')
            return PartnerAuth(type="none")
        if not isinstance(table, dict):
            self.fail("'auth' must be a table", "auth")
            return PartnerAuth(type="none")
        self.unknown_keys(table, AUTH_KEYS, at)
        kind = self._choice(table, "type", AUTH_TYPES, at=at)
        if kind == "api_key":
            header = table.get("header", "X-Api-Key")
            if not isinstance(header, str) or not re.match(r"^[A-Za-z0-9-]+$", header):
                self.fail("'header' must be an HTTP header name", *at, "header")
                header = "X-Api-Key"
            return PartnerAuth(type=kind, header=header, key=self._secret(table, "key", at, True))
        if kind == "oauth2_client_credentials":
            token_url = self._string(table, "token_url", at=at)
            if token_url and fetchable_url(token_url) is None:
                self.fail(
                    f"token_url {token_url!r} must be https:// (http only on loopback)",
                    *at,
                    "token_url",
                )
            method = self._choice(
                table,
                "token_endpoint_auth_method",
                TOKEN_AUTH_METHODS,
                at=at,
                default="client_secret_basic",
            )
            secret = None
            private_key = None
            if method == "private_key_jwt":
                if "private_key_file" in table:
                    private_key = self._path(table["private_key_file"], *at, "private_key_file")
                else:
                    self.fail("private_key_jwt needs 'private_key_file'", *at)
            else:
                secret = self._secret(table, "client_secret", at, True)
            scope = table.get("scope")
            return PartnerAuth(
                type=kind,
                token_url=token_url,
                client_id=self._string(table, "client_id", at=at),
                client_secret=secret,
                scope=scope if isinstance(scope, str) else None,
                token_endpoint_auth_method=method or "client_secret_basic",
                private_key_file=private_key,
            )
        if kind == "mtls" and self.doc.data.get("base_url", "").startswith("http://"):
            self.fail(
                "auth type 'mtls' needs an https:// base_url: over plain http the client "
                "certificate is never presented",
                *at,
                "type",
            )
        if kind == "mtls":
            cert = key = None
            for name in ("cert_file", "cert_key_file"):
                if name not in table:
                    self.fail(f"mtls needs '{name}' (PEM client certificate and its key)", *at)
            if "cert_file" in table:
                cert = self._path(table["cert_file"], *at, "cert_file")
            if "cert_key_file" in table:
                key = self._path(table["cert_key_file"], *at, "cert_key_file")
            return PartnerAuth(type=kind, cert_file=cert, cert_key_file=key)
        return PartnerAuth(type=kind or "none")

    def _encryption(self, table: object) -> PartnerEncryption:
        at = ("encryption",)
        fallback = PartnerEncryption("RSA-OAEP-256", "A256GCM", "ES256", None, None)
        if not isinstance(table, dict):
            self.fail(
                "missing [encryption] table: every payload leaves as a JWE to the "
                'partner\'s public key (public_key = "keys/partners/<id>.jwk.json")'
            )
            return fallback
        self.unknown_keys(table, ENCRYPTION_KEYS, at)
        alg = self._choice(table, "alg", KEY_ALGS, at=at)
        enc = self._choice(table, "enc", CONTENT_ENCS, at=at, default="A256GCM")
        sign_alg = self._choice(table, "sign_alg", SIGN_ALGS, at=at, default="ES256")
        path: Path | None = None
        url: str | None = None
        if ("public_key" in table) == ("public_key_url" in table):
            self.fail(
                "give exactly one of 'public_key' (JWK/JWKS file) or 'public_key_url' (JWKS URL)",
                *at,
            )
        elif "public_key" in table:
            path = self._path(table["public_key"], *at, "public_key")
            if path is not None and self.check_keys:
                self._check_key_file(path, alg, table["public_key"])
        else:
            url = fetchable_url(table["public_key_url"])
            if url is None:
                self.fail(
                    "public_key_url must be an https:// JWKS URL (http only on loopback)",
                    *at,
                    "public_key_url",
                )
        return PartnerEncryption(alg, enc, sign_alg, path, url)

    def _acknowledgement(
        self, d: Mapping[str, Any]
    ) -> tuple[str, Path | None, list[AcknowledgementKey]]:
        """`acknowledgement` (none | jws) and, for jws, the partner's signing key file."""
        kind = self._choice(d, "acknowledgement", ACKNOWLEDGEMENTS, default="none")
        if kind != "jws":
            if "acknowledgement_key" in d:
                self.fail(
                    "'acknowledgement_key' is only read with acknowledgement = \"jws\"; "
                    "set that, or remove the key",
                    "acknowledgement_key",
                )
            return kind or "none", None, []
        if "acknowledgement_key" not in d:
            self.fail(
                "acknowledgement = \"jws\" needs 'acknowledgement_key': the JWK or JWKS file "
                "of the partner's public signing key (Ed25519 or P-256) its acknowledgements "
                "verify with",
                "acknowledgement",
            )
            return kind, None, []
        path = self._path(d["acknowledgement_key"], "acknowledgement_key")
        if path is None or not self.check_keys:
            return kind, path, []
        try:
            keys = read_acknowledgement_key_file(path, shown=str(d["acknowledgement_key"]))
        except PartnerKeyError as exc:
            self.fail(str(exc), "acknowledgement_key")
            return kind, path, []
        return kind, path, keys

    def _check_key_file(self, path: Path, alg: str, shown: str) -> None:
        try:
            read_partner_key_file(path, alg=alg or None, shown=shown)
        except PartnerKeyError as exc:
            self.fail(str(exc), "encryption", "public_key")
