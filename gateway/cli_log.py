"""The `gateway log …` commands: verify, search, export, checkpoint, prove, key."""

from __future__ import annotations

from gateway.cli_support import Commands


def register(commands: Commands) -> None:
    """Add this module's commands to the `gateway` parser."""
