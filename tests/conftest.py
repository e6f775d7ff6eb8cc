"""Shared fixtures: the shipped config and partners, with keys generated into a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config import Config, load_config
from gateway.keys import generate_missing
from gateway.partners import Partner, load_partners

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped config.toml and partners/ with freshly generated keys."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "config.toml", root / "config.toml")
    shutil.copytree(REPO / "partners", root / "partners")
    generate_missing(root / "keys", root / "partners")
    return root


@pytest.fixture(scope="session")
def config(project: Path) -> Config:
    return load_config(project / "config.toml")


@pytest.fixture(scope="session")
def partners(config: Config) -> dict[str, Partner]:
    return load_partners(config.partners_dir, config.root)
