"""`gateway db backup FILE` and `gateway db restore FILE`: a consistent copy of the store
while the gateway runs, and putting one back into a stopped store, checked as `gateway log
verify` checks (gateway.ops.backup; the procedure in docs/OPERATIONS.md). `gateway db
vacuum`: the space the store no longer uses given back (gateway.ops.vacuum).

Exit codes as everywhere: 0 done, 1 refused (a longer log in the store, a gateway still
running) or the restored log does not verify, 2 usage (no such file, another backend,
the wrong keys/, pg_dump missing).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path

from gateway.cli.support import EXIT_FOUND, EXIT_OK, Commands, UsageError, add_command, load
from gateway.clock import utc_now
from gateway.log.offline import b64
from gateway.ops.backup import (
    PROCEDURE,
    BackupError,
    Comparison,
    RestoreRefused,
    manifest_path,
    restore_backup,
    take_backup,
)
from gateway.ops.vacuum import VacuumError, VacuumRefused, vacuum_store

log = logging.getLogger("gateway.backup")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


def _file_problem(exc: OSError, action: str) -> str:
    return (
        f"could not {action}: {exc.strerror or type(exc).__name__}"
        f"{f' ({exc.filename})' if exc.filename else ''}; check the path and its permissions"
    )


def cmd_backup(args: argparse.Namespace) -> int:
    config = load(args)
    target = Path(args.file)
    try:
        manifest = asyncio.run(take_backup(config, target, utc_now()))
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(_file_problem(exc, "write the backup")) from None
    log.warning("db backup to %s taken by OS user %s", target.name, _operator())
    print(
        f"backup written: {target} ({manifest.backend}, schema {manifest.schema_version}); "
        f"manifest {manifest_path(target)}"
    )
    qualifier = "at least " if manifest.at_least else ""
    print(f"log in the backup: {qualifier}{manifest.log.describe()}")
    print(
        f"keys/ is not in it: back up {config.keys_dir} separately, to another place ({PROCEDURE})"
    )
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    config = load(args)
    source = Path(args.file)
    try:
        restored = asyncio.run(
            restore_backup(config, source, utc_now(), older_allowed=args.older_than_published)
        )
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(_file_problem(exc, "read the backup")) from None
    except RestoreRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_FOUND
    log.warning("db restore from %s by OS user %s", source.name, _operator())
    manifest, report = restored.manifest, restored.report
    if restored.comparison is Comparison.OLDER:
        print(
            "WARNING: the backup's log is SHORTER than the one it replaced "
            f"({restored.replaced.describe() if restored.replaced else '-'}): if any of the "
            "lost entries were in a checkpoint the witnesses cosigned, they will raise a "
            "rollback alarm, and the only recovery is a newer copy of the log; never sign "
            "over the shorter one",
            file=sys.stderr,
        )
    print(
        f"restored {source} (taken {manifest.created_at.isoformat(timespec='seconds')}: "
        f"{manifest.log.describe()}) into the {manifest.backend} store"
    )
    if restored.kept is not None:
        print(f"the store it replaced is kept in {restored.kept} (with its .json)")
    if not report.ok:
        for problem in report.problems[:20]:
            print(f"TAMPERED: {problem.message}")
        print(
            "error: the restored log does not verify: do not start the gateway on it; "
            "restore another copy",
            file=sys.stderr,
        )
        return EXIT_FOUND
    print(
        f"log verify: ok: {report.entries} entries and {report.checkpoints} checkpoint(s) "
        f"verified; root {b64(report.root)} at size {report.entries}"
    )
    print(
        "next: start the gateway and watch its first checkpoint reach the witnesses; a "
        "rollback alarm means this copy is older than what they cosigned: restore a newer "
        f"copy ({PROCEDURE})"
    )
    return EXIT_OK


def cmd_vacuum(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        done = asyncio.run(vacuum_store(config, utc_now()))
    except VacuumError as exc:
        raise UsageError(str(exc)) from None
    except VacuumRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_FOUND
    given = done.bytes_before - done.bytes_after
    how = "VACUUM" if done.backend == "sqlite" else "VACUUM (ANALYZE)"
    print(f"{how} of the {done.backend} store ({done.target})")
    print(f"bytes before: {done.bytes_before:,}")
    print(f"bytes after:  {done.bytes_after:,} ({given:,} given back)")
    return EXIT_OK


def register_db(db_commands: Commands) -> None:
    """Add `gateway db backup`, `gateway db restore` and `gateway db vacuum` to the `db`
    group."""
    backup = add_command(
        db_commands,
        "backup",
        cmd_backup,
        "write a consistent copy of the store to FILE while the gateway runs (SQLite: the "
        "online backup API; PostgreSQL: pg_dump -Fc) and FILE.json, the log it holds",
    )
    backup.add_argument("file", metavar="FILE", help="the backup to write (never replaced)")
    restore = add_command(
        db_commands,
        "restore",
        cmd_restore,
        "put the backup FILE into the stopped store, then run the checks of `log verify`; "
        "refused if the store's log is longer",
    )
    restore.add_argument("file", metavar="FILE", help="a backup `gateway db backup` wrote")
    restore.add_argument(
        "--older-than-published",
        action="store_true",
        help="restore even though the store holds a longer log (entries lost; witnesses "
        "that cosigned more will raise a rollback alarm)",
    )
    add_command(
        db_commands,
        "vacuum",
        cmd_vacuum,
        "give back the space the store no longer uses (SQLite: VACUUM, on a stopped store; "
        "PostgreSQL: VACUUM (ANALYZE) of the gateway's tables, while it serves); run it "
        "after an upgrade from a schema before 14; prints the bytes before and after",
    )
