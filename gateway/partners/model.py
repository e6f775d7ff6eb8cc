"""A partner as the gateway holds it: what a partner file (`partners/<id>.toml`, CONTRACT §2)
may say — its keys and the allowlists of its values — and the frozen records it becomes
(`Partner` with its auth, encryption and operations), what is known of a partner besides
its file (`Suspension`, `SuspensionEvent`, `PartnerState`), and the live table a reload
swaps whole (`LiveTable`).

Reading a file into these records is `gateway.partners.loader`; a partner's public key
file is read by `gateway.partners.keyfile`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, TypeVar

from gateway.config.limits import LIMIT_KEYS, Rate
from gateway.config.tomlfile import line_of
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.partners.keyfile import AcknowledgementKey

# The operation erasure and rectification notices go to (gateway.rights.subjects), and
# consent-withdrawal notices unless a partner file names another (`notice_operation`).
ERASURE_OPERATION: Final = "erasure"

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
# What a partner answers besides its reply (CONTRACT §2): "none", or "jws" — a signed
# receipt of what it received (gateway.crypto.acknowledgement).
ACKNOWLEDGEMENTS = ("none", "jws")
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
    "notice_operation": "the operation consent-withdrawal notices go to (default: erasure)",
    "ca_bundle": "PEM file of CAs to trust for this partner's TLS (instead of the system store)",
    "acknowledgement": "none | jws: the partner signs a receipt of what it received",
    "acknowledgement_key": "JWK or JWKS file of the partner's public signing key (Ed25519 or "
    "P-256) its acknowledgements verify with",
    "forward_trace_context": "true | false (default): send the W3C traceparent of the "
    "disclosure's trace to this partner when tracing is on",
    **LIMIT_KEYS,
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
    # "jws": every reply must carry the partner's signed receipt (gateway.crypto.acknowledgement).
    acknowledgement: str = "none"
    acknowledgement_key: Path | None = None
    # True: its requests carry the disclosure's W3C `traceparent` (gateway.observe.tracing);
    # by default a partner learns nothing of the company's traces.
    forward_trace_context: bool = False
    # Where a consent-withdrawal notice goes (gateway.rights.withdrawal); None: `erasure`.
    notice_operation: str | None = None
    # Load limits protecting the partner, per gateway instance (gateway.disclosure.limits):
    # over them a disclosure is answered 429 at once; None: no limit (the default).
    max_in_flight: int | None = None
    rate: Rate | None = None
    # The keys of `acknowledgement_key`, parsed once at load (empty when not checked).
    acknowledgement_keys: tuple[AcknowledgementKey, ...] = field(
        default=(), compare=False, repr=False
    )
    source: str = field(default="", compare=False)
    # The line of each key path in `source` (gateway.config.tomlfile), so a problem found after
    # loading (a secret not set, a file unreadable) still says `file:line`.
    lines: Mapping[tuple[str | int, ...], int] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    @property
    def notice_operations(self) -> frozenset[str]:
        """The operations the gateway's own notices go through (erasure and rectification
        through `erasure`, consent withdrawal through `notice_operation`): their fields
        serve rights a subject may exercise any day, so a window without such a notice says
        nothing about whether they are needed."""
        return frozenset({ERASURE_OPERATION, self.notice_operation or ERASURE_OPERATION})

    def error(self, message: str, *key: str | int) -> ConfigError:
        """A problem of this partner's file at the line of `key` (its table's header when the
        key itself is missing; the file's first line when nothing of it is there)."""
        return ConfigError(self.source or self.id, file_line(self.lines, key), message)


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


def file_line(lines: Mapping[tuple[str | int, ...], int], key: tuple[str | int, ...]) -> int:
    """Line of the longest known prefix of `key`: a missing key points at its table's
    header, and a missing top-level key or table at line 1 (the top-level table has no
    header), so every problem of a partner file carries a line."""
    return line_of(lines, key) or 1
