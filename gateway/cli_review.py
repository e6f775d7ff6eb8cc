"""Legal review and subject rights commands: `legal-request`, `report`, `reviewers`."""

from __future__ import annotations

from gateway.cli_support import Commands


def register(commands: Commands) -> None:
    """Add this module's commands to the `gateway` parser."""
