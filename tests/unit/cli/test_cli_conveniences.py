"""CLI output for scripts: `--json` where a command prints a table, `--quiet` ids."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from support.cli import legal_request_create, project_copy, run_cli
from support.credentials import token_of


@pytest.fixture
def root(project: Path, tmp_path: Path) -> Path:
    return project_copy(project, tmp_path)


run = run_cli


def test_reviewers_list_json(root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase here\n"))
    code, _, err = run(
        root, "reviewers", "add", "reviewer-alice", "--name", "Alice Vong", "--password-stdin"
    )
    assert code == 0, err
    code, out, _ = run(root, "reviewers", "list", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"id": "reviewer-alice", "name": "Alice Vong", "password_scheme": "scrypt"}
    ]
    assert "scrypt$" not in out  # the scheme, never the hash


def test_a_reviewer_added_beside_a_provider_is_said_to_be_a_break_glass(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    config = root / "config.toml"
    config.write_text(
        config.read_text() + '\n[oidc]\nissuer = "https://login.example.com"\nclient_id = "gw"\n'
        'roles_claim = "groups"\n[oidc.roles]\n"privacy-reviewers" = ["reviewer"]\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase here\n"))
    code, _, err = run(
        root, "reviewers", "add", "reviewer-alice", "--name", "Alice Vong", "--password-stdin"
    )
    assert code == 0, err
    assert "passwords are off" in err and "allow_passwords = true" in err


def test_log_verify_json(root: Path):
    code, out, err = run(root, "log", "verify", "--json")
    assert code == 0, err
    verdict = json.loads(out)
    assert verdict["ok"] is True and verdict["entries"] == 0 and verdict["problems"] == []
    assert verdict["first_bad"] is None


def test_legal_request_quiet_id_and_rights_officer_registrar(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "privacy-office"))
    code, out, err = run(root, *legal_request_create("R/1", "privacy-office", "--quiet"))
    assert code == 0, err
    request_id = out.strip()
    assert request_id.startswith("LR-") and "\n" not in request_id
    for reviewer in ("reviewer-alice", "reviewer-bob"):
        monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, reviewer))
        code, out, err = run(root, "legal-request", "approve", request_id, "--as", reviewer)
        assert code == 0, err
    assert json.loads(out)["status"] == "approved"
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "sales-service"))
    code, _, err = run(
        root,
        "legal-request",
        "create",
        "--authority",
        "Police",
        "--reference",
        "R/2",
        "--instrument",
        "i",
        "--subject",
        "s-1",
        "--partner",
        "vientiane-police",
        "--as",
        "sales-service",
    )
    assert code == 2 and "not a reviewer or rights_officer" in err


def test_gateway_help_names_the_subcommands_added_today(capsys: pytest.CaptureFixture[str]):
    # `gateway --help` said "run a C2SP tlog-witness" for `witness`, which also holds the
    # gateway's own `alarm list|clear`, and left `show` out of `legal-request`.
    from gateway.cli.main import build_parser

    build_parser().print_help()
    shown = " ".join(capsys.readouterr().out.split())
    assert "rollback alarms (alarm list, alarm clear)" in shown
    assert "reject, show, list" in shown
    for command in ("login", "tokens", "notices"):
        assert f" {command} " in shown
