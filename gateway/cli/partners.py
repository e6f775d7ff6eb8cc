"""`gateway partners …`: partner files and their lifecycle (CONTRACT §6, issue 9).

- `validate [DIR]` and `list [--json]`: the files, with the days each agreement still
  runs and a warning for agreements (and key files) ending within `[partners]
  warn_days` or already ended;
- `diff OLD NEW [--format text|markdown]`: what a change would do to what partners
  receive (exit 1 when anything widens; gateway.partners.diff);
- `suspend ID --reason … --as REVIEWER` / `resume ID --as REVIEWER` / `suspensions`: act
  on the configured store, so every instance sees it within a second;
- `tighten ID --since DATE`: the patch removing the fields never sent (gateway.cli.ropa);
- `reload`: validate, then send SIGHUP to the `gateway serve` of this config.

Suspending and resuming are a reviewer's acts, as over HTTP: `--as` names the reviewer
and that reviewer's own credential proves it (gateway.cli.person); a shell on the host
is not enough.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from gateway.cli.person import add_credential_options, cli_actions, proven_person
from gateway.cli.ropa import register_tighten
from gateway.cli.support import (
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    RecordWriter,
    UsageError,
    add_command,
    add_format_option,
    add_group,
    columns,
    load,
    with_store,
)
from gateway.config.model import Config
from gateway.errors import ConfigError, ConfigErrors
from gateway.ops.preflight import check_before_start, check_deployment
from gateway.ops.reload import pid_file_of, read_pid_file
from gateway.partners import Partner, load_partners
from gateway.partners.diff import (
    PartnersDiff,
    diff_partners,
    read_partners,
    render_markdown,
    render_text,
)
from gateway.partners.standing import (
    ExpiryWarning,
    Suspensions,
    agreement_days_left,
    expiry_warnings,
    suspension_json,
)
from gateway.store import Store
from gateway.store.records import MAX_SEARCH_LIMIT

DEFAULT_WARN_DAYS = Config.partner_warn_days


def _warn_days(args: argparse.Namespace) -> int:
    """`[partners] warn_days` of the config, or the default when there is no config."""
    try:
        return load(args).partner_warn_days
    except (ConfigError, ConfigErrors):
        return DEFAULT_WARN_DAYS


def _print_warnings(warnings: list[ExpiryWarning]) -> None:
    for warning in warnings:
        print(f"warning: {warning.message()}")


def _days(partner: Partner, now: datetime) -> str:
    left = agreement_days_left(partner, now.astimezone(UTC).date())
    if left is None:
        return "-"
    return f"expired {-left}d ago" if left < 0 else f"{left}d"


def cmd_validate(args: argparse.Namespace) -> int:
    if args.dir:
        partners = load_partners(Path(args.dir))
        warn_days = _warn_days(args)
        # Partner files on their own: their secrets and key files, not the gateway's keys.
        check_before_start(partners.values(), os.environ)
    else:
        config = load(args)
        partners = load_partners(config.partners_dir, config.root)
        warn_days = config.partner_warn_days
        check_deployment(config, partners.values(), os.environ)
    for partner in partners.values():
        print(f"ok  {partner.source}  ({partner.category}, {len(partner.operations)} operations)")
    print(f"{len(partners)} partner file(s) valid")
    _print_warnings(expiry_warnings(partners.values(), datetime.now(UTC), warn_days))
    return EXIT_OK


PARTNER_COLUMNS: Final = {
    "id": "ID",
    "category": "CATEGORY",
    "jurisdiction": "JUR",
    "retention_days": "RETENTION",
    "agreement": "AGREEMENT",
    "agreement_expires_on": "ENDS",
    "agreement_days_left": "DAYS LEFT",
    "operations": "OPERATIONS",
}


def cmd_list(args: argparse.Namespace) -> int:
    config = load(args)
    partners = load_partners(config.partners_dir, config.root)
    now = datetime.now(UTC)
    warnings = expiry_warnings(partners.values(), now, config.partner_warn_days)
    records = [
        {
            "id": p.id,
            "name": p.name,
            "category": p.category,
            "jurisdiction": p.jurisdiction,
            "agreement": p.agreement,
            "agreement_expires_on": (
                None if p.agreement_expires_on is None else p.agreement_expires_on.isoformat()
            ),
            "agreement_days_left": agreement_days_left(p, now.date()),
            "retention_days": p.retention_days,
            "operations": sorted(p.operations),
            "warnings": [w.message() for w in warnings if w.partner_id == p.id],
        }
        for p in partners.values()
    ]

    def text_cells(record: Mapping[str, Any]) -> list[str]:
        partner = partners[record["id"]]
        return [
            partner.id,
            partner.category,
            partner.jurisdiction,
            f"{partner.retention_days}d",
            partner.agreement,
            record["agreement_expires_on"] or "-",
            _days(partner, now),
            ",".join(record["operations"]),
        ]

    RecordWriter(
        args.format,
        PARTNER_COLUMNS,
        flat=lambda record: {**record, "operations": " ".join(record["operations"])},
        text_cells=text_cells,
    ).write_all(records).close()
    if args.format == "text":
        _print_warnings(warnings)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        config = load(args)
        partners_dir, base = config.partners_dir, config.root
    except (ConfigError, ConfigErrors):
        # Two directories compare without a config; a git revision then means ./partners.
        base = Path.cwd()
        partners_dir = base / "partners"
    old = read_partners(args.old, partners_dir=partners_dir, base_dir=base)
    new = read_partners(args.new, partners_dir=partners_dir, base_dir=base)
    diff = PartnersDiff(args.old, args.new, tuple(diff_partners(old, new, base_dir=base)))
    render = render_markdown if args.format == "markdown" else render_text
    sys.stdout.write(render(diff))
    return diff.exit_code


def _suspensions(store: Store, config: Config) -> Suspensions:
    partners = load_partners(config.partners_dir, config.root)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    return Suspensions(store, partners, clock, recorder=cli_actions(store, config))


def cmd_suspend(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        who = await proven_person(args, config, ("reviewer",))
        found, made = await _suspensions(store, config).suspend(
            args.partner_id, args.reason, who.id, who.credential
        )
        print(json.dumps({**suspension_json(found), "suspended": True, "changed": made}, indent=2))
        if not made:
            print(f"{args.partner_id} was already suspended; nothing changed", file=sys.stderr)
        return EXIT_OK

    return with_store(args, work)


def cmd_resume(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        who = await proven_person(args, config, ("reviewer",))
        lifted = await _suspensions(store, config).resume(
            args.partner_id, who.id, args.reason, who.credential
        )
        print(
            json.dumps(
                {
                    "partner": args.partner_id,
                    "suspended": False,
                    "changed": lifted is not None,
                    "lifted": None if lifted is None else suspension_json(lifted),
                },
                indent=2,
            )
        )
        return EXIT_OK

    return with_store(args, work)


SUSPENSION_COLUMNS: Final = columns("partner", "reason", "by", "at")
HISTORY_COLUMNS: Final = columns("partner", "action", "reason", "by", "at")


def cmd_suspensions(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_SEARCH_LIMIT:
        raise UsageError(f"--limit must be from 1 to {MAX_SEARCH_LIMIT}")

    async def work(store: Store, config: Config) -> int:
        in_force = await store.partner_suspensions()
        suspended = [suspension_json(s) for _, s in sorted(in_force.items())]
        out: dict[str, object] = {"suspended": suspended}
        history: list[dict[str, object]] = []
        if args.history:
            events = await store.suspension_history(args.partner, args.limit)
            history = [
                {
                    "partner": e.partner_id,
                    "action": e.action,
                    "reason": e.reason,
                    "by": e.actor,
                    "at": e.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                }
                for e in events
            ]
            out["history"] = history
        if args.format == "json":  # one document holding both lists, as before --format
            print(json.dumps(out, indent=2))
        elif args.format == "csv":  # one table: the history when asked for, else who is out
            chosen = HISTORY_COLUMNS if args.history else SUSPENSION_COLUMNS
            RecordWriter("csv", chosen).write_all(history if args.history else suspended).close()
        else:
            now_out = RecordWriter("text", SUSPENSION_COLUMNS, empty_text="no partner is suspended")
            now_out.write_all(suspended).close()
            if args.history:
                print()
                past = RecordWriter("text", HISTORY_COLUMNS, empty_text="no suspension history")
                past.write_all(history).close()
        return EXIT_OK

    return with_store(args, work)


def _problems(errors: ConfigErrors) -> int:
    for error in errors.errors:
        print(error, file=sys.stderr)
    print(
        f"{len(errors.errors)} problem(s) found; reload not requested: the running gateway "
        "keeps its current partners and config",
        file=sys.stderr,
    )
    return EXIT_USAGE


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        config = load(args)
        partners: Mapping[str, Partner] = load_partners(config.partners_dir, config.root)
    except ConfigErrors as exc:
        return _problems(exc)
    except ConfigError as exc:
        return _problems(ConfigErrors([exc]))
    path = Path(args.pid_file) if args.pid_file else pid_file_of(config)
    pid = read_pid_file(path)
    if pid is None:
        raise UsageError(
            f"no gateway pid in {path}: is `gateway serve` running with this config? "
            "(or send the signal yourself: kill -HUP <pid>)"
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise UsageError(f"no process {pid} (stale {path}); is the gateway running?") from None
    except PermissionError:
        raise UsageError(
            f"not allowed to signal process {pid}; run as the gateway's user"
        ) from None
    print(
        f"{len(partners)} partner file(s) and {config.path.name} valid; sent SIGHUP to the "
        f"gateway (pid {pid}). It logs 'reloaded …', or 'reload refused …' with the reason "
        "and keeps the running set."
    )
    return EXIT_OK


def register(commands: Commands) -> None:
    group = add_group(
        commands,
        "partners",
        "partner onboarding files and their lifecycle: validate, list, diff, suspend, reload",
    )
    validate = add_command(
        group,
        "validate",
        cmd_validate,
        "check partner files; print file:line for each problem (exit 2); warn about "
        "agreements and keys ending soon",
    )
    validate.add_argument("dir", nargs="?", help="directory of *.toml (default: from config)")
    listing = add_command(
        group, "list", cmd_list, "list onboarded partners with the days their agreements run"
    )
    add_format_option(listing, default="text", old_json_flag=True)

    diff = add_command(
        group,
        "diff",
        cmd_diff,
        "what a change to partner files does to what partners receive; exit 1 when "
        "anything widens, 0 otherwise, 2 when a side cannot be read or is invalid",
    )
    diff.add_argument("old", help="a directory of partner files, or a git revision (HEAD~1)")
    diff.add_argument("new", help="a directory of partner files, or a git revision (HEAD)")
    diff.add_argument("--format", choices=("text", "markdown"), default="text")
    register_tighten(group)

    suspend = add_command(
        group,
        "suspend",
        cmd_suspend,
        "stop every disclosure to a partner on every instance within a second",
    )
    suspend.add_argument("partner_id")
    suspend.add_argument(
        "--reason", required=True, help="why (an incident or ticket reference; no personal data)"
    )
    add_credential_options(suspend, "the reviewer who suspends it")
    resume = add_command(group, "resume", cmd_resume, "lift a partner's suspension")
    resume.add_argument("partner_id")
    add_credential_options(resume, "the reviewer who resumes it")
    resume.add_argument("--reason", help="why it is safe again")
    listing = add_command(
        group, "suspensions", cmd_suspensions, "partners suspended now (and the history)"
    )
    listing.add_argument("--history", action="store_true", help="add the suspend/resume history")
    listing.add_argument("--partner", help="history of one partner only")
    listing.add_argument("--limit", type=int, default=100, help="history rows (default 100)")
    add_format_option(listing, default="json")

    reload = add_command(
        group,
        "reload",
        cmd_reload,
        "validate config.toml and the partner files, then make the running gateway reload "
        "them (SIGHUP to the pid in var/gateway.pid beside the config file); an invalid set is "
        "never applied",
    )
    reload.add_argument(
        "--pid-file",
        help="the gateway's pid file (default: var/gateway.pid in the config file's folder)",
    )
