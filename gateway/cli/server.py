"""The commands that run the gateway: `gateway serve`, `gateway db upgrade` (`db backup`
and `db restore` live in `cli/backup.py`) and `gateway demo`.

The app (`gateway.web.app`) and the demo are imported when their command runs, so the
other commands start without loading them.
"""

from __future__ import annotations

import argparse
import logging
import os

from gateway.cli.backup import register_db as register_backup
from gateway.cli.support import (
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    UsageError,
    add_command,
    load,
    with_store,
)
from gateway.config.model import Config
from gateway.errors import ConfigError, ConfigErrors, GatewayError
from gateway.observe.app_log import setup_logging
from gateway.ops.reload import GatewayAlreadyRunning, owning_pid_file, pid_file_of
from gateway.partners import load_partners
from gateway.store import Store


def cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_format)  # before create_app: its start-up warnings are records too
    # Every line `gateway serve` writes is a log record (JSON lines by default), a refusal
    # to start included: the file:line messages become ERROR records.
    log = logging.getLogger("gateway.serve")
    try:
        return _serve(args, log)
    except ConfigErrors as exc:
        for error in exc.errors:
            log.error("%s", error)
        log.error("gateway not started: %d problem(s) found", len(exc.errors))
    except (ConfigError, UsageError, GatewayAlreadyRunning) as exc:
        log.error("gateway not started: %s", exc)
    except GatewayError as exc:
        log.error("gateway not started: %s: %s", exc.code, exc.detail)
    return EXIT_USAGE


def _serve(args: argparse.Namespace, log: logging.Logger) -> int:
    from gateway.ops.preflight import check_deployment
    from gateway.web.app import create_app

    config = load(args)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    create_app(config)  # fail here, with file:line messages, before any worker starts
    # What the workers would refuse only once they open their resources (a partner secret
    # env var unset, an unreadable key file), refused here too, as `partners validate` does.
    check_deployment(config, load_partners(config.partners_dir, config.root).values(), os.environ)
    with owning_pid_file(pid_file_of(config)):  # before the "serving" line: it may refuse
        _run(args, config, host, port, log)
    return EXIT_OK


def _run(
    args: argparse.Namespace, config: Config, host: str, port: int, log: logging.Logger
) -> None:
    from gateway.cli.workers import serve

    scheme = "https" if config.server.tls_cert_file else "http"
    log.info(
        "gateway serving on %s://%s:%s with %d worker(s) (storage %s, %d callers)",
        scheme,
        host,
        port,
        args.workers,
        config.storage_url.split(":")[0],
        len(config.callers),
    )
    serve(
        config.path,
        host,
        port,
        args.workers,
        log_format=args.log_format,
        metrics_port=args.metrics_port,
    )


def workers_count(text: str) -> int:
    """`--workers`: a whole number from 1, or `auto`, the cores this process may run on (its
    CPU affinity, which a container or `taskset` narrows, not every core of the machine)."""
    if text == "auto":
        return usable_cores()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no worker count: give a whole number from 1, or auto "
            f"(one per core: {usable_cores()} here)"
        )
    return count


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        # Opening the store applied what was missing (open_store migrates, as serve does).
        versions = await store.schema_versions()
        print(
            f"storage {config.storage_url.split(':')[0]} at schema version {max(versions)} "
            f"(applied: {', '.join(map(str, versions))})"
        )
        return EXIT_OK

    return with_store(args, work)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli.demo import main as demo_main

    return demo_main(load(args))


def register(commands: Commands) -> None:
    """Add `gateway serve`, `gateway db …` and `gateway demo`."""
    serve = add_command(commands, "serve", cmd_serve, "run the gateway HTTP server")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--workers",
        type=workers_count,
        default=1,
        metavar="N|auto",
        help="processes sharing the port (default 1); auto: one per core this process may use",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="also serve each worker's GET /metrics alone on a port of its own: P for the "
        "first worker, P+1 for the second… (a scrape of the shared port reaches one worker)",
    )
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="application log on stderr: JSON lines (default) or text for a terminal",
    )

    db = commands.add_parser(
        "db",
        help="the store: schema, backup, restore, vacuum",
        description="The configured store: its schema, backups, restores and free space.",
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    add_command(
        db_commands,
        "upgrade",
        cmd_db_upgrade,
        "apply missing schema migrations to storage.url (serve does too); print the versions",
    )
    register_backup(db_commands)

    add_command(
        commands,
        "demo",
        cmd_demo,
        "start sandbox partners and the gateway, send sample disclosures, show the log",
    )
