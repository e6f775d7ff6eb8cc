"""The SQL written once for both databases: statements, migrations and row mappers."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from gateway.store import mapping, postgres, sqlite
from gateway.store.migrations import POSTGRES, SQLITE, migrations_for
from gateway.store.statements import SQL, numbered


def test_numbered_gives_postgres_placeholders_in_order() -> None:
    assert numbered("a = ? AND b IN (?, ?)") == "a = $1 AND b IN ($2, $3)"
    assert numbered("SELECT 1") == "SELECT 1"


@pytest.mark.parametrize("name", [f.name for f in fields(SQL)])
def test_each_statement_has_the_same_placeholders_on_both(name: str) -> None:
    text = getattr(SQL, name)
    count = text.count("?")
    pg = getattr(SQL.numbered(), name)
    assert "?" not in pg
    assert re.findall(r"\$(\d+)", pg) == [str(n) for n in range(1, count + 1)]


def test_both_databases_have_every_schema_version_alike() -> None:
    lite, pg = migrations_for(SQLITE), migrations_for(POSTGRES)
    assert [(m.version, m.description) for m in lite] == [(m.version, m.description) for m in pg]
    versions = [m.version for m in lite]
    # Ascending and unique from 1; branches take numbers ahead (a gap until they merge).
    assert versions[0] == 1 and versions == sorted(set(versions))
    # The adapters apply exactly the shared list.
    assert sqlite.MIGRATIONS == lite and postgres.MIGRATIONS == pg


def test_every_template_token_is_filled_in() -> None:
    for dialect in (SQLITE, POSTGRES):
        for migration in migrations_for(dialect):
            for statement in migration.statements:
                assert "{" not in statement and "}" not in statement, statement


def test_sqlite_keeps_its_own_spelling_of_types() -> None:
    lite = "\n".join(s for m in migrations_for(SQLITE) for s in m.statements)
    pg = "\n".join(s for m in migrations_for(POSTGRES) for s in m.statements)
    # In SQLite the log's index is the rowid (INTEGER PRIMARY KEY), never bigint.
    assert "idx INTEGER PRIMARY KEY CHECK (idx >= 0)" in lite
    assert "bytea" not in lite and "timestamptz" not in lite and "log_counter" not in lite
    assert "idx bigint PRIMARY KEY CHECK (idx >= 0)" in pg
    assert "BLOB" not in pg and "WITHOUT ROWID" not in pg and "json_extract" not in pg


def test_one_mapper_reads_either_drivers_values() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    as_text = (
        "c1", "s1", json.dumps(["p"]), json.dumps(["x"]), "[]", "[]", "v1",
        at.isoformat(timespec="microseconds"), None, None, "form", "ev",
    )  # fmt: skip
    as_read = ("c1", "s1", ["p"], ["x"], [], [], "v1", at, None, None, "form", "ev")
    assert mapping.consent(as_text, mapping.FROM_TEXT) == mapping.consent(as_read, mapping.AS_READ)
    consent = mapping.consent(as_read, mapping.AS_READ)
    assert consent.purposes == frozenset({"p"}) and consent.obtained_at == at
