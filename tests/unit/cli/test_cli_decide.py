"""`gateway decide FILE.json`: the what-if tool (CONTRACT §6) and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.cli.main import main

BODY = {
    "partner": "lao-credit-bureau",
    "operation": "credit_check",
    "purpose": "service_provision",
    "legal_basis": "consent",
    "subject": "s-1",
    "data": {"name": "N", "date_of_birth": "1990-04-02", "uuid": "u", "password": "p"},
}
CONSENT = {
    "id": "c-9",
    "subject": "s-1",
    "purposes": ["service_provision"],
    "partners": ["lao-credit-bureau"],
    "policy_version": "2024-09-30",
    "obtained_at": "2026-01-01T00:00:00Z",
    "withdrawn_at": None,
}


def run(project: Path, tmp_path: Path, body: dict, *extra: str) -> int:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return main(["--config", str(project / "config.toml"), "decide", str(path), *extra])


def test_allowed_with_facts_exit_0(project, tmp_path, capsys):
    body = {**BODY, "facts": {"consents": [CONSENT]}}
    assert run(project, tmp_path, body, "--at", "2026-11-24T00:00:00Z") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["allowed"] is True and out["consent_id"] == "c-9"
    assert out["withheld"] == ["password"]
    assert out["disclosed"]["date_of_birth"] == "year"


def test_refused_exit_1_with_problem(project, tmp_path, capsys):
    withdrawn = {**CONSENT, "withdrawn_at": "2026-02-01T00:00:00Z"}
    body = {**BODY, "facts": {"consents": [withdrawn]}}
    assert run(project, tmp_path, body) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["problem"] == "consent_withdrawn" and out["allowed"] is False


def test_caller_allowlist_applies_with_caller_flag(project, tmp_path, capsys):
    body = {**BODY, "facts": {"consents": [CONSENT]}}
    assert run(project, tmp_path, body, "--caller", "payments-service") == 1
    assert json.loads(capsys.readouterr().out)["problem"] == "forbidden"


def test_usage_errors_exit_2(project, tmp_path, capsys):
    assert run(project, tmp_path, {**BODY, "purpose": "fun"}) == 2
    assert "purpose" in capsys.readouterr().err
    assert run(project, tmp_path, {**BODY, "facts": {"consents": [{"subject": "s"}]}}) == 2
    assert (
        main(["--config", str(project / "config.toml"), "decide", str(tmp_path / "missing.json")])
        == 2
    )
