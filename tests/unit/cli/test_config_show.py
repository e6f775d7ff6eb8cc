"""`gateway config show`: every value with its source; no secret ever printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.config import effective_scalars
from gateway.cli.main import main
from gateway.config.env import LISTS, SCALARS
from gateway.config.model import load_config

REPO = Path(__file__).resolve().parents[3]
REVIEWER = (
    '\n[[reviewers]]\nid = "dana"\nname = "Dana"\n'
    'password_hash = "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"\n'
)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text(encoding="utf-8") + REVIEWER)
    return path


def show(config_file: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["--config", str(config_file), "config", "show", *extra]) == 0
    return capsys.readouterr().out


def line_of(path: Path, start: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith(start))


def test_json_names_the_source_of_every_value(config_file, capsys, monkeypatch):
    monkeypatch.setenv("GATEWAY_SERVER_PORT", "9001")
    shown = json.loads(show(config_file, capsys, "--format", "json"))
    assert shown["server"]["port"] == {"value": 9001, "source": "GATEWAY_SERVER_PORT"}
    assert shown["server"]["host"]["source"] == f"{config_file}:{line_of(config_file, 'host')}"
    assert shown["server"]["tls_cert_file"] == {"value": None, "source": "default"}
    assert shown["policy"]["notified_on"]["value"] == "2024-09-19"
    assert {c["value"]["id"] for c in shown["callers"]} >= {"payments-service", "legal-desk"}
    first = shown["callers"][0]["source"]
    assert first == f"{config_file}:{line_of(config_file, '[[callers]]')}"
    for section, keys in SCALARS.items():
        assert set(shown[section]) == set(keys) | LISTS.get(section, frozenset())


def test_text_is_the_same_with_sources_as_comments(config_file, capsys, monkeypatch):
    monkeypatch.setenv("GATEWAY_LOG_CHECKPOINT_INTERVAL_S", "5")
    text = show(config_file, capsys)
    assert "[server]" in text and "[[callers]]" in text
    assert any(
        line.startswith("checkpoint_interval_s = 5.0")
        and line.endswith("# GATEWAY_LOG_CHECKPOINT_INTERVAL_S")
        for line in text.splitlines()
    )
    assert "notified_on = 2024-09-19" in text  # a TOML date, bare


def test_secrets_are_redacted(config_file, capsys, monkeypatch):
    monkeypatch.setenv(
        "GATEWAY_STORAGE_URL", "postgresql://gw:hunter2@db.internal/gw?sslpassword=swordfish"
    )
    for form in ("text", "json"):
        out = show(config_file, capsys, "--format", form)
        assert "hunter2" not in out and "swordfish" not in out and "$scrypt$" not in out
        assert "gw:(redacted)@db.internal" in out and "dana" in out


def test_a_bad_override_fails_naming_the_variable(config_file, capsys, monkeypatch):
    monkeypatch.setenv("GATEWAY_SERVER_PORT", "http")
    assert main(["--config", str(config_file), "config", "show"]) == 2
    assert "GATEWAY_SERVER_PORT: server.port takes a whole number" in capsys.readouterr().err


def test_every_key_of_the_schema_is_shown():
    values = effective_scalars(load_config(REPO / "config.toml", {}))
    expected = {(s, k) for s, keys in SCALARS.items() for k in keys}
    expected |= {(s, k) for s, keys in LISTS.items() for k in keys}
    assert set(values) == expected


def test_the_oidc_break_glass_is_listed_with_its_line(config_file, capsys):
    config_file.write_text(
        config_file.read_text()
        + '\n[oidc]\nissuer = "https://login.example.com"\nclient_id = "gw"\n'
        'roles_claim = "groups"\nallow_passwords = true\n'
        '[oidc.roles]\n"privacy-reviewers" = ["reviewer"]\n'
    )
    shown = json.loads(show(config_file, capsys, "--format", "json"))
    assert shown["oidc"]["allow_passwords"] == {
        "value": True,
        "source": f"{config_file}:{line_of(config_file, 'allow_passwords')}",
    }
    assert shown["oidc"]["personal_token_max_days"] == {"value": 90, "source": "default"}
