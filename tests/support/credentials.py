"""A person's credential for the CLI commands that act for a person (gateway.cli.person):
a bearer token of a caller, or a review-page account with a password."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from support.cli import project_copy, run_cli

from gateway.config.model import load_config
from gateway.crypto.dev_tokens import issue_dev_token

PASSWORD = "a long passphrase here"
REVIEWER = "reviewer-carol"


def token_of(root: Path, caller_id: str) -> str:
    """A development-issuer bearer token of `caller_id` for the deployment at `root`."""
    config = load_config(root / "config.toml")
    return issue_dev_token(config.keys_dir, config.auth, caller_id)


def with_reviewer(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `project` (without its var/) with the review-page account REVIEWER, whose
    password PASSWORD is also on stdin once; no credential in the environment."""
    copy = project_copy(project, tmp_path)
    for name in ("GATEWAY_TOKEN", "GATEWAY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, _, err = run_cli(
        copy, "reviewers", "add", REVIEWER, "--name", "Carol", "--password-stdin"
    )
    assert code == 0, err
    return copy
