"""A PostgreSQL upgrade is not cut short by the pool's command timeout.

Schema 14 copies every entry's search columns: minutes on a store of ten million entries,
where the pool's 30 s `command_timeout` rolled the whole upgrade back and the gateway did not
start. Here a migration that takes longer than a tiny command timeout still applies, while an
ordinary statement on the same pool is still bounded by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.store import postgres
from gateway.store.records import Migration, StoreUnavailable

if TYPE_CHECKING:
    from conftest import Backend

COMMAND_TIMEOUT_S = 0.2
SLOW = "SELECT pg_sleep(0.6)"


# The command timeout is asyncpg's: PostgreSQL only (no SQLite case to skip).
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_migration_longer_than_the_command_timeout_applies(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Migration(10_000, "a migration slower than the command timeout (test)", (SLOW,))
    monkeypatch.setattr(postgres, "MIGRATIONS", (*postgres.MIGRATIONS, slow))
    store = await postgres.PostgresStore.connect(backend.url, command_timeout=COMMAND_TIMEOUT_S)
    try:
        await store.migrate()
        assert 10_000 in await store.schema_versions()
        with pytest.raises(StoreUnavailable):  # an ordinary statement stays bounded
            await store._run("sleep (test)", SLOW)
    finally:
        await store.close()
