"""`gateway legal-request create|approve|list` against the configured store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
    assert (
        main(
            [
                *cfg,
                "legal-request",
                "create",
                "--authority",
                "Police",
                "--reference",
                "R-1",
                "--instrument",
                "court order",
                "--subject",
                "s-1",
                "--partner",
                "vientiane-police",
                "--as",
                "reviewer-alice",
            ]
        )
        == 0
    )
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
