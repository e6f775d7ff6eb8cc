"""Backend fixtures for the storage integration tests.

Every test that takes `backend` (or `store`) runs twice: on SQLite in its own tmp_path,
and on PostgreSQL in a fresh, uniquely named schema that is dropped afterwards, so
tests never see each other's data. The PostgreSQL server is
``$GATEWAY_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
When it cannot be reached the PostgreSQL half is skipped — except under ``CI=true``,
where it fails, so a CI run never passes without having tested PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.store import Store, open_store

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
