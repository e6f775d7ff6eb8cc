"""config.toml (+ GATEWAY_<SECTION>_<KEY> environment overrides) → frozen Config (CONTRACT §3).

The only place that reads the configuration at start. Every problem is reported as
`config.toml:line: message` (or `GATEWAY_SERVER_PORT: message` for an override), all of
them at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from gateway import vocabulary as v
from gateway.config.env import SCALARS, TABLE_ARRAYS, apply_overrides, known_keys, read_overrides
from gateway.config.limits import LIMIT_KEYS, Rate, read_limits
from gateway.config.tomlfile import TomlDocument, load
from gateway.errors import ConfigError, ConfigErrors
from gateway.net import fetchable_url
from gateway.observe.app_log import ACCESS_LOGS, DEFAULT_ACCESS_LOG, AccessLog

POLICY_NOTICE_BUSINESS_DAYS = 7  # policy: VIII
MAX_WARN_DAYS = 3650
CALLER_TOKEN_ALGS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
# What an OpenID provider may sign ID tokens with: asymmetric only (never none or HS*, whose
# key would be the client secret every instance holds). RS256 is OIDC's mandatory default.
OIDC_ID_TOKEN_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
MAX_OIDC_CLAIM_VALUES = 200
MAX_PERSONAL_TOKEN_DAYS = 365
SECTIONS = {*SCALARS, *TABLE_ARRAYS}
# An https:// (or http://) URL or a urn: name: what a linked-data reader takes as an IRI.
ABSOLUTE_IRI: Final = re.compile(r"^(https?://[^\s/?#]+[^\s]*|urn:[a-z0-9][a-z0-9-]{0,31}:[^\s]+)$")


@dataclass(frozen=True)
class PolicyConfig:
    version: str
    notified_on: date
    effective_on: date
    min_consent_version: str


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    # Which requests get an application-log line (gateway.observe.app_log.ACCESS_LOGS).
    access_log: AccessLog = DEFAULT_ACCESS_LOG
    # TLS: when both are set the server speaks HTTPS; with a client CA, callers may also
    # authenticate with a client certificate whose subject CN is their caller id.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # The URL people reach the gateway at (behind a proxy); the review site's OpenID
    # Connect redirect URI is built on it. None: the address the browser used.
    public_url: str | None = None


@dataclass(frozen=True)
class OidcConfig:
    """[oidc]: the review site's sign-in through an OpenID provider (gateway.web.review.oidc)."""

    issuer: str  # discovery at {issuer}/.well-known/openid-configuration
    client_id: str
    # The client secret's source, read when the app is built (never inline in the file);
    # neither: a public client, proven by PKCE alone.
    client_secret_env: str | None
    client_secret_file: Path | None
    roles_claim: str  # the ID-token claim holding the person's groups
    roles: Mapping[str, frozenset[str]]  # a claim value -> gateway roles
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    # The break-glass for a provider that is down: `[[reviewers]]` password accounts sign in
    # (site and CLI) beside the provider. Off: the company's sign-on, MFA and leaver process
    # apply to everyone who acts, which a password in config.toml would escape.
    allow_passwords: bool = False
    # How long a personal API token may last: a person removed at the provider keeps the
    # ones they made until they expire (or `gateway tokens revoke --person`).
    personal_token_max_days: int = 90
    # The sign-in button's words ("Sign in with <name>"); None: the issuer's host.
    name: str | None = None

    def roles_of(self, values: object) -> frozenset[str]:
        """The gateway roles a claim's value grants (a string or a list of strings)."""
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            return frozenset()
        granted: set[str] = set()
        for value in values[:MAX_OIDC_CLAIM_VALUES]:
            if isinstance(value, str):
                granted |= self.roles.get(value, frozenset())
        return frozenset(granted)


@dataclass(frozen=True)
class NoticesConfig:
    """[notices]: the outbox of partner notices not accepted yet (gateway.rights.outbox)."""

    # Seconds from a failed attempt to the next; the last step repeats.
    retry_schedule_s: tuple[float, ...] = (60, 300, 1800, 7200, 21600, 43200)
    # After this many days since the first attempt a notice is given up: `failed`, shown.
    max_age_days: int = 7
    # How often each instance looks for due notices.
    interval_s: float = 30.0


@dataclass(frozen=True)
class AuthConfig:
    issuer: str
    audience: str
    jwks: Path | None
    jwks_url: str | None
    algorithms: tuple[str, ...] = ("ES256", "Ed25519")


@dataclass(frozen=True)
class Caller:
    """An internal service and what it may do (policy VI: need-to-know)."""

    id: str
    roles: frozenset[str]
    partners: frozenset[str]
    purposes: frozenset[str]
    operations: frozenset[str] = frozenset({"*"})
    # Load limits, per gateway instance (gateway.disclosure.limits), so a compromised
    # service cannot drain its allowlist at full speed: over them, 429 at once.
    max_in_flight: int | None = None
    rate: Rate | None = None

    def may_use_partner(self, partner: str) -> bool:
        return "*" in self.partners or partner in self.partners

    def may_use_operation(self, partner: str, operation: str) -> bool:
        ops = self.operations
        return "*" in ops or operation in ops or f"{partner}/{operation}" in ops

    def may_use_purpose(self, purpose: str) -> bool:
        return "*" in self.purposes or purpose in self.purposes


@dataclass(frozen=True)
class Reviewer:
    id: str
    name: str
    password_hash: str


@dataclass(frozen=True)
class LogConfig:
    origin: str = "gateway.kokkok.example/disclosures"
    # A checkpoint follows an append within about this long (at most one per interval).
    checkpoint_interval_s: float = 1.0
    # An instance whose heartbeat is older than this is presumed dead: another instance
    # then marks its in-flight disclosures `unknown` (gateway.log.recovery).
    instance_timeout_s: float = 15.0
    # The C2SP tlog-policy file naming the witnesses and the quorum (gateway.log.witness_policy,
    # checked at start by gateway.ops.preflight); None: checkpoints are not witnessed.
    witness_policy: Path | None = None
    # Log entries waiting for their commit beyond which a new disclosure is refused at once
    # (503 log_overloaded, nothing logged) instead of queueing behind a stalled store: far
    # above what a healthy store ever holds (a batch is at most 512), so it only bites when
    # commits stop keeping up (gateway.disclosure.limits).
    max_pending_appends: int = 10_000


MAX_PENDING_APPENDS_RANGE: Final = (1, 10_000_000)


@dataclass(frozen=True)
class RetentionConfig:
    """How long rows that only grow are kept (gateway.ops.retention); checkpoints and the
    disclosure log are kept forever."""

    # An instance's row, once the instance retired or was recovered (README: retention).
    instances_days: float = 7.0
    # A completed Idempotency-Key, from its first request: the replay window (CONTRACT §4.1).
    idempotency_hours: float = 24.0
    # A notice a partner accepted, from its delivery: the log keeps its intent and
    # outcome forever; the outbox row only served the retries.
    sent_notices_days: float = 30.0

    @property
    def instances(self) -> timedelta:
        return timedelta(days=self.instances_days)

    @property
    def idempotency_keys(self) -> timedelta:
        return timedelta(hours=self.idempotency_hours)

    @property
    def sent_notices(self) -> timedelta:
        return timedelta(days=self.sent_notices_days)


# Bounds of [retention]: an idempotency key is kept at least an hour (a caller's retries
# must meet it), at most a year; a recovered instance's row from a day to ten years.
RETENTION_BOUNDS: Final = {
    "instances_days": (1.0, 3650.0, "days"),
    "idempotency_hours": (1.0, 8760.0, "hours"),
    "sent_notices_days": (1.0, 3650.0, "days"),
}


@dataclass(frozen=True)
class ControllerConfig:
    """[controller]: the data controller a consent record names (GET /v1/subjects/{id}/consents
    as DPV JSON-LD: dpv:hasDataController). The defaults are the company of the policy the
    gateway enforces (docs/policy/privacy-policy.txt, its first paragraph)."""

    name: str = "Lao Smart Mobility Co., Ltd"
    # An absolute IRI that identifies the controller in linked data (its web site will do).
    iri: str = "https://kokkok.example/"


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path  # relative paths in config and partner files resolve against this
    server: ServerConfig
    storage_url: str
    keys_dir: Path
    partners_dir: Path
    log: LogConfig
    policy: PolicyConfig
    auth: AuthConfig
    callers: Mapping[str, Caller]
    reviewers: Mapping[str, Reviewer]
    # [partners] warn_days: how many days before an agreement (or a partner key) expires
    # `gateway partners list/validate` and the application log start warning.
    partner_warn_days: int = 30
    # [sandbox] serve: `gateway serve` also runs the loopback sandbox partners (development
    # configs only: gateway.sandbox.dev starts none when a partner is not on loopback).
    sandbox_serve: bool = False
    # [retention]: how long the rows of instances and idempotency keys are kept.
    retention: RetentionConfig = RetentionConfig()
    notices: NoticesConfig = NoticesConfig()
    controller: ControllerConfig = ControllerConfig()
    # [oidc]: people sign in to the review site through this provider; None: passwords.
    oidc: OidcConfig | None = None

    @property
    def passwords_on(self) -> bool:
        """Whether `[[reviewers]]` passwords prove anyone: without a provider, or with its
        break-glass `[oidc] allow_passwords = true`."""
        return self.oidc is None or self.oidc.allow_passwords


def business_days_between(start: date, end: date) -> int:
    """Weekdays after `start` up to and including `end` (public holidays not counted)."""
    days = 0
    current = start
    while current < end:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days += 1
    return days


@dataclass(frozen=True)
class SourcedConfig:
    """A Config and the document it was read from, which knows where each value came from."""

    config: Config
    document: TomlDocument


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read `path` with the GATEWAY_<SECTION>_<KEY> overrides of `environ` (default: os.environ)."""
    return load_config_sourced(path, environ).config


def load_config_sourced(path: Path, environ: Mapping[str, str] | None = None) -> SourcedConfig:
    doc = load(path)
    overrides, errors = read_overrides(os.environ if environ is None else environ)
    errors += apply_overrides(doc, overrides)
    reader = _ConfigReader(doc, path.resolve().parent)
    reader.errors.extend(errors)
    return SourcedConfig(reader.read(path), doc)


class _ConfigReader:
    def __init__(self, doc: TomlDocument, root: Path) -> None:
        self.doc = doc
        self.root = root
        self.errors: list[ConfigError] = []

    def fail(self, message: str, *key: str | int) -> None:
        self.errors.append(self.doc.error(message, *key))

    def table(self, name: str) -> dict[str, Any]:
        value = self.doc.data.get(name, {})
        if not isinstance(value, dict):
            self.fail(f"'{name}' must be a table [{name}]", name)
            return {}
        return value

    def keys(self, table: Mapping[str, Any], known: frozenset[str], *at: str | int) -> None:
        for key in table:
            if key not in known:
                if "secret" in key or "password" == key:
                    self.fail(
                        f"'{key}' would put a secret inline; use '{key}_env' or '{key}_file'",
                        *at,
                        key,
                    )
                else:
                    self.fail(f"unknown key '{key}'; valid: {', '.join(sorted(known))}", *at, key)

    def path(self, value: object, *key: str | int) -> Path:
        if not isinstance(value, str) or not value:
            self.fail(f"'{key[-1]}' must be a path", *key)
            return self.root
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    def read(self, path: Path) -> Config:
        for key in self.doc.data:
            if key not in SECTIONS:
                self.fail(f"unknown section '{key}'; valid: {', '.join(sorted(SECTIONS))}", key)
        server = self._server()
        storage = self.table("storage")
        self.keys(storage, known_keys("storage"), "storage")
        storage_url = storage.get("url", "sqlite:///var/gateway.db")
        if not isinstance(storage_url, str) or not (
            storage_url.startswith("sqlite:///") or storage_url.startswith("postgresql://")
        ):
            self.fail("storage.url must be sqlite:///PATH or postgresql://…", "storage", "url")
            storage_url = "sqlite:///var/gateway.db"
        keys = self.table("keys")
        self.keys(keys, known_keys("keys"), "keys")
        partners = self.table("partners")
        self.keys(partners, known_keys("partners"), "partners")
        warn_days = partners.get("warn_days", Config.partner_warn_days)
        if (
            isinstance(warn_days, bool)
            or not isinstance(warn_days, int)
            or not (0 <= warn_days <= MAX_WARN_DAYS)
        ):
            self.fail(
                f"partners.warn_days must be a whole number of days from 0 to {MAX_WARN_DAYS} "
                f"(how early to warn before an agreement expires), got {warn_days!r}",
                "partners",
                "warn_days",
            )
            warn_days = Config.partner_warn_days
        sandbox = self.table("sandbox")
        self.keys(sandbox, known_keys("sandbox"), "sandbox")
        if not isinstance(sandbox.get("serve", False), bool):
            self.fail("sandbox.serve must be true or false", "sandbox", "serve")
        notices = self._notices()
        log = self._log()
        retention = self._retention()
        policy = self._policy()
        auth = self._auth()
        callers = self._callers()
        reviewers = self._reviewers()
        controller = self._controller()
        # An empty [oidc] (as `gateway config show` writes an unset one) names no provider.
        oidc = self._oidc() if self.doc.data.get("oidc") else None
        if self.errors:
            raise ConfigErrors(self.errors)
        return Config(
            path=path,
            root=self.root,
            server=server,
            storage_url=storage_url,
            keys_dir=self.path(keys.get("dir", "keys"), "keys", "dir"),
            partners_dir=self.path(partners.get("dir", "partners"), "partners", "dir"),
            log=log,
            policy=policy,
            auth=auth,
            callers=callers,
            reviewers=reviewers,
            partner_warn_days=warn_days,
            sandbox_serve=sandbox.get("serve") is True,
            retention=retention,
            notices=notices,
            controller=controller,
            oidc=oidc,
        )

    def _controller(self) -> ControllerConfig:
        t = self.table("controller")
        self.keys(t, known_keys("controller"), "controller")
        default = ControllerConfig()
        name = t.get("name", default.name)
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\n" in name:
            self.fail(
                "controller.name must be the data controller's legal name on one line "
                "(1 to 200 characters)",
                "controller",
                "name",
            )
            name = default.name
        iri = t.get("iri", default.iri)
        if not isinstance(iri, str) or not ABSOLUTE_IRI.match(iri):
            self.fail(
                "controller.iri must be an absolute IRI without spaces that names the data "
                "controller, e.g. https://company.example/",
                "controller",
                "iri",
            )
            iri = default.iri
        return ControllerConfig(name, iri)

    def _notices(self) -> NoticesConfig:
        t = self.table("notices")
        self.keys(t, known_keys("notices"), "notices")
        default = NoticesConfig()
        schedule = t.get("retry_schedule_s", list(default.retry_schedule_s))
        if (
            not isinstance(schedule, list)
            or not schedule
            or not all(
                isinstance(s, int | float) and not isinstance(s, bool) and s > 0 for s in schedule
            )
        ):
            self.fail(
                "notices.retry_schedule_s must be a non-empty list of positive seconds "
                "(e.g. [60, 300, 1800, 7200, 21600, 43200]; the last step repeats)",
                "notices",
                "retry_schedule_s",
            )
            schedule = list(default.retry_schedule_s)
        max_age = t.get("max_age_days", default.max_age_days)
        if isinstance(max_age, bool) or not isinstance(max_age, int) or not 1 <= max_age <= 365:
            self.fail(
                f"notices.max_age_days must be a whole number of days from 1 to 365 (how long "
                f"a notice is retried before it stays failed), got {max_age!r}",
                "notices",
                "max_age_days",
            )
            max_age = default.max_age_days
        interval = t.get("interval_s", default.interval_s)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            self.fail(
                "notices.interval_s must be a positive number of seconds", "notices", "interval_s"
            )
            interval = default.interval_s
        return NoticesConfig(tuple(float(s) for s in schedule), max_age, float(interval))

    def _server(self) -> ServerConfig:
        t = self.table("server")
        tls_keys = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
        self.keys(t, known_keys("server"), "server")
        defaults = ServerConfig()
        host = t.get("host", defaults.host)
        if not isinstance(host, str) or not host:
            self.fail("server.host must be a host name or address", "server", "host")
            host = defaults.host
        numbers: dict[str, int] = {}
        for key, low, high in (
            ("port", 0, 65535),
            ("max_body_bytes", 1024, 1 << 30),
            ("max_json_depth", 2, 1000),
        ):
            value = t.get(key, getattr(defaults, key))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                self.fail(
                    f"server.{key} must be a whole number from {low} to {high}", "server", key
                )
                value = getattr(defaults, key)
            numbers[key] = value
        access_log = t.get("access_log", defaults.access_log)
        if access_log not in ACCESS_LOGS:
            self.fail(
                f"server.access_log must be one of {', '.join(ACCESS_LOGS)} (which requests "
                "get an application-log line)",
                "server",
                "access_log",
            )
            access_log = defaults.access_log
        tls = {key: self.path(t[key], "server", key) for key in tls_keys if key in t}
        if ("tls_cert_file" in tls) != ("tls_key_file" in tls):
            self.fail("server.tls_cert_file and server.tls_key_file go together", "server")
        if "tls_client_ca_file" in tls and "tls_cert_file" not in tls:
            self.fail(
                "server.tls_client_ca_file (mTLS callers) needs TLS: set tls_cert_file "
                "and tls_key_file",
                "server",
                "tls_client_ca_file",
            )
        public_url = t.get("public_url")
        if public_url is not None and (
            not isinstance(public_url, str)
            or fetchable_url(public_url) is None
            or urlsplit(public_url).path.strip("/")
            or urlsplit(public_url).query
        ):
            self.fail(
                "server.public_url must be the https:// origin people reach the gateway at "
                "(http:// only on loopback), without a path, e.g. https://gateway.example.com",
                "server",
                "public_url",
            )
            public_url = None
        return ServerConfig(
            host=host,
            public_url=public_url.rstrip("/") if public_url else None,
            port=numbers["port"],
            max_body_bytes=numbers["max_body_bytes"],
            max_json_depth=numbers["max_json_depth"],
            access_log=access_log,
            tls_cert_file=tls.get("tls_cert_file"),
            tls_key_file=tls.get("tls_key_file"),
            tls_client_ca_file=tls.get("tls_client_ca_file"),
        )

    def _log(self) -> LogConfig:
        t = self.table("log")
        self.keys(t, known_keys("log"), "log")
        origin = t.get("origin", LogConfig.origin)
        if not isinstance(origin, str) or not origin or "\n" in origin:
            self.fail(
                "log.origin must be a one-line name (e.g. gateway.example/disclosures)",
                "log",
                "origin",
            )
            origin = LogConfig.origin
        interval = t.get("checkpoint_interval_s", LogConfig.checkpoint_interval_s)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            self.fail(
                "log.checkpoint_interval_s must be a positive number",
                "log",
                "checkpoint_interval_s",
            )
            interval = LogConfig.checkpoint_interval_s
        timeout = t.get("instance_timeout_s", LogConfig.instance_timeout_s)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0.5 <= timeout <= 3600
        ):
            self.fail(
                "log.instance_timeout_s must be a number of seconds from 0.5 to 3600 (how long "
                "an instance may go without a heartbeat before it is presumed dead)",
                "log",
                "instance_timeout_s",
            )
            timeout = LogConfig.instance_timeout_s
        policy = t.get("witness_policy")
        return LogConfig(
            origin=origin,
            checkpoint_interval_s=float(interval),
            instance_timeout_s=float(timeout),
            max_pending_appends=self._max_pending_appends(t),
            witness_policy=None if policy is None else self.path(policy, "log", "witness_policy"),
        )

    def _max_pending_appends(self, t: Mapping[str, Any]) -> int:
        value = t.get("max_pending_appends", LogConfig.max_pending_appends)
        low, high = MAX_PENDING_APPENDS_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(
                f"log.max_pending_appends must be a whole number from {low} to {high} (log "
                f"entries waiting for their commit before new disclosures are refused with "
                f"503 log_overloaded), got {value!r}",
                "log",
                "max_pending_appends",
            )
            return LogConfig.max_pending_appends
        return value

    def _retention(self) -> RetentionConfig:
        t = self.table("retention")
        self.keys(t, known_keys("retention"), "retention")
        values: dict[str, float] = {}
        for key, (low, high, unit) in RETENTION_BOUNDS.items():
            value = t.get(key, getattr(RetentionConfig, key))
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not low <= value <= high
            ):
                self.fail(
                    f"retention.{key} must be a number of {unit} from {low:g} to {high:g}, "
                    f"got {value!r}",
                    "retention",
                    key,
                )
                value = getattr(RetentionConfig, key)
            values[key] = float(value)
        return RetentionConfig(**values)

    def _policy(self) -> PolicyConfig:
        t = self.doc.data.get("policy")
        fallback = PolicyConfig("1970-01-01", date(1970, 1, 1), date(1970, 1, 1), "1970-01-01")
        if not isinstance(t, dict):
            self.fail(
                "missing [policy] table (version, notified_on, effective_on, min_consent_version)"
            )
            return fallback
        self.keys(t, known_keys("policy"), "policy")
        versions: dict[str, str] = {}
        for key in ("version", "min_consent_version"):
            value = t.get(key)
            if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
                self.fail(
                    f'policy.{key} must be the policy\'s update date as "YYYY-MM-DD"', "policy", key
                )
                value = fallback.version
            versions[key] = value
        dates: dict[str, date] = {}
        for key in ("notified_on", "effective_on"):
            value = t.get(key)
            if not isinstance(value, date) or hasattr(value, "hour"):
                self.fail(
                    f"policy.{key} must be a TOML date such as 2024-09-19 (no quotes)",
                    "policy",
                    key,
                )
                value = fallback.notified_on
            dates[key] = value
        if versions["min_consent_version"] > versions["version"]:
            self.fail(
                f"policy.min_consent_version {versions['min_consent_version']} is newer than "
                f"policy.version {versions['version']}: no consent could meet it; set it to "
                "policy.version or earlier (consents given under an earlier version lapse)",
                "policy",
                "min_consent_version",
            )
        notice = business_days_between(dates["notified_on"], dates["effective_on"])
        if "notified_on" in t and "effective_on" in t and notice < POLICY_NOTICE_BUSINESS_DAYS:
            # policy: VIII — users must be told at least 7 business days ahead.
            earliest = dates["notified_on"]
            while business_days_between(dates["notified_on"], earliest) < 7:
                earliest += timedelta(days=1)
            self.fail(
                f"policy.effective_on {dates['effective_on']} is {notice} business day(s) after "
                f"notified_on {dates['notified_on']}; policy VIII needs at least "
                f"{POLICY_NOTICE_BUSINESS_DAYS}: the earliest valid effective_on is {earliest}",
                "policy",
                "effective_on",
            )
        return PolicyConfig(
            versions["version"],
            dates["notified_on"],
            dates["effective_on"],
            versions["min_consent_version"],
        )

    def _auth(self) -> AuthConfig:
        t = self.table("auth")
        self.keys(t, known_keys("auth"), "auth")
        issuer, audience = t.get("issuer"), t.get("audience")
        for key, value in (("issuer", issuer), ("audience", audience)):
            if not isinstance(value, str) or not value:
                self.fail(
                    f"auth.{key} must be set (expected '{'iss' if key == 'issuer' else 'aud'}'"
                    " of caller tokens)",
                    "auth",
                    key,
                )
        jwks: Path | None = None
        jwks_url: str | None = None
        if ("jwks" in t) == ("jwks_url" in t):
            hint = ""
            if {("auth", "jwks"), ("auth", "jwks_url")} & self.doc.overridden.keys():
                hint = " (an empty GATEWAY_AUTH_JWKS= or GATEWAY_AUTH_JWKS_URL= drops the file's)"
            self.fail(f"give exactly one of auth.jwks (a JWKS file) or auth.jwks_url{hint}", "auth")
        elif "jwks" in t:
            jwks = self.path(t["jwks"], "auth", "jwks")
        else:
            jwks_url = fetchable_url(t["jwks_url"])
            if jwks_url is None:
                self.fail(
                    "auth.jwks_url must be an https:// URL (http only on loopback)",
                    "auth",
                    "jwks_url",
                )
        algs = t.get("algorithms", list(AuthConfig.algorithms))
        if not isinstance(algs, list) or not algs or any(a not in CALLER_TOKEN_ALGS for a in algs):
            self.fail(
                f"auth.algorithms must be a non-empty list from "
                f"{', '.join(CALLER_TOKEN_ALGS)} (never none or HS*)",
                "auth",
                "algorithms",
            )
            algs = list(AuthConfig.algorithms)
        return AuthConfig(str(issuer or ""), str(audience or ""), jwks, jwks_url, tuple(algs))

    def _list_of_tables(self, name: str) -> list[dict[str, Any]]:
        value = self.doc.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            self.fail(f"'{name}' must be written as [[{name}]] tables", name)
            return []
        return value

    def _names(
        self,
        t: Mapping[str, Any],
        key: str,
        choices: tuple[str, ...] | None,
        at: tuple[str | int, ...],
        *,
        star: bool,
    ) -> frozenset[str]:
        values = t.get(key, ["*"] if key == "operations" else None)
        if not isinstance(values, list) or not all(isinstance(x, str) for x in values):
            self.fail(f"'{key}' must be a list of strings", *at, key)
            return frozenset()
        if choices is not None:
            valid = (*choices, "*") if star else choices
            bad = [x for x in values if x not in valid]
            if bad:
                self.fail(
                    f"unknown {key.rstrip('s')} {bad[0]!r}; valid: {', '.join(valid)}", *at, key
                )
        return frozenset(values)

    def _callers(self) -> dict[str, Caller]:
        callers: dict[str, Caller] = {}
        for i, t in enumerate(self._list_of_tables("callers")):
            at = ("callers", i)
            known = frozenset({"id", "roles", "partners", "purposes", "operations", *LIMIT_KEYS})
            self.keys(t, known, *at)
            caller_id = t.get("id")
            if not isinstance(caller_id, str) or not caller_id:
                self.fail("caller needs an 'id' (the `sub` of its token)", *at)
                continue
            if caller_id in callers:
                self.fail(f"caller id {caller_id!r} is listed twice", *at, "id")
            limits = read_limits(t, self.fail, *at)
            callers[caller_id] = Caller(
                id=caller_id,
                roles=self._names(t, "roles", v.ROLES, at, star=False),
                partners=self._names(t, "partners", None, at, star=True),
                purposes=self._names(t, "purposes", v.PURPOSES, at, star=True),
                operations=self._names(t, "operations", None, at, star=True),
                max_in_flight=limits.max_in_flight,
                rate=limits.rate,
            )
        return callers

    def _reviewers(self) -> dict[str, Reviewer]:
        reviewers: dict[str, Reviewer] = {}
        for i, t in enumerate(self._list_of_tables("reviewers")):
            at = ("reviewers", i)
            self.keys(t, frozenset({"id", "name", "password_hash"}), *at)
            rid, name, hashed = t.get("id"), t.get("name"), t.get("password_hash")
            if not isinstance(rid, str) or not isinstance(name, str):
                self.fail("reviewer needs 'id' and 'name'", *at)
                continue
            if not isinstance(hashed, str) or not hashed.startswith(("$scrypt$", "$argon2")):
                self.fail(
                    "reviewer 'password_hash' must be an scrypt or argon2 hash (make one "
                    "with 'gateway reviewers add'); never a plaintext password",
                    *at,
                    "password_hash",
                )
                continue
            reviewers[rid] = Reviewer(rid, name, hashed)
        return reviewers

    def _oidc(self) -> OidcConfig:
        t = self.table("oidc")
        self.keys(t, known_keys("oidc") | {"roles"}, "oidc")
        texts: dict[str, str] = {}
        for key, meaning in (
            ("issuer", "the provider's issuer URL, e.g. https://login.example.com"),
            ("client_id", "the gateway's client id at the provider"),
            ("roles_claim", "the ID-token claim holding the person's groups, e.g. groups"),
        ):
            value = t.get(key)
            if not isinstance(value, str) or not value.strip():
                self.fail(f"oidc.{key} must be set: {meaning}", "oidc", key)
                value = ""
            texts[key] = value.strip()
        if texts["issuer"] and fetchable_url(texts["issuer"]) is None:
            self.fail(
                "oidc.issuer must be an https:// URL (http:// only on loopback)", "oidc", "issuer"
            )
        if "client_secret_env" in t and "client_secret_file" in t:
            self.fail(
                "give at most one of oidc.client_secret_env and oidc.client_secret_file "
                "(neither: a public client, PKCE only)",
                "oidc",
            )
        secret_env = t.get("client_secret_env")
        if secret_env is not None and (not isinstance(secret_env, str) or not secret_env):
            self.fail(
                "oidc.client_secret_env must name an environment variable",
                "oidc",
                "client_secret_env",
            )
            secret_env = None
        secret_file = t.get("client_secret_file")
        algs = t.get("algorithms", list(OidcConfig.algorithms))
        if not isinstance(algs, list) or not algs or any(a not in OIDC_ID_TOKEN_ALGS for a in algs):
            self.fail(
                f"oidc.algorithms must be a non-empty list from {', '.join(OIDC_ID_TOKEN_ALGS)} "
                "(never none or HS*)",
                "oidc",
                "algorithms",
            )
            algs = list(OidcConfig.algorithms)
        allow_passwords = t.get("allow_passwords", False)
        if not isinstance(allow_passwords, bool):
            self.fail(
                "oidc.allow_passwords must be true or false (true: the [[reviewers]] password "
                "accounts sign in beside the provider, a break-glass for when it is down)",
                "oidc",
                "allow_passwords",
            )
            allow_passwords = False
        max_days = t.get("personal_token_max_days", OidcConfig.personal_token_max_days)
        if (
            not isinstance(max_days, int)
            or isinstance(max_days, bool)
            or not 1 <= max_days <= MAX_PERSONAL_TOKEN_DAYS
        ):
            self.fail(
                "oidc.personal_token_max_days must be a whole number of days from 1 to "
                f"{MAX_PERSONAL_TOKEN_DAYS} (how long a personal API token may last), "
                f"got {max_days!r}",
                "oidc",
                "personal_token_max_days",
            )
            max_days = OidcConfig.personal_token_max_days
        name = t.get("name")
        if name is not None and (
            not isinstance(name, str) or not 1 <= len(name.strip()) <= 60 or "\n" in name
        ):
            self.fail(
                "oidc.name must be one line of 1 to 60 characters: the provider as the "
                'sign-in button names it, e.g. "Company sign-on" (default: the issuer\'s host)',
                "oidc",
                "name",
            )
            name = None
        return OidcConfig(
            name=None if name is None else name.strip(),
            issuer=texts["issuer"].rstrip("/"),
            client_id=texts["client_id"],
            client_secret_env=secret_env,
            client_secret_file=None
            if secret_file is None
            else self.path(secret_file, "oidc", "client_secret_file"),
            roles_claim=texts["roles_claim"],
            roles=self._oidc_roles(t.get("roles")),
            algorithms=tuple(algs),
            allow_passwords=allow_passwords,
            personal_token_max_days=max_days,
        )

    def _oidc_roles(self, table: object) -> dict[str, frozenset[str]]:
        if not isinstance(table, dict) or not table:
            self.fail(
                "[oidc.roles] must map at least one claim value to gateway roles, e.g. "
                '"privacy-reviewers" = ["reviewer"]',
                "oidc",
            )
            return {}
        roles: dict[str, frozenset[str]] = {}
        for value, granted in table.items():
            if (
                not isinstance(granted, list)
                or not granted
                or any(r not in v.ROLES for r in granted)
            ):
                self.fail(
                    f"oidc.roles.{value} must be a non-empty list of gateway roles from "
                    f"{', '.join(v.ROLES)}",
                    "oidc",
                    "roles",
                    value,
                )
                continue
            roles[value] = frozenset(granted)
        return roles
