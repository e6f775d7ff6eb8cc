"""`gateway legal-request create|approve|list` against the configured store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.cli import legal_request_create
from support.credentials import token_of

from gateway.cli.main import main


def test_create_approve_list(project: Path, tmp_path: Path, capsys, monkeypatch):
    shutil.copy(project / "config.toml", tmp_path / "config.toml")
    (tmp_path / "partners").symlink_to(project / "partners")
    (tmp_path / "keys").symlink_to(project / "keys")
    cfg = ["--config", str(tmp_path / "config.toml")]

    def as_(who: str) -> None:  # that person's own credential (gateway.cli.person)
        monkeypatch.setenv("GATEWAY_TOKEN", token_of(tmp_path, who))

    as_("reviewer-alice")
    assert main([*cfg, *legal_request_create("R-1", "reviewer-alice")]) == 0
    request_id = json.loads(capsys.readouterr().out)["id"]
    assert main([*cfg, "legal-request", "approve", request_id, "--as", "reviewer-alice"]) == 2
    assert "cannot also approve" in capsys.readouterr().err
    as_("sales-service")
    assert main([*cfg, "legal-request", "approve", request_id, "--as", "sales-service"]) == 2
    capsys.readouterr()
    as_("reviewer-bob")
    assert main([*cfg, "legal-request", "approve", request_id, "--as", "reviewer-bob"]) == 0
    capsys.readouterr()
    assert main([*cfg, "legal-request", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (
        listed[0]["status"] == "pending" and listed[0]["approvals"][0]["reviewer"] == "reviewer-bob"
    )
    assert (
        main(
            [
                *cfg,
                "legal-request",
                "create",
                "--authority",
                "P",
                "--reference",
                "R",
                "--instrument",
                "i",
                "--subject",
                "s",
                "--partner",
                "nobody",
                "--as",
                "reviewer-bob",
            ]
        )
        == 2
    )
    assert "not onboarded" in capsys.readouterr().err


def test_reject_with_a_reason_then_list_by_status(
    project: Path, tmp_path: Path, capsys, monkeypatch
):
    shutil.copy(project / "config.toml", tmp_path / "config.toml")
    (tmp_path / "partners").symlink_to(project / "partners")
    (tmp_path / "keys").symlink_to(project / "keys")
    cfg = ["--config", str(tmp_path / "config.toml")]

    def as_(who: str) -> None:
        monkeypatch.setenv("GATEWAY_TOKEN", token_of(tmp_path, who))

    as_("reviewer-alice")
    create = [*cfg, *legal_request_create("R-old", "reviewer-alice", "--quiet")]
    assert main([*create, "--received-at", "2026-01-01T00:00:00Z"]) == 0
    older = capsys.readouterr().out.strip()
    assert main([*cfg, *legal_request_create("R-new", "reviewer-alice", "--quiet")]) == 0
    newer = capsys.readouterr().out.strip()

    reject = [*cfg, "legal-request", "reject", older, "--reason", "no court seal"]
    assert main([*reject, "--as", "reviewer-alice"]) == 2
    assert "cannot also reject" in capsys.readouterr().err
    as_("reviewer-bob")
    assert (
        main([*cfg, "legal-request", "reject", older, "--reason", "", "--as", "reviewer-bob"]) == 2
    )
    assert "'reason'" in capsys.readouterr().err
    assert main([*reject, "--as", "reviewer-bob"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["status"] == "rejected"
    assert done["rejection"]["reviewer"] == "reviewer-bob"
    assert done["rejection"]["reason"] == "no court seal"
    assert main([*reject, "--as", "reviewer-bob"]) == 2
    assert "already rejected" in capsys.readouterr().err
    assert main([*cfg, "legal-request", "approve", older, "--as", "reviewer-bob"]) == 2
    assert "rejected" in capsys.readouterr().err

    assert main([*cfg, "legal-request", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"]) for r in listed] == [(newer, "pending"), (older, "rejected")]
    assert main([*cfg, "legal-request", "list", "--status", "rejected", "--format", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [older]

    # One request, as the API's GET shows it; the text list names who rejected.
    assert main([*cfg, "legal-request", "show", older]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "rejected" and shown["rejection"]["reason"] == "no court seal"
    assert main([*cfg, "legal-request", "list"]) == 0
    assert f"{older}  rejected" in (out := capsys.readouterr().out)
    assert "rejected by reviewer-bob" in out
    assert main([*cfg, "legal-request", "show", "LR-nope"]) == 2
    assert "legal-request list" in capsys.readouterr().err
