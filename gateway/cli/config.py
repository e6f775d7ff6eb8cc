"""`gateway config show`: the effective configuration and where each value came from;
`gateway config validate`: whether `gateway serve` would start with it.

With environment overrides and defaults in play, an operator asks "which port does
this instance really use, and why?". Every value is printed with its source:
`config.toml:12`, the `GATEWAY_…` variable, or `default`. Secrets never appear: keys
that hold one are redacted, and so is a password inside a storage URL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from gateway.cli.support import EXIT_OK, Commands, add_command, add_group, load
from gateway.config.env import LISTS, SCALARS
from gateway.config.model import Config, load_config_sourced
from gateway.config.tomlfile import TomlDocument
from gateway.errors import ConfigError, ConfigErrors
from gateway.partners import load_partners

REDACTED: Final = "(redacted)"
# A key whose name says it holds a secret, a password hash or key material.
_SECRET_KEY = re.compile(r"secret|password|token|private|hash|credential", re.IGNORECASE)
# Keys whose name says "password" or "token" but whose value is a setting, never a secret.
_NOT_SECRET = frozenset({"allow_passwords", "personal_token_max_days"})
_SECRET_QUERY = re.compile(r"(?i)((?:password|secret|token|sslpassword)=)[^&]*")


def register(commands: Commands) -> None:
    group = add_group(commands, "config", "the effective configuration")
    show = add_command(
        group,
        "show",
        cmd_config_show,
        "print the effective config (config.toml + GATEWAY_<SECTION>_<KEY> + defaults), "
        "each value with its source; secrets redacted",
    )
    show.add_argument("--format", choices=("text", "json"), default="text", help="default text")
    add_command(
        group,
        "validate",
        cmd_config_validate,
        "check what `gateway serve` refuses to start with: config.toml, the partner files, "
        "the keys, the witness policy ([log] witness_policy), the [oidc] client secret and "
        "the OTEL_* variables; file:line for each problem",
    )


def cmd_config_show(args: argparse.Namespace) -> int:
    sourced = load_config_sourced(Path(args.config))
    shown = describe(sourced.config, sourced.document)
    if args.format == "json":
        print(json.dumps(shown, indent=2, default=str))
    else:
        print(as_text(shown))
    return EXIT_OK


def cmd_config_validate(args: argparse.Namespace) -> int:
    # Imported here: preflight brings the outbound stack, which `config show` does without.
    from gateway.ops.preflight import check_deployment

    config = load(args)
    partners = load_partners(config.partners_dir, config.root)
    problems: list[ConfigError] = []
    try:
        check_deployment(config, partners.values(), os.environ)
    except ConfigErrors as exc:
        problems += exc.errors
    problems += app_start_problems(config, os.environ)
    if problems:
        raise ConfigErrors(problems)
    witnesses = config.log.witness_policy or "none (checkpoints are not witnessed)"
    print(f"{config.path}: valid ({len(partners)} partner file(s); witness policy: {witnesses})")
    return EXIT_OK


def app_start_problems(config: Config, environ: Mapping[str, str]) -> list[ConfigError]:
    """What `create_app` refuses beyond the deployment's files: the OTEL_* variables and
    the [oidc] client secret (without these, validate said "valid" and serve refused)."""
    # Imported here, as preflight above: `config show` needs neither.
    from gateway.observe import tracing
    from gateway.web.review.oidc_client import read_client_secret

    problems: list[ConfigError] = []
    try:
        tracing.check_environment(environ)
    except ConfigError as exc:
        problems.append(exc)
    if config.oidc is not None:
        try:
            read_client_secret(config.oidc, environ)
        except ConfigError as exc:
            problems.append(exc)
    return problems


def effective_scalars(config: Config) -> dict[tuple[str, str], object]:
    """The value in force of every scalar and list key, by (section, key)."""
    s, log, policy, auth = config.server, config.log, config.policy, config.auth
    return {
        ("server", "host"): s.host,
        ("server", "port"): s.port,
        ("server", "max_body_bytes"): s.max_body_bytes,
        ("server", "max_json_depth"): s.max_json_depth,
        ("server", "access_log"): s.access_log,
        ("server", "tls_cert_file"): s.tls_cert_file,
        ("server", "tls_key_file"): s.tls_key_file,
        ("server", "tls_client_ca_file"): s.tls_client_ca_file,
        ("server", "public_url"): s.public_url,
        ("storage", "url"): config.storage_url,
        ("keys", "dir"): config.keys_dir,
        ("partners", "dir"): config.partners_dir,
        ("partners", "warn_days"): config.partner_warn_days,
        ("log", "origin"): log.origin,
        ("log", "checkpoint_interval_s"): log.checkpoint_interval_s,
        ("log", "instance_timeout_s"): log.instance_timeout_s,
        ("log", "witness_policy"): log.witness_policy,
        ("log", "max_pending_appends"): log.max_pending_appends,
        ("policy", "version"): policy.version,
        ("policy", "notified_on"): policy.notified_on,
        ("policy", "effective_on"): policy.effective_on,
        ("policy", "min_consent_version"): policy.min_consent_version,
        ("auth", "issuer"): auth.issuer,
        ("auth", "audience"): auth.audience,
        ("auth", "jwks"): auth.jwks,
        ("auth", "jwks_url"): auth.jwks_url,
        ("auth", "algorithms"): list(auth.algorithms),
        ("sandbox", "serve"): config.sandbox_serve,
        ("retention", "instances_days"): config.retention.instances_days,
        ("retention", "idempotency_hours"): config.retention.idempotency_hours,
        ("retention", "sent_notices_days"): config.retention.sent_notices_days,
        ("notices", "interval_s"): config.notices.interval_s,
        ("notices", "max_age_days"): config.notices.max_age_days,
        ("notices", "retry_schedule_s"): list(config.notices.retry_schedule_s),
        ("controller", "name"): config.controller.name,
        ("controller", "iri"): config.controller.iri,
        **_oidc_scalars(config),
    }


def _oidc_scalars(config: Config) -> dict[tuple[str, str], object]:
    """[oidc]'s keys; all unset when there is no provider ([oidc.roles] is a table, not
    shown here)."""
    o = config.oidc
    return {
        ("oidc", "name"): o and o.name,
        ("oidc", "issuer"): o and o.issuer,
        ("oidc", "client_id"): o and o.client_id,
        ("oidc", "client_secret_env"): o and o.client_secret_env,
        ("oidc", "client_secret_file"): o and o.client_secret_file,
        ("oidc", "roles_claim"): o and o.roles_claim,
        ("oidc", "algorithms"): o and list(o.algorithms),
        ("oidc", "allow_passwords"): o and o.allow_passwords,
        ("oidc", "personal_token_max_days"): o and o.personal_token_max_days,
    }


def redact(key: str, value: object) -> object:
    """`value` as it may be shown: secrets hidden, a URL's password masked."""
    if value is None:
        return None
    if _SECRET_KEY.search(key) and key not in _NOT_SECRET:
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return _redact_url(value)
    return value


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:{REDACTED}@{host}"
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{REDACTED}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _plain(value: object) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(value)
    return value


def describe(config: Config, doc: TomlDocument) -> dict[str, Any]:
    """{"config": file, section: {key: {"value", "source"}}, "callers"/"reviewers": [...]}."""
    values = effective_scalars(config)
    shown: dict[str, Any] = {"config": str(config.path)}
    for section in SCALARS:
        keys = [*SCALARS[section], *sorted(LISTS.get(section, ()))]
        shown[section] = {
            key: {
                "value": _plain(redact(key, values[(section, key)])),
                "source": doc.source(section, key),
            }
            for key in keys
        }
    shown["callers"] = [
        {
            "value": {
                "id": caller.id,
                "roles": sorted(caller.roles),
                "partners": sorted(caller.partners),
                "purposes": sorted(caller.purposes),
                "operations": sorted(caller.operations),
            },
            "source": doc.source("callers", index),
        }
        for index, caller in enumerate(config.callers.values())
    ]
    shown["reviewers"] = [
        {
            "value": {
                "id": r.id,
                "name": r.name,
                "password_hash": redact("password_hash", r.password_hash),
            },
            "source": doc.source("reviewers", index),
        }
        for index, r in enumerate(config.reviewers.values())
    ]
    return shown


def _toml(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def as_text(shown: Mapping[str, Any]) -> str:
    """TOML-like lines, each with its source as a comment; unset keys commented out."""
    lines = [f"# effective configuration of {shown['config']}"]
    width = 44
    for section in SCALARS:
        lines.append(f"\n[{section}]")
        for key, item in shown[section].items():
            if item["value"] is None:
                line = f"# {key} (unset)"
            elif SCALARS[section].get(key) == "date":
                line = f"{key} = {item['value']}"  # a TOML date is written bare
            else:
                line = f"{key} = {_toml(item['value'])}"
            lines.append(f"{line:<{width}} # {item['source']}")
    for name in ("callers", "reviewers"):
        for entry in shown[name]:
            lines.append(f"\n{f'[[{name}]]':<{width}} # {entry['source']}")
            lines.extend(f"{key} = {_toml(value)}" for key, value in entry["value"].items())
    return "\n".join(lines)
