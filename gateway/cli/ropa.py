"""`gateway ropa` and `gateway partners tighten`: the live record of processing (issue 19).

- `ropa [--since DATE] [--until DATE] [--format text|json|csv]`: one row per partner ×
  operation × purpose × legal basis, declared versus sent, with its drift
  (gateway.rights.ropa);
- `ropa --verify`: the per-day counts it reads (gateway.store.rollup_sql) against a count
  of the log's entries below their mark, a range of entries per statement; `ropa
  --rebuild`: verify the log as `log verify` does, then count every entry again (a
  batch per transaction); both show their progress on a terminal's stderr;
- `partners tighten PARTNER [--since DATE] [--until DATE]`: the patch of the partner's
  file removing the declared fields no disclosure carried in the window, in the format
  `git apply` and `patch -p1` read (from the config folder), so that `partners diff`
  of the file before and after shows exactly those removals.

Both read the configured store directly, like `log export`: the record is aggregate
(no subject, no value), so reading it is not a personal-scope read and writes no action
entry.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.cli.log import Progress
from gateway.cli.support import (
    EXIT_FOUND,
    EXIT_OK,
    Commands,
    UsageError,
    add_command,
    with_store,
)
from gateway.config.model import Config
from gateway.log.audit import audit_store
from gateway.log.audit_pool import PARALLEL_FROM
from gateway.log.service import LogSigner
from gateway.partners import load_partners
from gateway.partners.tighten import tighten_patch
from gateway.rights.ropa import (
    never_sent_by_operation,
    read_ropa,
    report_csv,
    report_json,
    report_text,
    window_of,
)
from gateway.store import Store, open_store

__all__ = ["cmd_ropa", "cmd_tighten", "register", "register_tighten"]


def cmd_ropa(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        if args.verify:
            return await _verify_counts(store)
        if args.rebuild:
            return await _rebuild_counts(store, config)
        since, until = window_of(args.since, args.until, datetime.now(UTC))
        partners = load_partners(config.partners_dir, config.root)
        report = await read_ropa(store, partners, since, until)
        if args.format == "json":
            print(json.dumps(report_json(report), indent=2))
        elif args.format == "csv":
            sys.stdout.write(report_csv(report))
        else:
            sys.stdout.write(report_text(report))
        return EXIT_OK

    return with_store(args, work)


async def _verify_counts(store: Store) -> int:
    progress = Progress("recounting", await store.log_size())
    try:
        mark, differ = await store.check_rollup(lambda done, _total: progress.update(done))
    finally:
        progress.close()
    if differ:
        for line in differ:
            print(f"DIFFERS: {line}")
        print(
            f"the per-day counts differ from the log's first {mark} entries: "
            "`gateway ropa --rebuild` counts them again from the verified log",
            file=sys.stderr,
        )
        return EXIT_FOUND
    print(f"ok: the per-day counts match the log's first {mark} entries")
    return EXIT_OK


async def _rebuild_counts(store: Store, config: Config) -> int:
    try:
        signer = LogSigner.load(config.keys_dir, config.log.origin)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read the log signing key in {config.keys_dir} ({type(exc).__name__}); "
            "run `gateway keys generate`"
        ) from None
    # Counted from entries that verify only: a count of altered entries would pass a
    # later --verify. Verified as `gateway log verify` does, on every core for a long log.
    size = await store.log_size()
    jobs = os.cpu_count() or 1 if size >= PARALLEL_FROM else 1
    opener = functools.partial(open_store, config.storage_url, config.root)
    verifying = Progress("verifying", size)
    try:
        report = await audit_store(
            store,
            signer.verifier_keys,
            config.log.origin,
            progress=verifying.update,
            jobs=jobs,
            opener=opener,
        )
    finally:
        verifying.close()
    if not report.ok:
        print(
            f"not recounted: the log does not verify ({len(report.problems)} problem(s)); "
            "`gateway log verify` says where",
            file=sys.stderr,
        )
        return EXIT_FOUND
    counting = Progress("counting", size)
    try:
        mark = await store.rebuild_rollup(lambda done, _total: counting.update(done))
    finally:
        counting.close()
    print(f"ok: counted the log's {mark} entries again into the per-day counts")
    return EXIT_OK


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def cmd_tighten(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        since, until = window_of(args.since, args.until, datetime.now(UTC))
        partners = load_partners(config.partners_dir, config.root)
        partner = partners.get(args.partner)
        if partner is None:
            raise UsageError(
                f"no partner {args.partner!r} in {config.partners_dir} "
                f"(known: {', '.join(sorted(partners)) or 'none'})"
            )
        report = await read_ropa(store, {partner.id: partner}, since, until)
        removals = never_sent_by_operation(report, partner)
        # The file it was loaded from (a display name otherwise: the id's file).
        loaded = Path(partner.source) if partner.source else None
        path = loaded if loaded and loaded.is_file() else config.partners_dir / f"{partner.id}.toml"
        patch = tighten_patch(path.read_text(encoding="utf-8"), removals, _shown(path, config.root))
        unused = sorted({r.operation for r in report.rows if "operation_never_used" in r.drift})
        if unused:
            print(
                f"operation(s) never used since {since.date()}: {', '.join(unused)} "
                "(not removed: remove them by hand if they are no longer needed)",
                file=sys.stderr,
            )
        if not patch:
            print(
                f"{partner.id}: every declared field was sent since {since.date()}; "
                "nothing to tighten",
                file=sys.stderr,
            )
            return EXIT_OK
        sys.stdout.write(patch)
        return EXIT_OK

    return with_store(args, work)


def _window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        help="from this date (YYYY-MM-DD) or RFC 3339 time (default: a year before --until)",
    )
    parser.add_argument("--until", help="up to this date or time, excluded (default: now)")


def register(commands: Commands) -> None:
    ropa = add_command(
        commands,
        "ropa",
        cmd_ropa,
        "the live record of processing: per partner, operation, purpose and legal basis, "
        "the declared fields beside those actually sent, and the drift between them",
    )
    _window_options(ropa)
    ropa.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="output: text (for people), json or csv (default: text)",
    )
    counts = ropa.add_mutually_exclusive_group()
    counts.add_argument(
        "--verify",
        action="store_true",
        help="check the per-day counts the record reads against the log's entries",
    )
    counts.add_argument(
        "--rebuild",
        action="store_true",
        help="verify the log, then count its entries again into the per-day counts",
    )


def register_tighten(group: Commands) -> None:
    """`partners tighten`, in the `partners` group."""
    tighten = add_command(
        group,
        "tighten",
        cmd_tighten,
        "print the patch of a partner file that removes the declared fields never sent "
        "in the window (apply with `patch -p1` in the config folder; check with "
        "`partners diff`)",
    )
    tighten.add_argument("partner", help="partner id (the file name without .toml)")
    _window_options(tighten)
