"""A person's credential for the CLI commands that act for a person (gateway.cli.person)."""

from __future__ import annotations

from pathlib import Path

from gateway.config.model import load_config
from gateway.crypto.dev_tokens import issue_dev_token


def token_of(root: Path, caller_id: str) -> str:
    """A development-issuer bearer token of `caller_id` for the deployment at `root`."""
    config = load_config(root / "config.toml")
    return issue_dev_token(config.keys_dir, config.auth, caller_id)
