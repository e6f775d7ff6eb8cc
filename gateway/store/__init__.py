"""Durable state of the gateway behind one small interface, with one adapter per backend.

``open_store(config.storage_url, config.root)`` is all the composition root needs: it
picks the adapter from the URL, connects, and brings the schema up to date.

- ``sqlite:///var/gateway.db`` — a file relative to `root` (``sqlite:////abs/path.db``
  for an absolute path; parent directories are created), the embedded default;
- ``postgresql://user@host:5432/db`` — an asyncpg pool, for several instances on one
  database. Extra query parameters are sent as server settings, e.g.
  ``?search_path=gateway`` to keep the tables in their own schema.

The port lives in ``gateway.store.base`` (its narrow ports, one per concern, in
``gateway.store.ports``); the records it speaks in, and their rules, in
``gateway.store.records``, imported from there. Only :class:`Store` is re-exported here,
beside what opens one.
"""

from __future__ import annotations

from pathlib import Path

from gateway.store.base import Store

__all__ = ["Store", "open_store", "sqlite_path"]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def sqlite_path(url: str, root: Path) -> Path | str:
    """The file a ``sqlite:///`` URL names (relative paths resolve against `root`)."""
    rest = url.removeprefix(SQLITE_PREFIX)
    if rest == ":memory:":
        return rest
    path = Path(rest)
    return path if path.is_absolute() else root / path


async def open_store(url: str, root: Path) -> Store:
    """A connected, migrated store for `url`; StoreUnavailable if the database fails."""
    store: Store
    if url.startswith(SQLITE_PREFIX):
        from gateway.store.sqlite import SqliteStore

        store = await SqliteStore.open(sqlite_path(url, root))
    elif url.startswith(POSTGRES_PREFIXES):
        from gateway.store.postgres import PostgresStore

        store = await PostgresStore.connect(url)
    else:
        raise ValueError("storage url must start with sqlite:/// or postgresql://")
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
