"""Partner onboarding files (`partners/<id>.toml`, CONTRACT §2) → validated Partner objects.

The privacy team writes these files; the gateway refuses to start with a
broken one. Every refusal is `file:line: what is wrong — what would be valid`,
and all problems in a directory are reported together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode

from gateway import vocabulary as v
from gateway.config.tomlfile import TomlDocument, load
from gateway.errors import ConfigError, ConfigErrors
from gateway.net import is_https_or_loopback_http, is_loopback_host

PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
JURISDICTION = re.compile(r"^[A-Z]{2}$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

AUTH_TYPES = ("none", "api_key", "oauth2_client_credentials", "mtls")
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
KEY_ALGS = ("RSA-OAEP-256", "ECDH-ES+A256KW", "ECDH-ES")
CONTENT_ENCS = ("A256GCM", "A192GCM", "A128GCM")
SIGN_ALGS = ("ES256", "Ed25519", "PS256")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
KTY_FOR_ALG = {"RSA-OAEP-256": ("RSA",), "ECDH-ES+A256KW": ("EC", "OKP"), "ECDH-ES": ("EC", "OKP")}

TOP_KEYS = {
    "name": "display name",
    "category": "one of the partner categories",
    "jurisdiction": "ISO 3166-1 alpha-2 country",
    "agreement": "data-processing agreement reference",
    "agreement_expires_on": "TOML date (no quotes) after which nothing more is disclosed",
    "base_url": "https URL (http only on loopback)",
    "retention_days": "days the partner keeps data",
    "timeout_s": "seconds per attempt",
    "max_attempts": "attempts for retryable failures",
    "privacy_contact": "who to write to for manual erasure",
    "ca_bundle": "PEM file of CAs to trust for this partner's TLS (instead of the system store)",
    "auth": "table",
    "encryption": "table",
    "operations": "table of operations",
}
AUTH_KEYS = {
    "type",
    "header",
    "key_env",
    "key_file",
    "token_url",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "scope",
    "token_endpoint_auth_method",
    "private_key_file",
    "cert_file",
    "cert_key_file",
}
ENCRYPTION_KEYS = {"public_key", "public_key_url", "alg", "enc", "sign_alg"}
OPERATION_KEYS = {"method", "path", "purposes", "legal_bases", "fields"}
# Keys that would hold a secret inline; they must come from *_env or *_file.
INLINE_SECRETS = {"client_secret", "api_key", "key", "password", "token", "secret", "private_key"}


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable or a file, never the TOML itself."""

    env: str | None = None
    file: Path | None = None


@dataclass(frozen=True)
class PartnerAuth:
    type: str
    header: str = "X-Api-Key"
    key: SecretRef | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretRef | None = None
    scope: str | None = None
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name
    private_key_file: Path | None = None
    cert_file: Path | None = None
    cert_key_file: Path | None = None


@dataclass(frozen=True)
class PartnerEncryption:
    alg: str
    enc: str
    sign_alg: str
    public_key: Path | None
    public_key_url: str | None


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    purposes: frozenset[str]
    legal_bases: frozenset[str]
    fields: Mapping[str, str]  # field name -> transform


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    category: str
    jurisdiction: str
    agreement: str
    base_url: str
    retention_days: int
    timeout_s: float
    max_attempts: int
    privacy_contact: str | None
    auth: PartnerAuth
    encryption: PartnerEncryption
    operations: Mapping[str, Operation]
    ca_bundle: Path | None = None
    # The last day (UTC) the data-processing agreement covers; None: open-ended.
    agreement_expires_on: date | None = None
    source: str = field(default="", compare=False)
    # The line of each key path in `source` (gateway.config.tomlfile), so a problem found after
    # loading (a secret not set, a file unreadable) still says `file:line`.
    lines: Mapping[tuple[str | int, ...], int] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    def error(self, message: str, *key: str | int) -> ConfigError:
        """A problem of this partner's file at the line of `key` (its table's header when the
        key itself is missing; the file's first line when nothing of it is there)."""
        return ConfigError(self.source or self.id, _line_of(self.lines, key), message)


@dataclass(frozen=True)
class Suspension:
    """A partner suspended by a person: no disclosure goes to it until resumed."""

    partner_id: str
    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class SuspensionEvent:
    """One suspend or resume of a partner, as kept in the history (never rewritten)."""

    seq: int
    partner_id: str
    action: str  # "suspend" | "resume"
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class PartnerState:
    """What `policy.decide()` knows about a partner besides its file, read per request.

    `keys_expire_at` is when the last of the partner's usable encryption keys
    expires (None: a key never expires, or nothing is known yet).
    """

    suspension: Suspension | None = None
    keys_expire_at: datetime | None = None


NO_PARTNER_STATE = PartnerState()


# -- partner key files ------------------------------------------------------------------
# One reader for a partner's public encryption keys, whoever asks: the loader (a refusal
# at the partner file's `public_key` line), the key cache that seals (internal_error) and
# partner standing (key expiry; None when unreadable, since the loader reports it). The
# same document is accepted or refused the same way by all three; a fetched JWKS
# (`public_key_url`) goes through the same parser.

PublicKey = ECKey | OKPKey | RSAKey
KEY_CLASSES: Final[dict[str, type[PublicKey]]] = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
MIN_RSA_BITS: Final = 2048
# Members only a private or symmetric JWK has: a partner publishes public halves only.
_SECRET_MEMBERS: Final = ("d", "p", "k")


class PartnerKeyError(ValueError):
    """A partner key document the gateway cannot encrypt to. The message names the
    document and says what is wrong and what would fix it; it never quotes key material."""


@dataclass(frozen=True)
class PartnerKey:
    """A partner's public encryption key, parsed once."""

    key: PublicKey
    kid: str | None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def read_partner_key_file(
    path: Path, *, alg: str | None = None, shown: str | None = None
) -> list[PartnerKey]:
    """Every usable encryption key in the JWK or JWKS file at `path` (see
    `parse_partner_keys` for what is refused); PartnerKeyError otherwise. `shown`: the
    path as the partner file writes it, used in messages (the resolved path when absent)."""
    where = f"public key file {shown or str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        resolved = f" (resolved to {path})" if shown and shown != str(path) else ""
        raise PartnerKeyError(
            f"{where} not found{resolved}; put the partner's public JWK there, or run "
            "'gateway keys generate' for a sandbox partner on loopback"
        ) from exc
    except OSError as exc:
        raise PartnerKeyError(
            f"{where} cannot be read ({exc.__class__.__name__}); check it is a readable file"
        ) from exc
    except ValueError as exc:  # not UTF-8
        raise PartnerKeyError(f"{where} is not a JSON JWK/JWKS ({exc.__class__.__name__})") from exc
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PartnerKeyError(f"{where} is not a JSON JWK/JWKS ({exc.__class__.__name__})") from exc
    return parse_partner_keys(doc, where, alg=alg)


def parse_partner_keys(doc: object, where: str, *, alg: str | None = None) -> list[PartnerKey]:
    """Every usable encryption key in a JWK or JWKS document (`where` names it in messages).

    Keys for another use, or of a type that does not fit `alg`, are skipped: a JWKS may
    carry them. PartnerKeyError for a document holding a private or symmetric key — a
    partner key document must only ever hold public halves — or no usable key.
    """
    members = doc.get("keys") if isinstance(doc, dict) and "keys" in doc else [doc]
    if (
        not isinstance(members, list)
        or not members
        or not all(isinstance(m, dict) for m in members)
    ):
        raise PartnerKeyError(
            f'{where} holds no JWK: expected a JWK object or a JWKS {{"keys": [...]}}'
        )
    if any(name in m for m in members for name in _SECRET_MEMBERS):
        raise PartnerKeyError(
            f"{where} holds a PRIVATE key: a partner publishes only the public half of its "
            f"key (no private or symmetric key members {', '.join(_SECRET_MEMBERS)})"
        )
    kinds = KTY_FOR_ALG.get(alg, ("EC", "OKP", "RSA")) if alg else ("EC", "OKP", "RSA")
    for_encryption = [m for m in members if m.get("use", "enc") == "enc"]
    if not for_encryption:
        raise PartnerKeyError(
            f"{where} holds no encryption key: give the partner's encryption key use 'enc' "
            "(or no use)"
        )
    fitting = [m for m in for_encryption if m.get("kty") in kinds]
    if not fitting:
        found = ", ".join(sorted({_short(m.get("kty")) for m in for_encryption}))
        fits = f"does not fit alg {alg}" if alg else "cannot encrypt"
        raise PartnerKeyError(
            f"{where}: key type {found} {fits}; expected kty {' or '.join(kinds)}"
        )
    return [_parse_member(member, where) for member in fitting]


def _short(value: object, limit: int = 20) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_member(member: Mapping[str, Any], where: str) -> PartnerKey:
    kty = str(member["kty"])
    try:
        if kty == "RSA":
            # Checked before import: joserfc only warns about a short modulus.
            bits = int.from_bytes(
                urlsafe_b64decode(str(member.get("n", "")).encode("ascii"))
            ).bit_length()
            if bits < MIN_RSA_BITS:
                raise ValueError(f"RSA key of {bits} bits; need >= {MIN_RSA_BITS}")
        key = KEY_CLASSES[kty].import_key(dict(member))
    except (JoseError, ValueError, TypeError) as exc:
        raise PartnerKeyError(f"{where}: bad {kty} key ({exc})") from exc
    if isinstance(key, OKPKey) and key.curve_name not in ("X25519", "X448"):
        raise PartnerKeyError(f"{where}: OKP curve {key.curve_name} cannot encrypt; use X25519")
    exp = member.get("exp")
    expires = None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        expires = datetime.fromtimestamp(exp, UTC)
    kid = member.get("kid")
    return PartnerKey(key=key, kid=kid if isinstance(kid, str) else None, expires_at=expires)


def last_expiry(keys: list[PartnerKey]) -> datetime | None:
    """When the last of `keys` expires; None when one of them never does."""
    ends = [k.expires_at for k in keys]
    if not ends or any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)


V = TypeVar("V")


class LiveTable(Mapping[str, V]):
    """A read-only table that a reload replaces whole (`gateway partners reload`, SIGHUP).

    Readers that need several lookups to agree — one disclosure looks its partner
    up more than once — take `current` once and keep it: a swap never changes a
    table already taken, so an in-flight request finishes with the set it began with.
    """

    def __init__(self, values: Mapping[str, V]) -> None:
        self._current: Mapping[str, V] = MappingProxyType(dict(values))

    @property
    def current(self) -> Mapping[str, V]:
        return self._current

    def replace(self, values: Mapping[str, V]) -> None:
        # One reference assignment: a reader sees the old table or the new one, whole.
        self._current = MappingProxyType(dict(values))

    def __getitem__(self, key: str) -> V:
        return self._current[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)


def current(table: Mapping[str, V]) -> Mapping[str, V]:
    """The table in force now: `table.current` for a LiveTable, else `table` itself."""
    return table.current if isinstance(table, LiveTable) else table


def _line_of(lines: Mapping[tuple[str | int, ...], int], key: tuple[str | int, ...]) -> int:
    """Line of the longest known prefix of `key`: a missing key points at its table's
    header, and a missing top-level key or table at line 1 (the top-level table has no
    header), so every problem of a partner file carries a line."""
    for end in range(len(key), 0, -1):
        found = lines.get(tuple(key[:end]))
        if found is not None:
            return found
    return 1


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
    partners: dict[str, Partner] = {}
    errors: list[ConfigError] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            partner = load_partner(path, base, check_keys=check_keys)
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
        self.errors.append(ConfigError(self.doc.path, _line_of(self.doc.lines, key), message))

    def read(self) -> Partner:
        d = self.doc.data
        if not PARTNER_ID.match(self.id):
            self.fail(
                f"file name {self.id!r} is not a valid partner id: use lowercase letters, "
                "digits and '-' (e.g. lao-credit-bureau.toml)"
            )
        self._unknown_keys(d, TOP_KEYS.keys(), ())
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
        operations = self._operations(d.get("operations"), category)
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
            source=self.doc.path,
            lines=MappingProxyType(dict(self.doc.lines)),
        )

    # -- scalar readers: record an error and return a harmless placeholder --

    def _unknown_keys(
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
        self._unknown_keys(table, AUTH_KEYS, at)
        kind = self._choice(table, "type", AUTH_TYPES, at=at)
        if kind == "api_key":
            header = table.get("header", "X-Api-Key")
            if not isinstance(header, str) or not re.match(r"^[A-Za-z0-9-]+$", header):
                self.fail("'header' must be an HTTP header name", *at, "header")
                header = "X-Api-Key"
            return PartnerAuth(type=kind, header=header, key=self._secret(table, "key", at, True))
        if kind == "oauth2_client_credentials":
            token_url = self._string(table, "token_url", at=at)
            if token_url:
                parts = urlsplit(token_url)
                if not is_https_or_loopback_http(parts):
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
        self._unknown_keys(table, ENCRYPTION_KEYS, at)
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
            url = table["public_key_url"]
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or not is_https_or_loopback_http(parts):
                self.fail(
                    "public_key_url must be an https:// JWKS URL (http only on loopback)",
                    *at,
                    "public_key_url",
                )
                url = None
        return PartnerEncryption(alg, enc, sign_alg, path, url)

    def _check_key_file(self, path: Path, alg: str, shown: str) -> None:
        try:
            read_partner_key_file(path, alg=alg or None, shown=shown)
        except PartnerKeyError as exc:
            self.fail(str(exc), "encryption", "public_key")

    def _operations(self, table: object, category: str) -> dict[str, Operation]:
        if not isinstance(table, dict) or not table:
            self.fail("no operations: add at least one [operations.<name>] table")
            return {}
        operations: dict[str, Operation] = {}
        for name, op in table.items():
            at = ("operations", name)
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                self.fail(f"operation name {name!r}: use lowercase letters, digits, '_'", *at)
            if not isinstance(op, dict):
                self.fail(f"operations.{name} must be a table", *at)
                continue
            self._unknown_keys(op, OPERATION_KEYS, at)
            method = str(op.get("method", "POST")).upper()
            if method not in METHODS:
                self.fail(
                    f"method {op.get('method')!r} is not one of {', '.join(METHODS)}", *at, "method"
                )
            purposes = self._subset(op, "purposes", v.PURPOSES, at)
            bases = self._subset(op, "legal_bases", v.LEGAL_BASES, at)
            fields = self._fields(op.get("fields"), bases, at)
            path = self._op_path(op.get("path"), fields, at)
            if (
                "business_transfer" in bases
                and category
                and (category != "business_transfer_counterparty")
            ):
                # policy: III.4
                self.fail(
                    "legal basis 'business_transfer' is only for partners of category "
                    f"'business_transfer_counterparty', not {category!r}",
                    *at,
                    "legal_bases",
                )
            operations[name] = Operation(
                name, method, path, purposes, bases, MappingProxyType(fields)
            )
        return operations

    def _subset(
        self, op: Mapping[str, Any], key: str, choices: tuple[str, ...], at: tuple[str, ...]
    ) -> frozenset[str]:
        values = op.get(key)
        if not isinstance(values, list) or not values:
            self.fail(
                f"'{key}' must be a non-empty list; choose from: {', '.join(choices)}", *at, key
            )
            return frozenset()
        bad = [x for x in values if x not in choices]
        if bad:
            singular = {"purposes": "purpose", "legal_bases": "legal basis"}[key]
            self.fail(
                f"unknown {singular} {bad[0]!r}; valid: {', '.join(choices)}",
                *at,
                key,
            )
        return frozenset(x for x in values if x in choices)

    def _fields(self, table: object, bases: frozenset[str], at: tuple[str, ...]) -> dict[str, str]:
        if not isinstance(table, dict) or not table:
            self.fail("'fields' must be a non-empty table of field = \"transform\"", *at, "fields")
            return {}
        fields: dict[str, str] = {}
        for name, transform in table.items():
            where = (*at, "fields", name)
            if name in v.NEVER_DISCLOSED:
                # policy: I.1 — password never leaves, under any basis.
                self.fail(f"field '{name}' is never disclosable; remove it", *where)
                continue
            if name not in v.FIELDS:
                self.fail(
                    f"unknown field {name!r}; valid fields: "
                    f"{', '.join(sorted(v.FIELDS - v.NEVER_DISCLOSED))}",
                    *where,
                )
                continue
            if transform not in v.TRANSFORMS:
                self.fail(
                    f"unknown transform {transform!r} for '{name}'; valid: "
                    f"{', '.join(v.TRANSFORMS)}",
                    *where,
                )
                continue
            only_for = v.TRANSFORMS_ONLY_FOR.get(transform)
            if only_for is not None and name not in only_for:
                self.fail(
                    f"transform '{transform}' applies only to {', '.join(sorted(only_for))},"
                    f" not '{name}'",
                    *where,
                )
                continue
            if name == "payment_records" and transform not in v.CONTAINER_TRANSFORMS:
                self.fail(
                    'payment_records is a container: use "keep" or "drop" and list '
                    "its keys (amount, currency, card_token, transaction_id) with their "
                    "own transforms",
                    *where,
                )
                continue
            if name in v.SPECIAL_FIELDS and bases and "consent" not in bases:
                # policy: I.1 sensitive information only with consent.
                self.fail(
                    f"special-category field '{name}' needs 'consent' among legal_bases "
                    f"(it passes only with explicit consent); bases are "
                    f"{sorted(bases)}",
                    *where,
                )
                continue
            fields[name] = transform
        return fields

    def _op_path(self, value: object, fields: Mapping[str, str], at: tuple[str, ...]) -> str:
        if not isinstance(value, str) or not value.startswith("/"):
            self.fail("'path' must start with '/' (it is joined to base_url)", *at, "path")
            return "/"
        if "?" in value or "#" in value or "//" in value or ".." in value:
            self.fail("'path' must not hold '?', '#', '//' or '..'", *at, "path")
        for placeholder in PLACEHOLDER.findall(value):
            if fields.get(placeholder, "drop") == "drop":
                self.fail(
                    f"placeholder {{{placeholder}}} must be a field this operation sends "
                    f"(listed in fields and not dropped)",
                    *at,
                    "path",
                )
        return value
