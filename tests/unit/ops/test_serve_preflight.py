"""`gateway serve` refuses at once, with file:line, what `partners validate` refuses: an
unset secret env var would otherwise surface only when a worker opens its resources; a bad
witness policy is refused alike (and by `config validate`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli.main import main
from gateway.log.cosignature import witness_vkey
from gateway.log.service import LogSigner

GATEWAY = Path(sys.executable).parent / "gateway"


def serve_refusal(config: Path) -> str:
    """What `gateway serve` writes when it refuses to start with `config` (exit 2)."""
    ran = subprocess.run(
        [str(GATEWAY), "--config", str(config), "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert ran.returncode == 2, ran.stderr[-2000:]
    assert "gateway not started" in ran.stderr
    assert "serving on" not in ran.stderr  # refused before it claims to serve
    return ran.stderr


def test_serve_refuses_an_unset_partner_secret_before_starting(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "deployment"
    shutil.copytree(project, root)
    partner = root / "partners" / "bcel-payments.toml"
    lines = partner.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith("client_secret_file"))
    lines[number] = 'client_secret_env = "GATEWAY_TEST_UNSET_SECRET"'
    partner.write_text("\n".join(lines) + "\n")
    refused = serve_refusal(root / "config.toml")
    assert "bcel-payments.toml:" in refused and "GATEWAY_TEST_UNSET_SECRET" in refused


def _with_witness_policy(project: Path, root: Path, policy: str) -> Path:
    shutil.copytree(project, root)
    config = root / "config.toml"
    text = config.read_text()
    config.write_text(text.replace("[log]\n", '[log]\nwitness_policy = "witnesses.txt"\n', 1))
    (root / "witnesses.txt").write_text(policy)
    return config


def test_serve_refuses_a_bad_witness_policy_with_file_and_line(
    project: Path, tmp_path: Path
) -> None:
    config = _with_witness_policy(project, tmp_path / "d", "# witnesses\nwitness w1 nokey\n")
    refused = serve_refusal(config)
    where = tmp_path / "d" / "witnesses.txt"
    assert f"{where}:2: witness w1 key: witness verifier key 'nokey'" in refused
    assert f"{where}: no quorum line" in refused


def test_config_validate_checks_the_witness_policy(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey = witness_vkey("w1.example/w", Ed25519PrivateKey.generate().public_key())
    log_vkey = LogSigner.load(project / "keys", "gateway.kokkok.example/disclosures").verifier_key
    good = f"log {log_vkey}\nwitness w1 {vkey} http://127.0.0.1:7380\nquorum w1\n"
    config = _with_witness_policy(project, tmp_path / "good", good)
    assert main(["--config", str(config), "config", "validate"]) == 0
    assert f"witness policy: {tmp_path / 'good' / 'witnesses.txt'}" in capsys.readouterr().out
    # Valid for an offline verifier, not for a gateway that submits: no URL.
    config = _with_witness_policy(project, tmp_path / "bad", f"witness w1 {vkey}\nquorum w1\n")
    assert main(["--config", str(config), "config", "validate"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad' / 'witnesses.txt'}:1: witness w1 has no URL" in err
    assert main(["--config", str(config), "partners", "validate"]) == 2  # the same preflight


def test_config_validate_refuses_what_the_app_refuses_at_start(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    # An unset [oidc] client secret and an unsupported OTLP exporter stop `gateway serve`
    # (create_app); `config validate`, "what serve would refuse", said valid.
    root = tmp_path / "d"
    shutil.copytree(project, root)
    config = root / "config.toml"
    config.write_text(
        config.read_text() + '\n[oidc]\nissuer = "https://login.example.com"\nclient_id = "gw"\n'
        'roles_claim = "groups"\nclient_secret_env = "GATEWAY_TEST_UNSET_OIDC_SECRET"\n'
        '[oidc.roles]\n"privacy-reviewers" = ["reviewer"]\n'
    )
    monkeypatch.delenv("GATEWAY_TEST_UNSET_OIDC_SECRET", raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert main(["--config", str(config), "config", "validate"]) == 2
    err = capsys.readouterr().err
    assert "$GATEWAY_TEST_UNSET_OIDC_SECRET is empty or unset" in err
    assert "OTEL_TRACES_EXPORTER: 'zipkin' is not supported" in err
    assert "2 problem(s) found" in err
    monkeypatch.setenv("GATEWAY_TEST_UNSET_OIDC_SECRET", "s3cret")
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    assert main(["--config", str(config), "config", "validate"]) == 0
