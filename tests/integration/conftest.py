"""Storage integration tests use the `backend` and `store` fixtures of tests/conftest.py.

Every such test runs twice: on SQLite in its own tmp_path, and on PostgreSQL in a fresh,
uniquely named schema dropped afterwards. When PostgreSQL cannot be reached the
PostgreSQL half is skipped — except under ``CI=true``, where it fails.
"""

from pathlib import Path

import pytest

from gateway.crypto.subject_keys import LogKeys
from gateway.store.base import Store


@pytest.fixture
async def log_keys(store: Store, project: Path) -> LogKeys:
    """The project's log keys, `store` migrated: what a test that appends entries needs."""
    await store.migrate()
    return LogKeys.load(project / "keys")
