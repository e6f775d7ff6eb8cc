"""The backup and restore drill (issue #18 item 7; docs/OPERATIONS.md, "Backup and restore"),
on SQLite and PostgreSQL, against two real witness processes (`gateway witness serve` and
the spec-only witness of tests/support):

disclose, checkpoint, cosign, back up; more, checkpoint, cosign, back up again. (a) The newer
backup restored into a fresh store verifies, and the next checkpoint over it is cosigned by
both witnesses. (b) The older backup restored (refused without the override) verifies on its
own — it cannot know better — but its next checkpoint is a rollback alarm at both witnesses,
naming their size and the log's; restoring a newer copy is cosigned again. Also: a backup
taken while disclosures are written verifies, and a restore refuses a running store.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from support.log import sent_entry, sent_rows
from support.witnesses import gateway_witness, spec_witness, write_policy

from gateway.clock import utc_now
from gateway.config.model import Config, load_config
from gateway.crypto.at_rest import new_key_text
from gateway.log.service import LogService, LogSigner
from gateway.log.witness_policy import WitnessPolicy, parse_witness_policy
from gateway.ops.backup import (
    BackupError,
    Comparison,
    LogState,
    RestoreRefused,
    manifest_path,
    read_manifest,
    restore_backup,
    take_backup,
)
from gateway.ops.reload import claim_pid_file, pid_file_of
from gateway.outbound.witnesses import Cosigned, Witnessing, cosign_checkpoint
from gateway.store import open_store
from gateway.store.protected import open_protected_store
from gateway.store.records import StoredCheckpoint

if TYPE_CHECKING:
    from conftest import Backend

GATEWAY = Path(sys.executable).parent / "gateway"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# -- a deployment folder per test, sharing the session's keys -------------------------------


def write_config(project: Path, root: Path, url: str) -> Config:
    """config.toml in `root` on `url`, with the session project's keys and partners."""
    text = (project / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{url}"')
    text = text.replace('dir = "keys"', f'dir = "{project / "keys"}"')
    text = text.replace('dir = "partners"', f'dir = "{project / "partners"}"')
    text = text.replace('jwks = "keys/', f'jwks = "{project}/keys/')
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(text, encoding="utf-8")
    config = load_config(root / "config.toml")
    assert config.storage_url == url
    return config


@dataclass
class Site:
    """The stores of one drill: `primary`, and `fresh(name)` — an empty store to restore
    into (SQLite: a new file; PostgreSQL: the test's schema dropped and made again, since a
    dump names its schema)."""

    backend: Backend
    project: Path

    @property
    def primary(self) -> Config:
        return write_config(self.project, self.backend.root / "primary", self.backend.url)

    async def fresh(self, name: str) -> Config:
        if self.backend.name == "sqlite":
            root = self.backend.root / name
            return write_config(self.project, root, "sqlite:///var/gateway.db")
        admin, schema = self.backend.admin, self.backend.schema
        assert admin is not None and schema is not None
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        return write_config(self.project, self.backend.root / name, self.backend.url)


@pytest.fixture
def site(backend: Backend, project: Path) -> Site:
    if backend.name == "postgresql" and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump and pg_restore are not installed")
    return Site(backend, project)


class LogServiceHandle:
    """A LogService on a config's store, opened and closed around each use."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def append_and_checkpoint(self, count: int) -> StoredCheckpoint:
        async with opened(self.config) as service:
            start = await service.size()
            await service.append_rows(sent_rows(start, start + count, T0))
            return await service.checkpoint()


class opened:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def __aenter__(self) -> LogService:
        self.store = await open_store(self.config.storage_url, self.config.root)
        self.service = LogService(self.store, signer(self.config))
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop(final_checkpoint=False)
        await self.store.close()


def signer(config: Config) -> LogSigner:
    return LogSigner.load(config.keys_dir, config.log.origin)


# -- the two witnesses ------------------------------------------------------------------------


@contextmanager
def witnesses(directory: Path, log_vkey: str) -> Iterator[WitnessPolicy]:
    """`gateway witness serve` and the spec witness, both for this log, and a policy that
    needs both."""
    with (
        gateway_witness(directory / "gw", log_vkey) as gw,
        spec_witness(directory / "spec", log_vkey) as spec,
    ):
        policy = write_policy(directory / "policy.txt", log_vkey, {"gw": gw, "spec": spec})
        yield parse_witness_policy(policy.read_bytes(), "policy.txt")


async def cosign(config: Config, policy: WitnessPolicy, known: dict[str, int]) -> Witnessing:
    """The store's latest checkpoint to both witnesses, as a freshly started instance would
    send it (`known`: the sizes it remembers; {} after a restore)."""
    async with opened(config) as service, aiohttp.ClientSession() as session:
        latest = await service.checkpoint()
        return await cosign_checkpoint(
            session, policy, latest.note, latest.size, service.consistency_proof, known
        )


def assert_cosigned(result: Witnessing, size: int) -> None:
    assert result.quorum_met, result.outcomes
    assert result.cosigned == {
        "gw": Cosigned("gw", size, result.cosigned["gw"].lines),
        "spec": Cosigned("spec", size, result.cosigned["spec"].lines),
    }


# -- the drill ----------------------------------------------------------------------------------


async def test_the_drill_newer_backup_is_cosigned_older_one_is_a_rollback_alarm(
    site: Site, tmp_path: Path
) -> None:
    primary = site.primary
    backups = tmp_path / "backups"
    with witnesses(tmp_path / "witnesses", signer(primary).verifier_key) as policy:
        # Disclose, checkpoint, cosign, back up.
        first = await LogServiceHandle(primary).append_and_checkpoint(5)
        assert first.size == 5
        assert_cosigned(cosigned := await cosign(primary, policy, {}), 5)
        known = cosigned.known_sizes({})
        older = await take_backup(primary, backups / "older.db", utc_now())
        assert older.log == LogState(5, older.log.checkpoint)
        assert older.log.checkpoint is not None and older.log.checkpoint.size == 5
        # More, checkpoint, cosign, back up again.
        await LogServiceHandle(primary).append_and_checkpoint(7)
        assert_cosigned(cosigned := await cosign(primary, policy, known), 12)
        newer = await take_backup(primary, backups / "newer.db", utc_now())
        assert (newer.log.size, newer.log.signed_size) == (12, 12)

        # (a) The newer backup into a fresh store: verifies, and its next checkpoint (two
        # more disclosures) is cosigned by both — the witnesses accept the restored log.
        restored_a = await site.fresh("a")
        done = await restore_backup(
            restored_a, backups / "newer.db", utc_now(), older_allowed=False
        )
        assert done.report.ok, done.report.problems
        assert (done.report.entries, done.report.checkpoints) == (12, 2)
        await LogServiceHandle(restored_a).append_and_checkpoint(2)
        assert_cosigned(await cosign(restored_a, policy, {}), 14)
        after_a = await take_backup(restored_a, backups / "after-a.db", utc_now())

        # (b) The older backup over it: refused, then forced; it verifies on its own …
        with pytest.raises(RestoreRefused, match=r"longer than the backup's.*--older-than"):
            await restore_backup(restored_a, backups / "older.db", utc_now(), older_allowed=False)
        forced = await restore_backup(
            restored_a, backups / "older.db", utc_now(), older_allowed=True
        )
        assert forced.comparison is Comparison.OLDER
        assert forced.report.ok and forced.report.entries == 5
        # The longer log it overwrote was kept first, restorable as it is.
        assert forced.kept is not None and forced.kept.parent.name == "before-restore"
        assert read_manifest(forced.kept).log.size == 14
        # … but the witnesses have cosigned 14: its next checkpoint is a rollback alarm at
        # both, naming the witness and both sizes.
        alarm = await cosign(restored_a, policy, {})
        assert not alarm.quorum_met and alarm.cosigned == {}
        assert {(a.witness, a.witness_size, a.log_size) for a in alarm.alarms} == {
            ("gw", 14, 5),
            ("spec", 14, 5),
        }
        # Recovery: a newer copy (never re-signing the shorter log) is cosigned again.
        recovered = await restore_backup(
            restored_a, backups / "after-a.db", utc_now(), older_allowed=False
        )
        assert recovered.report.ok and recovered.report.entries == after_a.log.size == 14
        await LogServiceHandle(restored_a).append_and_checkpoint(3)
        assert_cosigned(await cosign(restored_a, policy, {}), 17)


async def test_a_backup_taken_while_disclosures_are_written_verifies(
    site: Site, tmp_path: Path
) -> None:
    primary = site.primary
    async with opened(primary) as service:
        await service.append_rows(sent_rows(0, 50, T0))
        await service.checkpoint()
        writing = True

        async def disclose() -> int:
            written = 50
            while writing:
                await service.append(sent_entry(written, T0))
                written += 1
            return written

        task = asyncio.create_task(disclose())
        await asyncio.sleep(0.2)
        manifest = await take_backup(primary, tmp_path / "live.db", utc_now())
        await asyncio.sleep(0.1)
        writing = False
        written = await task
    assert 50 <= manifest.log.size <= written
    restored = await site.fresh("restored")
    done = await restore_backup(restored, tmp_path / "live.db", utc_now(), older_allowed=False)
    assert done.report.ok, done.report.problems
    if site.backend.name == "sqlite":
        # The manifest's size is read from the copy itself; PostgreSQL's is a lower bound.
        assert done.report.entries == manifest.log.size
    assert done.report.entries >= manifest.log.size


async def test_restore_refuses_a_running_gateway(site: Site, tmp_path: Path) -> None:
    primary = site.primary
    await LogServiceHandle(primary).append_and_checkpoint(3)
    await take_backup(primary, tmp_path / "b.db", utc_now())
    store = await open_store(primary.storage_url, primary.root)
    try:
        await store.register_instance("i-1", "host-a", 4242)
    finally:
        await store.close()
    with pytest.raises(RestoreRefused, match=r"still heartbeat.*stop every instance"):
        await restore_backup(primary, tmp_path / "b.db", utc_now(), older_allowed=False)
    claim_pid_file(pid_file_of(primary), os.getpid())  # this process is alive
    with pytest.raises(RestoreRefused, match=r"a gateway is running \(pid"):
        await restore_backup(primary, tmp_path / "b.db", utc_now(), older_allowed=False)


async def test_a_backup_with_another_log_key_or_altered_is_refused(
    site: Site, tmp_path: Path
) -> None:
    primary = site.primary
    await LogServiceHandle(primary).append_and_checkpoint(2)
    backup = tmp_path / "b.db"
    await take_backup(primary, backup, utc_now())
    manifest = json.loads(manifest_path(backup).read_text())
    manifest["log"]["verifier_key"] = "someone.else/log+00000000+AAAA"
    manifest_path(backup).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="restore the keys/ that belong to this backup"):
        await restore_backup(await site.fresh("x"), backup, utc_now(), older_allowed=False)
    with backup.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BackupError, match="SHA-256"):
        await restore_backup(await site.fresh("y"), backup, utc_now(), older_allowed=False)


async def test_a_restore_needing_an_at_rest_key_keys_no_longer_hold_says_so(
    site: Site, tmp_path: Path, project: Path
) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(project / "keys", keys)
    primary = site.primary
    text = (primary.root / "config.toml").read_text(encoding="utf-8")
    (primary.root / "config.toml").write_text(text.replace(str(project / "keys"), str(keys)))
    primary = load_config(primary.root / "config.toml")
    store = await open_protected_store(primary.storage_url, primary.root, primary.keys_dir)
    try:
        await store.set_profile("subject-1", "minor")  # sealed with at-rest-1.key
    finally:
        await store.close()
    await take_backup(primary, tmp_path / "b.db", utc_now())
    # keys/ after a rotation whose old key was deleted: the backup's values are sealed
    # with a key that is gone.
    (keys / "at-rest-1.key").rename(tmp_path / "at-rest-1.key")
    (keys / "at-rest-2.key").write_bytes(new_key_text())
    (keys / "at-rest-2.key").chmod(0o600)
    with pytest.raises(BackupError, match=r"cannot be opened with .*put back the keys/ backup"):
        await restore_backup(primary, tmp_path / "b.db", utc_now(), older_allowed=True)


# -- the commands, as an operator runs them -----------------------------------------------------


def run_gateway(config: Config, *args: str, env: dict[str, str] | None = None) -> Done:
    done = subprocess.run(
        [str(GATEWAY), "--config", str(config.path), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    return Done(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


def test_the_commands_back_up_refuse_an_older_copy_and_restore_it_when_told(
    tmp_path: Path, project: Path
) -> None:
    config = write_config(project, tmp_path / "gw", "sqlite:///var/gateway.db")
    asyncio.run(LogServiceHandle(config).append_and_checkpoint(3))
    backup = tmp_path / "backups" / "gateway-1.db"

    taken = run_gateway(config, "db", "backup", str(backup))
    assert taken.code == 0, taken.err
    assert "log in the backup: 3 entries, latest checkpoint of size 3" in taken.out
    assert "keys/ is not in it" in taken.out
    assert oct(backup.stat().st_mode & 0o777) == oct(0o600)
    assert oct(manifest_path(backup).stat().st_mode & 0o777) == oct(0o600)
    again = run_gateway(config, "db", "backup", str(backup))
    assert again.code == 2 and "already exists" in again.err
    beside_keys = run_gateway(config, "db", "backup", str(config.keys_dir / "db.backup"))
    assert beside_keys.code == 2 and "inside the keys folder" in beside_keys.err

    asyncio.run(LogServiceHandle(config).append_and_checkpoint(2))
    refused = run_gateway(config, "db", "restore", str(backup))
    assert refused.code == 1
    assert "refused: the store's log (5 entries" in refused.err
    assert "--older-than-published" in refused.err

    forced = run_gateway(config, "db", "restore", "--older-than-published", str(backup))
    assert forced.code == 0, forced.err
    assert "WARNING: the backup's log is SHORTER" in forced.err
    assert "log verify: ok: 3 entries and 1 checkpoint(s) verified" in forced.out
    kept = forced.out.split("the store it replaced is kept in ")[1].split(" (with")[0]
    assert read_manifest(Path(kept)).log.size == 5
    verified = run_gateway(config, "log", "verify")
    assert verified.code == 0 and "ok: 3 entries" in verified.out

    missing = run_gateway(config, "db", "restore", str(tmp_path / "nothing.db"))
    assert missing.code == 2 and "there is no backup file" in missing.err


def test_backup_of_postgresql_without_pg_dump_says_what_to_do(
    tmp_path: Path, project: Path
) -> None:
    config = write_config(project, tmp_path / "gw", "postgresql://gw@127.0.0.1:1/none")
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    done = run_gateway(config, "db", "backup", str(tmp_path / "b.dump"), env=env)
    assert done.code == 2
    assert "pg_dump is not on PATH" in done.err and "pg_dump -Fc" in done.err
