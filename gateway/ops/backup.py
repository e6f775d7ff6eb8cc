"""Backing up the store and restoring it, without ever making the published log shorter
(issue #18, item 7; the procedure is in docs/OPERATIONS.md, "Backup and restore").

`take_backup` writes a consistent copy of the configured store while the gateway runs —
SQLite through its online backup API (`store.sqlite_connection.copy_database`), PostgreSQL
through ``pg_dump -Fc`` — and beside it, ``FILE.json``, the manifest: the log's size and
latest signed checkpoint in the copy, the schema version, the copy's SHA-256.

`restore_backup` puts a copy back into a stopped store, then audits it as ``gateway log
verify`` does. Before it overwrites anything it compares the backup's log with the store's
(`compare_logs`, pure): a backup whose log is shorter than the one in the store is older
than what may have been published, and is refused unless the operator says so. Whatever it
compares against, it cannot know what the witnesses have cosigned: the next checkpoint
submitted to them does (a rollback alarm), and the only recovery from that is a newer copy
of the log, never re-signing a shorter one.

The keys are not in the backup, on purpose: a database backup with `keys/` beside it would
be the at-rest sealed values with the key that opens them. The manifest names the log's
verifier key, so a restore with the wrong `keys/` is refused before anything is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import gateway
from gateway.config.model import Config
from gateway.errors import ConfigErrors
from gateway.files import write_atomically
from gateway.log.audit import AuditReport, audit_store
from gateway.log.checkpoint import CheckpointError
from gateway.log.service import LogSigner
from gateway.ops.reload import pid_file_of, read_pid_file
from gateway.store import POSTGRES_PREFIXES, SQLITE_PREFIX, Store, open_store, sqlite_path
from gateway.store.protected import open_protected_store
from gateway.store.records import InstanceRecord, StoredCheckpoint, StoreUnavailable

__all__ = [
    "MANIFEST_FORMAT",
    "BackupError",
    "Comparison",
    "LogState",
    "Manifest",
    "RestoreRefused",
    "Restored",
    "compare_logs",
    "live_instances",
    "manifest_path",
    "read_manifest",
    "restore_backup",
    "running_gateway",
    "take_backup",
]

log = logging.getLogger("gateway.backup")

MANIFEST_FORMAT: Final = "disclosure-gateway-backup/1"
PROCEDURE: Final = "docs/OPERATIONS.md, 'Backup and restore'"
_CHUNK: Final = 1 << 20


class BackupError(Exception):
    """The backup or restore could not be done as asked (a usage problem: exit 2)."""


class RestoreRefused(Exception):
    """The restore would lose log entries or overwrite a running store: refused (exit 1)."""


# -- what a backup holds, and the decision --------------------------------------------------


@dataclass(frozen=True)
class LogState:
    """A log as a backup or a store holds it: its size and its latest signed checkpoint."""

    size: int
    checkpoint: StoredCheckpoint | None

    @property
    def empty(self) -> bool:
        return self.size == 0 and self.checkpoint is None

    @property
    def signed_size(self) -> int:
        return self.checkpoint.size if self.checkpoint is not None else 0

    def describe(self) -> str:
        signed = (
            f"latest checkpoint of size {self.checkpoint.size} signed "
            f"{self.checkpoint.at.isoformat(timespec='seconds')}"
            if self.checkpoint is not None
            else "no checkpoint"
        )
        return f"{self.size} entries, {signed}"


class Comparison(Enum):
    EMPTY = "the store holds no log"
    NOT_OLDER = "the backup's log is at least as long as the store's"
    OLDER = "the backup's log is shorter than the store's"


def compare_logs(backup: LogState, current: LogState) -> Comparison:
    """Would restoring `backup` over `current` make the log shorter, or lose a checkpoint the
    store signed? Entries beyond the latest checkpoint count too: they were disclosed, and
    the next checkpoint signs them."""
    if current.empty:
        return Comparison.EMPTY
    if current.size > backup.size or current.signed_size > backup.signed_size:
        return Comparison.OLDER
    return Comparison.NOT_OLDER


def live_instances(
    instances: Sequence[InstanceRecord], now: datetime, timeout_s: float
) -> list[InstanceRecord]:
    """The instances whose heartbeat is fresh (`[log] instance_timeout_s`) and that have
    not stopped: a gateway still serving from this store."""
    fresh = now - timedelta(seconds=timeout_s)
    return [
        i
        for i in instances
        if i.recovered_at is None and i.claimed_by is None and i.heartbeat_at >= fresh
    ]


@dataclass(frozen=True)
class Manifest:
    """``FILE.json``: what the backup FILE holds, written when it was taken."""

    backend: str  # "sqlite" or "postgresql"
    file_name: str
    sha256: str
    created_at: datetime
    gateway_version: str
    schema_version: int
    origin: str
    verifier_key: str
    log: LogState
    at_least: bool = False  # PostgreSQL: the log as read just before the dump began

    def to_json(self) -> dict[str, Any]:
        cp = self.log.checkpoint
        return {
            "format": MANIFEST_FORMAT,
            "backend": self.backend,
            "file": {"name": self.file_name, "sha256": self.sha256},
            "created_at": self.created_at.isoformat(),
            "gateway_version": self.gateway_version,
            "schema_version": self.schema_version,
            "log": {
                "origin": self.origin,
                "verifier_key": self.verifier_key,
                "size": self.log.size,
                "size_is_at_least": self.at_least,
                "checkpoint": None
                if cp is None
                else {"seq": cp.seq, "size": cp.size, "at": cp.at.isoformat(), "note": cp.note},
            },
            "keys": f"not in this backup: restore keys/ from its own backup (see {PROCEDURE})",
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is not {MANIFEST_FORMAT!r}")
        entry = data["log"]
        cp = entry["checkpoint"]
        checkpoint = (
            None
            if cp is None
            else StoredCheckpoint(
                int(cp["size"]), str(cp["note"]), datetime.fromisoformat(cp["at"]), int(cp["seq"])
            )
        )
        return cls(
            backend=str(data["backend"]),
            file_name=str(data["file"]["name"]),
            sha256=str(data["file"]["sha256"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            gateway_version=str(data["gateway_version"]),
            schema_version=int(data["schema_version"]),
            origin=str(entry["origin"]),
            verifier_key=str(entry["verifier_key"]),
            log=LogState(int(entry["size"]), checkpoint),
            at_least=bool(entry.get("size_is_at_least", False)),
        )


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".json")


def read_manifest(backup: Path) -> Manifest:
    path = manifest_path(backup)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.from_json(data)
    except FileNotFoundError:
        raise BackupError(
            f"{path.name} is missing beside {backup.name}: it records the log the backup "
            "holds, which the restore checks before overwriting anything; restore both files "
            "`gateway db backup` wrote"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(
            f"{path.name} is not a backup manifest ({type(exc).__name__}: {exc}); it must be "
            "the file `gateway db backup` wrote beside the backup"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _backend(config: Config) -> str:
    if config.storage_url.startswith(SQLITE_PREFIX):
        return "sqlite"
    if config.storage_url.startswith(POSTGRES_PREFIXES):
        return "postgresql"
    raise BackupError("storage.url must start with sqlite:/// or postgresql://")


def _signer(config: Config) -> LogSigner:
    try:
        return LogSigner.load(config.keys_dir, config.log.origin)
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"cannot read the log signing key in {config.keys_dir} ({type(exc).__name__}): "
            "restore keys/ from its own backup first"
        ) from None


async def _log_state(store: Store) -> LogState:
    # The checkpoint first: the log only grows, so the size read after it is at least its.
    checkpoint = await store.latest_checkpoint()
    return LogState(await store.log_size(), checkpoint)


def _outside_keys(config: Config, target: Path) -> None:
    keys = config.keys_dir.resolve()
    if target.resolve().is_relative_to(keys):
        raise BackupError(
            f"{target} is inside the keys folder {config.keys_dir}: a database backup must "
            "not sit beside the keys that open its sealed values; write it elsewhere and back "
            "up keys/ on its own"
        )


# -- backup ---------------------------------------------------------------------------------


async def take_backup(config: Config, target: Path, now: datetime) -> Manifest:
    """Write a consistent copy of the configured store to `target` (mode 0600) and its
    manifest to ``target.json``; the gateway may keep serving meanwhile."""
    backend = _backend(config)
    if target.exists() or manifest_path(target).exists():
        raise BackupError(
            f"{target} (or its {manifest_path(target).name}) already exists: a backup never "
            "replaces another; choose a new name (a date in it, say)"
        )
    _outside_keys(config, target)
    signer = _signer(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)  # mode 0600, kept by what writes into it
    partial = Path(name)
    try:
        if backend == "sqlite":
            state, schema = await _copy_sqlite(config, partial)
            at_least = False
        else:
            state, schema = await _dump_postgres(config, partial)
            at_least = True
        _fsync(partial)
        manifest = Manifest(
            backend=backend,
            file_name=target.name,
            sha256=await asyncio.to_thread(_sha256, partial),
            created_at=now,
            gateway_version=gateway.__version__,
            schema_version=schema,
            origin=signer.name,
            verifier_key=signer.verifier_key,
            log=state,
            at_least=at_least,
        )
        text = json.dumps(manifest.to_json(), indent=2) + "\n"
        write_atomically(manifest_path(target), text.encode())
        try:
            os.replace(partial, target)
            _fsync_directory(target.parent)
        except OSError:
            manifest_path(target).unlink(missing_ok=True)  # no manifest without its backup
            raise
    finally:
        partial.unlink(missing_ok=True)
    log.info(
        "backup written: %s store, %d log entries, latest checkpoint size %d",
        backend,
        manifest.log.size,
        manifest.log.signed_size,
    )
    return manifest


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _copy_sqlite(config: Config, partial: Path) -> tuple[LogState, int]:
    from gateway.store.sqlite import SqliteStore
    from gateway.store.sqlite_connection import copy_database, make_single_file

    source = sqlite_path(config.storage_url, config.root)
    if not isinstance(source, Path) or not source.is_file():
        raise BackupError(f"there is no SQLite database at {source} (storage.url) to back up")
    await asyncio.to_thread(copy_database, source, partial)
    # What the copy holds is read from the copy itself: exactly what a restore puts back.
    copy = await SqliteStore.open(partial)
    try:
        state = await _log_state(copy)
        schema = max(await copy.schema_versions())
    finally:
        await copy.close()
    await asyncio.to_thread(make_single_file, partial)
    return state, schema


# -- PostgreSQL: pg_dump / pg_restore -------------------------------------------------------

# libpq's URI parameters; the others in storage.url are asyncpg's server settings.
_LIBPQ_PARAMS: Final = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name"}
)


@dataclass(frozen=True)
class _PgTarget:
    url: str  # for libpq, without the password
    password: str | None
    schema: str | None


def _pg_target(url: str) -> _PgTarget:
    """storage.url as the PostgreSQL client programs take it: the password in the
    environment (not in the process list), `search_path` as the schema to dump."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.get("search_path")
    kept = urlencode([(k, v) for k, v in query.items() if k in _LIBPQ_PARAMS])
    netloc = parts.netloc
    password = None
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        password = unquote(secret) if secret else None
        netloc = f"{user}@{host}"
    libpq = urlunsplit(parts._replace(scheme="postgresql", netloc=netloc, query=kept))
    return _PgTarget(libpq, password, schema.split(",")[0].strip() if schema else None)


def _client(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise BackupError(
            f"{program} is not on PATH: install the PostgreSQL client programs (the server's "
            f"major version or newer), or run `pg_dump -Fc` / `pg_restore` yourself as "
            f"{PROCEDURE} describes"
        )
    return found


def _run_client(command: list[str], target: _PgTarget) -> None:
    env = dict(os.environ)
    if target.password is not None:
        env["PGPASSWORD"] = target.password
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        # pg_dump's messages name objects, never row values.
        lines = [line for line in done.stderr.splitlines() if line.strip()][-3:]
        raise BackupError(
            f"{Path(command[0]).name} failed (exit {done.returncode}): " + " / ".join(lines)
        )


async def _dump_postgres(config: Config, partial: Path) -> tuple[LogState, int]:
    program = _client("pg_dump")
    target = _pg_target(config.storage_url)
    # pg_dump reads one snapshot; the log read just before it is a lower bound of the dump's
    # (the log only grows), which is what a restore compares against.
    store = await open_store(config.storage_url, config.root)
    try:
        state = await _log_state(store)
        schema = max(await store.schema_versions())
    finally:
        await store.close()
    command = [program, "--format=custom", "--no-owner", f"--file={partial}"]
    command += [f"--schema={target.schema}"] if target.schema else []
    await asyncio.to_thread(_run_client, [*command, f"--dbname={target.url}"], target)
    return state, schema


# -- restore --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    """What a restore did: the manifest of the copy put back, the store's log before it
    (None: no store there yet), how they compared, the audit of the restored log, and where
    the store it overwrote was kept."""

    manifest: Manifest
    replaced: LogState | None
    comparison: Comparison
    report: AuditReport
    kept: Path | None = None  # the copy of the store it overwrote (var/before-restore/)


def running_gateway(config: Config) -> int | None:
    """The pid of the gateway the config folder's pid file names, if that process is alive:
    the store must not be changed under it (a restore, SQLite's VACUUM)."""
    pid = read_pid_file(pid_file_of(config))
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    return pid


async def restore_backup(
    config: Config, source: Path, now: datetime, *, older_allowed: bool
) -> Restored:
    """Put the backup at `source` into the configured (stopped) store and audit it.

    Refuses (RestoreRefused) while a gateway serves from the store, or when the store's log
    is longer than the backup's unless `older_allowed`; BackupError for a backup that is not
    one, of another backend, or signed with another log key than `keys/` holds.
    """
    manifest = _checked_manifest(config, source)
    pid = running_gateway(config)
    if pid is not None:
        raise RestoreRefused(
            f"a gateway is running (pid {pid}, {pid_file_of(config)}): stop every instance "
            "on this store, then restore"
        )
    current = await _current_log(config, now)
    comparison = Comparison.EMPTY if current is None else compare_logs(manifest.log, current)
    if comparison is Comparison.OLDER and current is not None:
        message = (
            f"the store's log ({current.describe()}) is longer than the backup's "
            f"({manifest.log.describe()}): restoring it would take the log back to a size "
            "that may already be published and cosigned by witnesses"
        )
        if not older_allowed:
            raise RestoreRefused(
                message + "; restore a newer copy instead (see "
                f"{PROCEDURE}), or give --older-than-published if you know nothing beyond "
                "the backup was ever published"
            )
        log.warning("restoring an older backup on the operator's word: %s", message)
    kept = None
    if current is not None and not current.empty:
        kept = await _keep_current(config, now)
    if manifest.backend == "sqlite":
        target = sqlite_path(config.storage_url, config.root)
        if not isinstance(target, Path):
            raise BackupError("storage.url names an in-memory database: nothing to restore into")
        from gateway.store.sqlite_connection import copy_database

        await asyncio.to_thread(copy_database, source, target)
    else:
        await _restore_postgres(config, source)
    report = await _audit(config)
    log.warning(
        "store restored from a backup of %s: %d log entries, audit %s",
        manifest.created_at.isoformat(timespec="seconds"),
        report.entries,
        "ok" if report.ok else f"found {len(report.problems)} problem(s)",
    )
    return Restored(manifest, current, comparison, report, kept)


SAFETY_COPIES: Final = Path("var") / "before-restore"


async def _keep_current(config: Config, now: datetime) -> Path:
    """A backup of the store about to be overwritten, under ``var/before-restore/`` (with
    its manifest, so `gateway db restore` takes it back): a restore never destroys the only
    copy of a log, least of all a longer one overwritten on the operator's word."""
    suffix = ".db" if _backend(config) == "sqlite" else ".dump"
    path = config.root / SAFETY_COPIES / f"gateway-{now.strftime('%Y%m%dT%H%M%S%fZ')}{suffix}"
    try:
        await take_backup(config, path, now)
    except (BackupError, StoreUnavailable) as exc:
        detail = exc.detail if isinstance(exc, StoreUnavailable) else str(exc)
        raise BackupError(
            f"could not keep a copy of the store before overwriting it ({detail}); nothing "
            "was restored: move the store aside yourself (SQLite: the database file and its "
            "-wal; PostgreSQL: a new database or schema), then restore into the empty one"
        ) from None
    return path


def _checked_manifest(config: Config, source: Path) -> Manifest:
    if not source.is_file():
        raise BackupError(f"there is no backup file at {source}")
    manifest = read_manifest(source)
    backend = _backend(config)
    if manifest.backend != backend:
        raise BackupError(
            f"{source.name} is a {manifest.backend} backup but storage.url is {backend}: "
            "restore it into a store of its kind"
        )
    if _sha256(source) != manifest.sha256:
        raise BackupError(
            f"{source.name} does not have the SHA-256 its manifest records: the file was "
            "changed or cut short since the backup; use an intact copy"
        )
    signer = _signer(config)
    if manifest.verifier_key != signer.verifier_key or manifest.origin != signer.name:
        raise BackupError(
            f"the backup's log was signed by {manifest.verifier_key!r} but keys/ holds "
            f"{signer.verifier_key!r} ([log] origin {signer.name!r}): restore the keys/ "
            "that belong to this backup first"
        )
    if manifest.log.checkpoint is not None:
        try:
            signer.open(manifest.log.checkpoint.note)
        except CheckpointError as exc:
            raise BackupError(
                f"the backup's latest checkpoint does not verify with the log key: {exc}"
            ) from None
    return manifest


async def _current_log(config: Config, now: datetime) -> LogState | None:
    """The log of the store the restore would overwrite (None: there is none yet), after
    checking that no gateway instance is heartbeating on it."""
    if config.storage_url.startswith(SQLITE_PREFIX):
        path = sqlite_path(config.storage_url, config.root)
        if not isinstance(path, Path) or not path.exists():
            return None
    store = await open_store(config.storage_url, config.root)
    try:
        alive = live_instances(await store.list_instances(), now, config.log.instance_timeout_s)
        if alive:
            first = alive[0]
            raise RestoreRefused(
                f"{len(alive)} gateway instance(s) still heartbeat on this store (instance "
                f"{first.id} on {first.host}, pid {first.pid}): stop every instance, wait "
                f"{config.log.instance_timeout_s:g} s, then restore"
            )
        return await _log_state(store)
    finally:
        await store.close()


async def _restore_postgres(config: Config, source: Path) -> None:
    program = _client("pg_restore")
    target = _pg_target(config.storage_url)
    # --clean --if-exists: the (empty or older) tables the store has are dropped and the
    # dump's put in their place, in one transaction: all of it or nothing.
    command = [program, "--clean", "--if-exists", "--no-owner", "--exit-on-error"]
    command += ["--single-transaction", f"--dbname={target.url}", str(source)]
    await asyncio.to_thread(_run_client, command, target)


async def _audit(config: Config) -> AuditReport:
    """The checks of `gateway log verify` over the restored store, opened as the gateway
    opens it: the migrations a backup from an older gateway lacks are applied, and its
    sealed values are brought to the newest at-rest key — which fails, naming the key,
    when `keys/` no longer holds one they were sealed with (deleted after a rotation)."""
    signer = _signer(config)
    try:
        store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
    except ConfigErrors as exc:
        raise BackupError(
            "the backup was put back, but its sealed values cannot be opened with "
            f"{config.keys_dir} ({'; '.join(e.message for e in exc.errors)}): put back the "
            "keys/ backup taken with it, then run `gateway db upgrade`"
        ) from None
    try:
        return await audit_store(store, signer.verifier_key, signer.name)
    finally:
        await store.close()
