"""`gateway init DIR`: a starter folder that validates, loads and builds the app as it is."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.cli.init_folder import starter_files
from gateway.cli.main import main
from gateway.config.model import load_config
from gateway.partners import load_partners
from gateway.web.app import create_app


def test_init_writes_a_deployment_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    target = tmp_path / "deploy"
    assert main(["init", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"created {target / 'config.toml'}" in out and "gateway serve" in out
    assert (target / "var").is_dir() and (target / ".gitignore").is_file()
    assert stat.S_IMODE((target / "keys").stat().st_mode) == 0o700
    config = load_config(target / "config.toml", {})
    assert config.storage_url == "sqlite:///var/gateway.db"
    assert set(load_partners(config.partners_dir, config.root)) == {"example-sandbox"}
    assert config.callers["example-service"].may_use_partner("example-sandbox")
    create_app(config)  # what `gateway serve` does first: keys readable, partners complete
    monkeypatch.chdir(target)  # `gateway partners validate` without --config, as in the README
    assert main(["partners", "validate"]) == 0


def test_init_refuses_an_existing_config_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["init", str(tmp_path)]) == 0
    key = tmp_path / "keys" / "pseudonym-master.key"
    before = key.read_bytes()
    (tmp_path / "config.toml").write_text("# mine\n")
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "config.toml exists" in err and "--force" in err
    assert (tmp_path / "config.toml").read_text() == "# mine\n"
    assert main(["init", "--force", str(tmp_path)]) == 0
    assert "[[callers]]" in (tmp_path / "config.toml").read_text()
    assert key.read_bytes() == before  # keys are never replaced


def test_the_starter_files_come_from_the_package():
    files = starter_files()
    assert {Path("config.toml"), Path("partners/example-sandbox.toml"), Path(".gitignore")} <= set(
        files
    )
