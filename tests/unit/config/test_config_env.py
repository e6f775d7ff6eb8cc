"""GATEWAY_<SECTION>_<KEY> overrides: resolved by known names, typed, refused by name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.config.env import SCALARS, read_overrides, variable
from gateway.config.model import load_config, load_config_sourced
from gateway.errors import ConfigErrors

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config.toml"


def refusals(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigErrors) as exc:
        load_config(CONFIG, environ)
    return [str(e) for e in exc.value.errors]


def test_overrides_parse_to_the_type_the_key_expects():
    config = load_config(
        CONFIG,
        {
            "GATEWAY_SERVER_PORT": "9000",
            "GATEWAY_SERVER_HOST": "0.0.0.0",
            "GATEWAY_LOG_CHECKPOINT_INTERVAL_S": "2.5",
            "GATEWAY_PARTNERS_WARN_DAYS": "10",
            "GATEWAY_STORAGE_URL": "postgresql://gw@db.internal/gateway",
            "GATEWAY_POLICY_NOTIFIED_ON": "2024-09-18",
        },
    )
    assert config.server.port == 9000 and config.server.host == "0.0.0.0"
    assert config.log.checkpoint_interval_s == 2.5
    assert config.partner_warn_days == 10
    assert config.storage_url == "postgresql://gw@db.internal/gateway"
    assert config.policy.notified_on == date(2024, 9, 18)


def test_without_variables_the_file_rules():
    assert load_config(CONFIG, {}).server.port == 8080


def test_key_names_with_underscores_resolve_by_the_known_keys():
    """LOG_INSTANCE_TIMEOUT_S is section log, key instance_timeout_s: no guessing."""
    assert load_config(CONFIG, {"GATEWAY_LOG_INSTANCE_TIMEOUT_S": "3"}).log.instance_timeout_s == 3
    every = {variable(s, k) for s, keys in SCALARS.items() for k in keys}
    assert "GATEWAY_SERVER_TLS_CLIENT_CA_FILE" in every
    assert len(every) == sum(map(len, SCALARS.values()))


def test_a_bad_value_names_the_variable_and_what_would_pass():
    (message,) = refusals({"GATEWAY_SERVER_PORT": "eighty"})
    assert message.startswith("GATEWAY_SERVER_PORT: ") and "whole number" in message
    assert "eighty" not in message  # values are never echoed: one may be a password
    (message,) = refusals({"GATEWAY_SERVER_PORT": "70000"})
    assert message == "GATEWAY_SERVER_PORT: server.port must be a whole number from 0 to 65535"
    (message,) = refusals({"GATEWAY_LOG_CHECKPOINT_INTERVAL_S": "nan"})
    assert message.startswith("GATEWAY_LOG_CHECKPOINT_INTERVAL_S: ") and "number" in message
    (message,) = refusals({"GATEWAY_POLICY_EFFECTIVE_ON": "30/09/2024"})
    assert "2024-09-19" in message
    (message,) = refusals({"GATEWAY_STORAGE_URL": "mysql://x:secret@h/db"})
    assert message.startswith("GATEWAY_STORAGE_URL: storage.url must be")
    assert "secret" not in message


@pytest.mark.parametrize(
    ("section", "key"),
    [(s, k) for s, keys in SCALARS.items() for k, kind in keys.items() if kind == "int"],
)
def test_each_whole_number_key_is_refused_with_an_example_that_fits_it(section, key):
    name = variable(section, key)
    _, (refused,) = read_overrides({name: "lots"})
    assert f"{section}.{key} takes a whole number such as " in refused.message
    assert ("8080" in refused.message) == (key == "port"), refused.message


def test_the_log_queue_bound_is_refused_with_a_queue_length_for_example():
    _, (refused,) = read_overrides({"GATEWAY_LOG_MAX_PENDING_APPENDS": "many"})
    assert refused.message.startswith("log.max_pending_appends takes a whole number such as 10000")


def test_a_minimum_consent_version_above_the_policy_says_both_and_what_passes():
    (message,) = refusals({"GATEWAY_POLICY_MIN_CONSENT_VERSION": "2099-01-01"})
    assert message.startswith("GATEWAY_POLICY_MIN_CONSENT_VERSION: ")
    assert "2099-01-01" in message and "2024-09-30" in message
    assert "set it to policy.version or earlier" in message


def test_every_problem_is_reported_at_once():
    assert len(refusals({"GATEWAY_SERVER_PORT": "x", "GATEWAY_SERVER_MAX_JSON_DEPTH": "1"})) == 2


def test_unknown_key_of_a_known_section_is_refused_with_the_valid_names():
    (message,) = refusals({"GATEWAY_SERVER_PROT": "9000"})
    assert message.startswith("GATEWAY_SERVER_PROT: names no [server] key")
    assert "GATEWAY_SERVER_PORT" in message


def test_variables_of_other_tools_are_left_alone():
    environ = {"GATEWAY_TEST_POSTGRES_URL": "postgresql://x", "GATEWAY_BENCH_X": "1", "PATH": "/"}
    overrides, errors = read_overrides(environ)
    assert overrides == [] and errors == []


def test_arrays_of_tables_and_lists_are_not_overridable():
    (message,) = refusals({"GATEWAY_CALLERS_ID": "x"})
    assert "[[callers]]" in message and "config.toml" in message
    (message,) = refusals({"GATEWAY_AUTH_ALGORITHMS": "ES256"})
    assert message.startswith("GATEWAY_AUTH_ALGORITHMS: auth.algorithms is a list")


def test_an_empty_value_drops_the_files_value_for_the_default():
    config = load_config(CONFIG, {"GATEWAY_PARTNERS_WARN_DAYS": ""})
    assert config.partner_warn_days == 30
    config = load_config(
        CONFIG, {"GATEWAY_AUTH_JWKS": "", "GATEWAY_AUTH_JWKS_URL": "https://idp.example/jwks"}
    )
    assert config.auth.jwks is None and config.auth.jwks_url == "https://idp.example/jwks"
    (message,) = refusals({"GATEWAY_AUTH_JWKS_URL": "https://idp.example/jwks"})
    assert "GATEWAY_AUTH_JWKS=" in message


def test_sources_say_file_line_variable_or_default(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.read_text().replace("warn_days = 30", "# warn_days from default"))
    sourced = load_config_sourced(path, {"GATEWAY_SERVER_PORT": "9000"})
    doc = sourced.document
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("host"))
    assert doc.source("server", "host") == f"{path}:{line}"
    assert doc.source("server", "port") == "GATEWAY_SERVER_PORT"
    assert doc.source("partners", "warn_days") == "default"


def test_the_environment_reaches_load_config_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GATEWAY_SERVER_PORT", "9123")
    assert load_config(CONFIG).server.port == 9123


def test_access_log_is_errors_unless_set_and_refused_outside_its_values():
    assert load_config(CONFIG, {}).server.access_log == "errors"
    config = load_config(CONFIG, {"GATEWAY_SERVER_ACCESS_LOG": "all"})
    assert config.server.access_log == "all"
    (message,) = refusals({"GATEWAY_SERVER_ACCESS_LOG": "verbose"})
    assert message == (
        "GATEWAY_SERVER_ACCESS_LOG: server.access_log must be one of all, errors, off "
        "(which requests get an application-log line)"
    )
