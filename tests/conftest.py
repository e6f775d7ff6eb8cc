"""Shared fixtures: the shipped config and partners with keys generated into a temp dir,
and the storage backends (SQLite, and PostgreSQL in a fresh schema per test at
$GATEWAY_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test). When
PostgreSQL cannot be reached its half is skipped — except under CI=true, where it fails."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from support.sandboxes import SANDBOX_SECRETS

from gateway.config.model import Config, load_config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.generate import generate_missing
from gateway.crypto.seal import GatewayKeys
from gateway.partners import Partner, load_partners
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]


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


# --- storage backends: SQLite and PostgreSQL (CI=true makes a missing PostgreSQL fail) ---


POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass
class Backend:
    """One backend under test: its storage URL, and for PostgreSQL the schema and an admin."""

    name: str
    url: str
    root: Path
    schema: str | None = None
    admin: asyncpg.Connection | None = None


def with_search_path(url: str, schema: str) -> str:
    """`url` with `search_path` added to its query (asyncpg sends it as a server setting)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        message = (
            f"PostgreSQL is unreachable at {POSTGRES_URL} ({type(exc).__name__}: {exc}); "
            "start it or point GATEWAY_TEST_POSTGRES_URL at a server"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}. CI=true requires the PostgreSQL store tests to run.")
        pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        # Relative on purpose: open_store resolves it against the root and creates store/.
        yield Backend("sqlite", "sqlite:///store/gateway.db", tmp_path)
        return
    admin = await _admin_connection()
    schema = f"gw_store_test_{uuid.uuid4().hex}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield Backend("postgresql", with_search_path(POSTGRES_URL, schema), tmp_path, schema, admin)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await open_store(backend.url, backend.root)
    try:
        yield opened
    finally:
        await opened.close()


# --- callers' tokens and the sandbox partners, shared by e2e and security tests -------------


@pytest.fixture
def token(config: Config) -> Callable[[str], str]:
    def make(caller_id: str, ttl: int = 600) -> str:
        return issue_dev_token(config.keys_dir, config.auth, caller_id, ttl_s=ttl)

    return make


@pytest.fixture
def auth(token: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    def headers(caller_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(caller_id)}"}

    return headers


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    """Every shipped partner played by a sandbox app on a free loopback port."""
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    cluster = await start_sandboxes(
        partners, config.keys_dir, jwks, SANDBOX_SECRETS, ports=dict.fromkeys(partners, 0)
    )
    yield cluster
    await cluster.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis item its operation in its node id.

    With pytest 9, schemathesis's items all get the test function's node id; pytest-xdist
    schedules and reports items by node id, so under `make test`'s `-n` all but one
    operation would be counted as run without running."""
    for item in items:
        label = getattr(item, "operation_label", None)
        if isinstance(label, str) and item._id.params is None:  # pytest 9's NodeId
            item._id = item._id.with_params(label)
