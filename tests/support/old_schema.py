"""A store at an old schema version holding rows as that version wrote them: what a test of
an upgrade starts from, on SQLite or PostgreSQL (the `backend` fixture's)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import asyncpg

from gateway.store import sqlite_path
from gateway.store.migrations import POSTGRES, SQLITE, apply_migrations, migrations_for
from gateway.store.projection import columns_of_bytes
from gateway.store.records import LogRow
from gateway.store.sqlite import _time as sqlite_time
from gateway.store.statements import numbered

Insert = tuple[str, Sequence[Sequence[object]]]
"""A statement with ``?`` placeholders and the rows to run it with."""


class OldStoreBackend(Protocol):
    """What of the `backend` fixture the store is made in."""

    url: str
    root: Path
    schema: str | None
    admin: asyncpg.Connection | None


async def store_at_schema(backend: OldStoreBackend, version: int, *inserts: Insert) -> None:
    """`backend`'s store at schema `version` (the gateway's migrations 1 … `version`), then
    each of `inserts` run in it. A datetime value is written as that database's store
    writes it. PostgreSQL's log counter is set past the last entry inserted (SQLite's log
    has no counter: its end is its last index)."""
    migrations = [m for m in migrations_for(SQLITE) if m.version <= version]
    if backend.admin is None:
        path = sqlite_path(backend.url, backend.root)
        assert isinstance(path, Path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)

        async def execute(sql: str, *params: object) -> None:
            conn.execute(sql, params)

        async def fetch(sql: str) -> list[Any]:
            return conn.execute(sql).fetchall()

        try:
            await apply_migrations(SQLITE, migrations, execute, fetch)
            for sql, rows in inserts:
                conn.executemany(sql, [_sqlite_values(row) for row in rows])
            conn.commit()
        finally:
            conn.close()
        return
    admin = backend.admin
    await admin.execute(f'SET search_path TO "{backend.schema}"')
    migrations = [m for m in migrations_for(POSTGRES) if m.version <= version]
    async with admin.transaction():
        await apply_migrations(POSTGRES, migrations, admin.execute, admin.fetch)
        for sql, rows in inserts:
            await admin.executemany(numbered(sql), rows)
        await admin.execute(
            "UPDATE log_counter SET next_index = "
            "(SELECT COALESCE(max(idx) + 1, 0) FROM log_entries)"
        )


def _sqlite_values(row: Sequence[object]) -> tuple[object, ...]:
    return tuple(sqlite_time(v) if isinstance(v, datetime) else v for v in row)


_SCHEMA_13_ENTRY: Final = (
    "INSERT INTO log_entries (idx, entry, kind, disclosure_id, subject_ref, partner, "
    "logged_at, leaf_hash, purpose, legal_basis, outcome) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def log_of_schema_13(rows: Sequence[LogRow]) -> Insert:
    """`rows` as the log's first entries the way schema 13 stored them: the search columns
    beside the entry, written in the commit."""
    values = []
    for i, r in enumerate(rows):
        c = columns_of_bytes(r.entry)
        columns = (c.kind, c.disclosure_id, c.subject_ref, c.partner, c.time)
        values.append((i, r.entry, *columns, r.leaf_hash, c.purpose, c.legal_basis, c.outcome))
    return _SCHEMA_13_ENTRY, values
