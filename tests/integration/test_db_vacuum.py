"""`gateway db vacuum` on SQLite and PostgreSQL: after the upgrade from schema 13 (SQLite
rebuilds log_entries, and the file about doubles) it gives the space back and the log
still verifies; on SQLite it is refused while a gateway serves the store, on PostgreSQL it
runs beside one."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.cli import run_cli_in_thread
from support.log import sent_rows
from support.old_schema import log_of_schema_13, store_at_schema

from gateway.config.model import load_config
from gateway.ops.reload import claim_pid_file, pid_file_of
from gateway.ops.vacuum import sqlite_bytes
from gateway.store import open_store, sqlite_path

if TYPE_CHECKING:
    from conftest import Backend

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ENTRIES = 4000


@pytest.fixture
def root(project: Path, backend: Backend) -> Path:
    """A config folder on the backend's store, with the session's keys and partners."""
    root = backend.root
    for name in ("keys", "partners"):
        (root / name).symlink_to(project / name)
    text = (project / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{backend.url}"')
    (root / "config.toml").write_text(text, encoding="utf-8")
    return root


def pid_file(root: Path) -> Path:
    return pid_file_of(load_config(root / "config.toml"))


def bytes_printed(out: str) -> tuple[int, int]:
    before = re.search(r"^bytes before: ([\d,]+)$", out, re.MULTILINE)
    after = re.search(r"^bytes after: +([\d,]+) \(", out, re.MULTILINE)
    assert before and after, out
    return int(before[1].replace(",", "")), int(after[1].replace(",", ""))


async def test_after_the_upgrade_from_schema_13_vacuum_gives_the_space_back(
    backend: Backend, root: Path
) -> None:
    await store_at_schema(backend, 13, log_of_schema_13(sent_rows(0, ENTRIES, T0)))
    code, out = await run_cli_in_thread(root, "db", "upgrade")
    assert code == 0, out

    code, out = await run_cli_in_thread(root, "db", "vacuum")
    assert code == 0, out
    before, after = bytes_printed(out)
    if backend.admin is None:
        path = sqlite_path(backend.url, root)
        assert isinstance(path, Path)
        assert f"VACUUM of the sqlite store ({path})" in out
        # The rebuilt log_entries left the old table's pages free: about half the file.
        assert after < before * 0.7, out
        assert sqlite_bytes(path) == after
    else:
        # The files shrink only by empty last pages, and the first VACUUM of a table
        # writes its free-space and visibility maps: the bytes are printed, not promised.
        assert "VACUUM (ANALYZE) of the postgresql store (29 tables)" in out
        assert before > 0 and after > 0
        await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
        done = await backend.admin.fetch(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = $1 "
            "AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL",
            backend.schema,
        )
        assert {"log_entries", "log_index", "consents"} <= {r[0] for r in done}
    code, out = await run_cli_in_thread(root, "log", "verify")
    assert code == 0, out
    assert f"{ENTRIES} entries" in out


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_vacuum_is_refused_while_a_gateway_serves_the_store(
    backend: Backend, root: Path
) -> None:
    code, out = await run_cli_in_thread(root, "db", "vacuum")
    assert code == 2
    assert "there is no database file at" in out

    store = await open_store(backend.url, root)
    try:
        await store.register_instance("i-1", "host-a", 4242)
    finally:
        await store.close()
    code, out = await run_cli_in_thread(root, "db", "vacuum")
    assert code == 1
    assert "refused: 1 gateway instance(s) still heartbeat on this store" in out
    assert "stop every instance" in out

    claim_pid_file(pid_file(root), os.getpid())  # this process is alive
    code, out = await run_cli_in_thread(root, "db", "vacuum")
    assert code == 1
    assert f"refused: a gateway is running (pid {os.getpid()}" in out
    assert "every disclosure would wait" in out


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_postgresql_vacuum_runs_beside_a_serving_gateway(
    backend: Backend, root: Path
) -> None:
    store = await open_store(backend.url, root)
    try:
        await store.register_instance("i-1", "host-a", 4242)
        claim_pid_file(pid_file(root), os.getpid())
        code, out = await run_cli_in_thread(root, "db", "vacuum")
        assert code == 0, out
        assert "VACUUM (ANALYZE) of the postgresql store" in out
        assert await store.log_size() == 0  # the serving store's pool still answers
    finally:
        await store.close()
