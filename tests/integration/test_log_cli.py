"""`gateway log …` against real SQLite files and real PostgreSQL schemas.

The tamper tests edit the database behind the gateway's back, the way an insider with
database access would, and check that `gateway log verify` exits 1 and names the entry
(or checkpoint). The CLI runs in-process, in a thread (it starts its own event loop).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import redirect_stderr
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.cli import run_cli_in_thread

from gateway.cli.main import main
from gateway.config.model import load_config
from gateway.crypto.subject_keys import LogKeys, Period
from gateway.log.entries import outcome_entry, row_of
from gateway.log.service import LogService, LogSigner
from gateway.store import Store, open_store

if TYPE_CHECKING:
    from conftest import Backend

ENTRIES = 600
SUBJECT = "CANARY-subject-0042"


@dataclass
class Setup:
    root: Path
    backend: Backend
    store: Store
    service: LogService

    async def cli(self, *args: str) -> tuple[int, str]:
        return await run_cli_in_thread(self.root, *args)

    async def sql(self, sql: str, *params: object) -> None:
        """Run SQL behind the gateway's back (`?` placeholders), once every entry is
        projected (the search columns are in `log_index`)."""
        await self.store.project_log()
        if self.backend.admin is None:
            conn = self.store._conn  # type: ignore[attr-defined]  # the SQLite adapter's
            await conn.execute(sql, params)
            return
        for n in range(1, len(params) + 1):
            sql = sql.replace("?", f"${n}", 1)
        await self.backend.admin.execute(f'SET search_path TO "{self.backend.schema}"')
        await self.backend.admin.execute(sql, *params)

    async def entry(self, index: int) -> bytes:
        return (await self.store.read_log_records(index, 1))[0][1]


@pytest.fixture
async def setup(project: Path, backend: Backend) -> AsyncIterator[Setup]:
    root = backend.root
    shutil.copytree(project / "keys", root / "keys")  # forget-before changes them
    (root / "partners").symlink_to(project / "partners")
    text = (project / "config.toml").read_text()
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{backend.url}"')
    (root / "config.toml").write_text(text)
    config = load_config(root / "config.toml")
    store = await open_store(backend.url, root)
    service = LogService(store, LogSigner.load(config.keys_dir, config.log.origin))
    try:
        yield Setup(root, backend, store, service)
    finally:
        await service.stop(final_checkpoint=False)
        await store.close()


def entry(i: int, outcome: str = "sent") -> dict[str, object]:
    at = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=i)
    return outcome_entry(
        disclosure_id=f"d-{i}", outcome=outcome, at=at, partner="lao-credit-bureau", attempts=1
    )


@pytest.fixture
async def logged(setup: Setup) -> Setup:
    """600 entries, a checkpoint at 300 and one at 600, subtree hashes stored."""
    rows = [row_of(entry(i)) for i in range(ENTRIES)]
    await setup.service.append_rows(rows[:300])
    await setup.service.checkpoint()
    await setup.service.append_rows(rows[300:])
    await setup.service.checkpoint()
    await setup.store.project_log()  # as the gateway's writer does after its commits
    return setup


async def test_an_untouched_log_verifies(logged: Setup) -> None:
    code, out = await logged.cli("log", "verify")
    assert code == 0, out
    assert f"ok: {ENTRIES} entries and 2 checkpoint(s) verified" in out


async def test_edited_entry_is_named(logged: Setup) -> None:
    edited = (await logged.entry(5)).replace(b'"sent"', b'"failed"')
    await logged.sql("UPDATE log_entries SET entry = ? WHERE idx = ?", edited, 5)

    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "entry 5: its bytes do not hash to its stored leaf hash" in out
    assert "first bad index: 5\n" in out


async def test_edited_entry_with_its_leaf_hash_is_caught_by_the_tree(logged: Setup) -> None:
    forged = row_of(entry(5, outcome="failed"))
    # A careful forger edits the search column too, so only the tree can tell.
    await logged.sql(
        "UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = ?",
        forged.entry,
        forged.leaf_hash,
        5,
    )
    await logged.sql("UPDATE log_index SET outcome = ? WHERE idx = ?", "failed", 5)
    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "checkpoint #1 (size 300) does not match the entries" in out
    assert "first bad index: between 0 and 255" in out


async def test_deleted_entry_is_named(logged: Setup) -> None:
    await logged.sql("DELETE FROM log_entries WHERE idx = ?", 7)

    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "entry 7 is missing: the next stored entry is 8" in out
    assert "first bad index: 7\n" in out


async def test_swapped_entries_are_named(logged: Setup) -> None:
    three, nine = await logged.entry(3), await logged.entry(9)
    await logged.sql("UPDATE log_entries SET entry = ? WHERE idx = ?", nine, 3)
    await logged.sql("UPDATE log_entries SET entry = ? WHERE idx = ?", three, 9)

    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "entry 3: its bytes do not hash" in out and "entry 9: its bytes do not hash" in out
    assert "first bad index: 3\n" in out


async def test_rows_swapped_whole_are_caught_by_the_tree(logged: Setup) -> None:
    for a, b in ((3, 1_000_000), (9, 3), (1_000_000, 9)):
        await logged.sql("UPDATE log_index SET idx = ? WHERE idx = ?", b, a)  # with their columns
        await logged.sql("UPDATE log_entries SET idx = ? WHERE idx = ?", b, a)

    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "entries 0..255 do not produce their stored level-8 tree hash" in out
    assert "first bad index: between 0 and 255" in out


async def test_reindex_rebuilds_a_lying_projection_and_verify_reports_its_lag(
    logged: Setup,
) -> None:
    await logged.sql("UPDATE log_index SET partner = ? WHERE idx = ?", "elsewhere", 420)
    await logged.sql("DELETE FROM log_index WHERE idx = ?", 17)
    code, out = await logged.cli("log", "verify", "--json")
    assert code == 1 and '"projected_size": 600' in out and '"projection_lag": 0' in out
    assert "entry 17: it is below the projection's high-water mark" in out

    code, out = await logged.cli("log", "reindex")
    assert code == 0, out
    assert "reindexed: the search projection rebuilt from 600 entries" in out
    assert "search projection checked up to its mark 600, 0 entries not projected yet" in out
    code, out = await logged.cli("log", "verify")
    assert code == 0, out


async def test_truncated_tail_is_named(logged: Setup) -> None:
    await logged.sql("DELETE FROM log_entries WHERE idx >= ?", 590)

    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "entries from index 590 were removed" in out or "entries 590..599 are missing" in out
    assert "first bad index: 590\n" in out


async def test_altered_checkpoint_is_named(logged: Setup) -> None:
    checkpoint = (await logged.store.checkpoints())[1]
    lines = checkpoint.note.split("\n")
    lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]  # the root hash
    await logged.sql("UPDATE checkpoints SET note = ? WHERE seq = ?", "\n".join(lines), 2)

    code, out = await logged.cli("log", "verify")
    assert code == 1
    assert "checkpoint #2 (size 600) does not verify" in out


async def test_checkpoint_prove_and_verify_the_proof_offline(logged: Setup, tmp_path: Path) -> None:
    await logged.service.append_rows([row_of(entry(ENTRIES))])
    code, key = await logged.cli("log", "key")
    assert code == 0 and key.strip() == logged.service.signer.verifier_key

    code, out = await logged.cli("log", "prove", str(ENTRIES))  # beyond the last checkpoint
    assert code == 0, out
    document = json.loads(out)
    assert (document["index"], document["tree_size"]) == (ENTRIES, ENTRIES + 1)
    assert document["entry"]["disclosure_id"] == f"d-{ENTRIES}"
    path = tmp_path / "proof.json"
    path.write_text(out)
    code, out = await logged.cli("log", "verify-proof", str(path), "--key", key.strip())
    assert code == 0 and f"entry {ENTRIES} is in the log" in out

    document["entry"]["outcome"] = "failed"
    path.write_text(json.dumps(document))
    code, out = await logged.cli("log", "verify-proof", str(path), "--key", key.strip())
    assert code == 1 and "FAILED" in out

    code, out = await logged.cli("log", "checkpoint")
    assert code == 0 and out.split("\n")[1] == str(ENTRIES + 1)


async def test_export_jsonl_and_csv(logged: Setup, tmp_path: Path) -> None:
    code, out = await logged.cli("log", "export", "--format", "jsonl")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == ENTRIES and json.loads(lines[7])["index"] == 7
    target = tmp_path / "log.csv"
    code, _ = await logged.cli("log", "export", "--format", "csv", "--output", str(target))
    rows = target.read_text().splitlines()
    # The first export's own `action` entry is in the second (an export is recorded first).
    assert code == 0 and len(rows) == ENTRIES + 2 and rows[0].startswith("index,time,kind")
    assert ",action," in rows[-1]


async def test_forget_before_keeps_verify_green_and_unlinks_old_months(setup: Setup) -> None:
    keys = LogKeys.load(setup.root / "keys")
    this_month = Period.of(datetime.now(UTC))
    months = [this_month.previous().start + timedelta(days=3), this_month.start]
    for i, at in enumerate(months):
        await setup.service.append(
            {
                "v": 1,
                "kind": "intent",
                "time": at.isoformat().replace("+00:00", "Z"),
                "disclosure_id": f"d-{i}",
                "partner": "lao-credit-bureau",
                "purpose": "service_provision",
                "legal_basis": "consent",
                "subject_ref": keys.subject_ref(SUBJECT, at),
            }
        )
        await setup.service.append(json.loads(row_of(entry(i)).entry))
    await setup.service.checkpoint()

    async def found() -> list[str]:
        code, out = await setup.cli("log", "search", "--subject", SUBJECT, "--json")
        assert code == 0
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return [json.loads(line)["entry"]["disclosure_id"] for line in lines]

    assert await found() == ["d-0", "d-1"]
    code, out = await setup.cli("log", "forget-before", str(this_month.start.date()), "--yes")
    assert code == 0 and "destroyed the subject keys" in out

    assert await found() == ["d-1"]
    code, out = await setup.cli("log", "verify")
    assert code == 0, out
    code, out = await setup.cli("log", "search", "--outcome", "sent")
    assert code == 0 and "d-0" in out and "d-1" in out
    assert SUBJECT not in out


async def test_usage_errors_exit_2(setup: Setup) -> None:
    code, out = await setup.cli("log", "search", "--since", "yesterday")
    assert code == 2
    code, out = await setup.cli("log", "prove", "12")
    assert code == 2 and "no log entry with index 12" in out
    future = Period.of(datetime.now(UTC)).next().next().start.date()
    code, out = await setup.cli("log", "forget-before", str(future))
    assert code == 2 and "still written" in out


class _Terminal(io.StringIO):
    """Standard input that is a terminal, with what the person types."""

    def isatty(self) -> bool:
        return True


def test_forget_before_asks_unless_yes(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "project"
    shutil.copytree(project / "keys", root / "keys")
    (root / "partners").symlink_to(project / "partners")
    shutil.copy(project / "config.toml", root / "config.toml")
    key_file = root / "keys" / "log-subject-periods.key"
    LogKeys.load(root / "keys")
    before = key_file.read_bytes()
    this_month = str(Period.of(datetime.now(UTC)).start.date())
    argv = ["--config", str(root / "config.toml"), "log", "forget-before", this_month]

    # No terminal and no --yes: refused, exit 2, nothing destroyed.
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pass --yes" in err and "destroy the subject keys" in err
    assert key_file.read_bytes() == before

    # A terminal: what goes is named; anything but "yes" keeps the keys.
    monkeypatch.setattr("sys.stdin", _Terminal("no\n"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Type yes" in err and "nothing was destroyed" in err
    assert key_file.read_bytes() == before

    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    assert main(argv) == 0
    assert "destroyed the subject keys" in capsys.readouterr().out
    assert key_file.read_bytes() != before


async def test_export_shows_progress_on_a_terminal_only(logged: Setup, tmp_path: Path) -> None:
    target = tmp_path / "log.jsonl"
    argv = ["--config", str(logged.root / "config.toml"), "log", "export", "--output", str(target)]

    def run(stderr: io.StringIO) -> int:
        with redirect_stderr(stderr):
            return main(argv)

    terminal = _Terminal()
    assert await asyncio.to_thread(run, terminal) == 0
    shown = terminal.getvalue()
    assert "exporting" in shown and f"/{ENTRIES} " in shown and "\r" in shown

    piped = io.StringIO()
    assert await asyncio.to_thread(run, piped) == 0
    # The first export's own `action` entry is one more entry to the second.
    assert piped.getvalue() == f"exported {ENTRIES + 1} entries\n"
    assert len(target.read_text().splitlines()) == ENTRIES + 1


# -- verify over several processes (`--jobs`): the same verdict, the same entries named -------

TAMPERINGS = {
    "untouched": [],
    "edited": [("UPDATE log_entries SET entry = ? WHERE idx = ?", b"{}", 300)],
    "deleted": [("DELETE FROM log_entries WHERE idx = ?", 257)],
    "deleted_at_a_range_border": [("DELETE FROM log_entries WHERE idx >= ? AND idx < ?", 256, 513)],
    "truncated": [("DELETE FROM log_entries WHERE idx >= ?", 590)],
    "column": [("UPDATE log_index SET partner = ? WHERE idx = ?", "elsewhere", 420)],
    "renumbered": [("UPDATE log_entries SET idx = ? WHERE idx = ?", 1_000_000, 5)],
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
async def test_verify_with_jobs_says_what_one_process_says(logged: Setup, tampering: str) -> None:
    for sql, *params in TAMPERINGS[tampering]:
        await logged.sql(sql, *params)

    code, alone = await logged.cli("log", "verify", "--jobs", "1")
    code_pool, pooled = await logged.cli("log", "verify", "--jobs", "2")

    assert code_pool == code == (0 if tampering == "untouched" else 1)
    timing = re.compile(r" in [\d.]+s;")
    assert timing.sub("", pooled) == timing.sub("", alone)


async def test_a_tampered_entry_is_named_with_two_jobs(logged: Setup) -> None:
    edited = (await logged.entry(5)).replace(b'"sent"', b'"failed"')
    await logged.sql("UPDATE log_entries SET entry = ? WHERE idx = ?", edited, 5)

    code, out = await logged.cli("log", "verify", "--jobs", "2")
    assert code == 1
    assert "entry 5: its bytes do not hash to its stored leaf hash" in out
    assert "first bad index: 5\n" in out


def test_jobs_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["log", "verify", "--jobs", "0"])
    assert exit_.value.code == 2
    assert "'0' is not a whole number of processes (1 or more)" in capsys.readouterr().err
