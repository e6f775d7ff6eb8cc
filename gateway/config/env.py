"""`GATEWAY_<SECTION>_<KEY>` environment variables laid over config.toml's scalars.

An operator (a systemd EnvironmentFile, a container, a CI job) changes one value
without editing the file: `GATEWAY_SERVER_PORT=9000`, `GATEWAY_STORAGE_URL=postgresql://…`.
The name is resolved against the known sections and keys below, never by guessing at
underscores, and the value is parsed to the type the key expects. Arrays of tables
([[callers]], [[reviewers]]) and lists stay in config.toml.

Only names whose section part is a config section are ours: a typo there
(`GATEWAY_SERVER_PROT`) is refused rather than silently ignored, while any other
GATEWAY_ variable (the test suite's GATEWAY_TEST_POSTGRES_URL) is left alone.
No refusal quotes the value: it may be a database password.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from gateway.config.tomlfile import TomlDocument
from gateway.errors import ConfigError

PREFIX: Final = "GATEWAY_"

Kind = Literal["str", "int", "float", "bool", "date"]

# Every scalar key of config.toml and the type its value takes: the keys the reader accepts
# and the ones the environment may override.
SCALARS: Final[Mapping[str, Mapping[str, Kind]]] = {
    "server": {
        "host": "str",
        "port": "int",
        "max_body_bytes": "int",
        "max_json_depth": "int",
        "access_log": "str",
        "tls_cert_file": "str",
        "tls_key_file": "str",
        "tls_client_ca_file": "str",
        "public_url": "str",
    },
    "storage": {"url": "str"},
    "keys": {"dir": "str"},
    "partners": {"dir": "str", "warn_days": "int"},
    "log": {
        "origin": "str",
        "checkpoint_interval_s": "float",
        "instance_timeout_s": "float",
        "witness_policy": "str",
        "max_pending_appends": "int",
    },
    "policy": {
        "version": "str",
        "notified_on": "date",
        "effective_on": "date",
        "min_consent_version": "str",
    },
    "auth": {"issuer": "str", "audience": "str", "jwks": "str", "jwks_url": "str"},
    "sandbox": {"serve": "bool"},
    "retention": {
        "instances_days": "float",
        "idempotency_hours": "float",
        "sent_notices_days": "float",
    },
    "notices": {"interval_s": "float", "max_age_days": "int"},
    "controller": {"name": "str", "iri": "str"},
    "oidc": {
        "name": "str",
        "issuer": "str",
        "client_id": "str",
        "client_secret_env": "str",
        "client_secret_file": "str",
        "roles_claim": "str",
        "allow_passwords": "bool",
        "personal_token_max_days": "int",
    },
}
# Keys whose value is a list: config.toml only.
LISTS: Final[Mapping[str, frozenset[str]]] = {
    "auth": frozenset({"algorithms"}),
    "notices": frozenset({"retry_schedule_s"}),
    "oidc": frozenset({"algorithms"}),
}
TABLE_ARRAYS: Final = ("callers", "reviewers")

_EXAMPLES: Final[Mapping[Kind, str]] = {
    "int": "a whole number",
    "float": "a number such as 60 or 0.5",
    "bool": "true or false",
    "date": "a date such as 2024-09-19",
    "str": "text",
}
# A refusal's example for a whole-number key: one that fits the key (a port for the
# port, a day count for the days), not 8080 for all of them.
_INT_EXAMPLES: Final[Mapping[tuple[str, str], str]] = {
    ("server", "port"): "8080",
    ("server", "max_body_bytes"): "1048576",
    ("server", "max_json_depth"): "32",
    ("partners", "warn_days"): "30",
    ("log", "max_pending_appends"): "10000",
    ("notices", "max_age_days"): "7",
    ("oidc", "personal_token_max_days"): "90",
}
_INT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def variable(section: str, key: str) -> str:
    """The environment variable that overrides `section.key`."""
    return f"{PREFIX}{section.upper()}_{key.upper()}"


@dataclass(frozen=True)
class Override:
    name: str  # the variable, e.g. GATEWAY_SERVER_PORT
    section: str
    key: str
    value: object  # parsed; None: the variable is empty, so the key falls back to its default


def known_keys(section: str) -> frozenset[str]:
    return frozenset(SCALARS.get(section, {})) | LISTS.get(section, frozenset())


def read_overrides(environ: Mapping[str, str]) -> tuple[list[Override], list[ConfigError]]:
    """The overrides `environ` asks for, and a refusal for each one that cannot be used."""
    overrides: list[Override] = []
    errors: list[ConfigError] = []
    sections = (*SCALARS, *TABLE_ARRAYS)
    for name in sorted(environ):
        if not name.startswith(PREFIX):
            continue
        rest = name[len(PREFIX) :]
        section = next((s for s in sections if rest.startswith(f"{s.upper()}_")), None)
        if section is None:
            continue  # not a config section: some other tool's variable
        key = rest[len(section) + 1 :].lower()
        if section in TABLE_ARRAYS:
            errors.append(
                _refusal(
                    name,
                    f"[[{section}]] tables cannot be set from the environment; "
                    "write them in config.toml",
                )
            )
        elif key in LISTS.get(section, frozenset()) and name == variable(section, key):
            errors.append(_refusal(name, f"{section}.{key} is a list; set it in config.toml"))
        elif key not in SCALARS[section] or name != variable(section, key):
            valid = ", ".join(variable(section, k) for k in SCALARS[section])
            errors.append(_refusal(name, f"names no [{section}] key; valid: {valid}"))
        else:
            kind = SCALARS[section][key]
            raw = environ[name]
            if raw == "":
                overrides.append(Override(name, section, key, None))
                continue
            parsed = _parse(raw.strip() if kind != "str" else raw, kind)
            if parsed is None:
                errors.append(
                    _refusal(
                        name,
                        f"{section}.{key} takes {_takes(section, key, kind)} (or an empty "
                        "value for the default)",
                    )
                )
            else:
                overrides.append(Override(name, section, key, parsed))
    return overrides, errors


def apply_overrides(doc: TomlDocument, overrides: list[Override]) -> list[ConfigError]:
    """Lay the overrides over the file's values; refuse those whose section is not a table."""
    errors: list[ConfigError] = []
    for o in overrides:
        table = doc.data.get(o.section)
        if table is not None and not isinstance(table, dict):
            errors.append(_refusal(o.name, f"'{o.section}' in {doc.path} is not a table"))
            continue
        doc.override(o.name, o.value, o.section, o.key)
    return errors


def _takes(section: str, key: str, kind: Kind) -> str:
    """What `section.key` takes, with an example that fits it."""
    example = _INT_EXAMPLES.get((section, key)) if kind == "int" else None
    return f"{_EXAMPLES[kind]} such as {example}" if example else _EXAMPLES[kind]


def _refusal(name: str, message: str) -> ConfigError:
    return ConfigError(name, None, message)


def _parse(raw: str, kind: Kind) -> object | None:
    """`raw` as a value of `kind`, or None when it is not one."""
    if kind == "str":
        return raw
    if kind == "int":
        return int(raw) if _INT.match(raw) else None
    if kind == "float":
        try:
            number = float(raw)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if kind == "bool":
        lowered = raw.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else None
    if not _DATE.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None
