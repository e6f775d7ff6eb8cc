"""`gateway witness serve` and `gateway witness vkey`: run a witness, print its key; and
`gateway witness alarm list|clear`: the gateway's kept rollback alarms.

`serve` and `vkey` read no config.toml: a witness is run by someone other than the
gateway's operator (a partner, a regulator), often on another machine, with only the log's
verifier key (`gateway log key` prints it) and a key file of its own, created when missing.
`alarm` reads the gateway's store (schema 11): clearing an alarm is a person's act, proven
by their credential and recorded as a `clear_witness_alarm` action entry naming the
witness and both sizes before the alarm is removed. A running gateway takes the store's
alarms at its next submission; if the rollback is still real, that submission raises the
alarm again (gateway.outbound.witness_runner).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli.person import add_credential_options, cli_actions, proven_person
from gateway.cli.support import (
    EXIT_OK,
    Commands,
    RecordWriter,
    UsageError,
    add_command,
    add_format_option,
    add_group,
    columns,
    with_store,
)
from gateway.config.model import Config
from gateway.errors import NotFoundError
from gateway.log.actions import target
from gateway.log.checkpoint import CheckpointError, check_key_name, parse_verifier_key
from gateway.log.cosignature import witness_vkey
from gateway.observe.app_log import setup_logging
from gateway.store import Store
from gateway.witness.app import Witness, witness_app
from gateway.witness.keyfile import default_name, load_or_create_key
from gateway.witness.state import WitnessState

DEFAULT_PORT = 7380
ALARM_COLUMNS = columns("witness", "witness_size", "log_size", "raised_at", "reason")


def register(commands: Commands) -> None:
    """Add `gateway witness serve`, `vkey` and `alarm list|clear`."""
    group = add_group(
        commands,
        "witness",
        "run a C2SP tlog-witness for a log (vkey, serve); the gateway's kept rollback alarms "
        "(alarm list, alarm clear)",
    )
    serve = add_command(
        group,
        "serve",
        cmd_witness_serve,
        "cosign the checkpoints of the logs given (POST /add-checkpoint, C2SP tlog-witness)",
    )
    _key_arguments(serve)
    serve.add_argument(
        "--log",
        metavar="VKEY",
        nargs="+",
        action="extend",
        required=True,
        help="verifier key of a log to witness (`gateway log key` prints the gateway's); "
        "repeatable",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument(
        "--state",
        help="where the latest size and root of each log are kept (default: the key file's "
        "name with .state.json)",
    )
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="application log on stderr: JSON lines (default) or text for a terminal",
    )
    vkey = add_command(
        group, "vkey", cmd_witness_vkey, "print the witness's verifier key (for a policy file)"
    )
    _key_arguments(vkey)
    alarm = add_group(group, "alarm", "the gateway's kept rollback alarms: list, clear")
    listing = add_command(alarm, "list", cmd_alarm_list, "the rollback alarms the store keeps")
    add_format_option(listing, default="text")
    clear = add_command(
        alarm,
        "clear",
        cmd_alarm_clear,
        "clear a witness's rollback alarm as a person (recorded in the log); a rollback "
        "still real is raised again at the next submission",
    )
    clear.add_argument("witness", help="the witness's name in the witness policy")
    add_credential_options(clear, "the reviewer who clears it")


def cmd_alarm_list(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        alarms = await store.witness_alarms()
        if args.format != "text":  # for monitoring scripts; the text stays as it was
            RecordWriter(args.format, ALARM_COLUMNS).write_all(
                {
                    "witness": a.witness,
                    "witness_size": a.witness_size,
                    "log_size": a.log_size,
                    "raised_at": a.raised_at.isoformat(),
                    "reason": a.reason,
                }
                for a in alarms
            ).close()
            return EXIT_OK
        for alarm in alarms:
            print(
                f"{alarm.witness}  witness at {alarm.witness_size}, log at {alarm.log_size}  "
                f"raised {alarm.raised_at.isoformat()}  {alarm.reason}"
            )
        if not alarms:
            print("no rollback alarm")
        return EXIT_OK

    return with_store(args, work)


def cmd_alarm_clear(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        who = await proven_person(args, config, ("reviewer",))
        kept = {a.witness: a for a in await store.witness_alarms()}
        alarm = kept.get(args.witness)
        if alarm is None:
            raise NotFoundError(
                f"no rollback alarm is kept for witness {args.witness!r}; "
                "`gateway witness alarm list` shows the alarms"
            )
        await cli_actions(store, config).record(
            who,
            "clear_witness_alarm",
            target=target("witness", alarm.witness),
            counts={"witness_size": alarm.witness_size, "log_size": alarm.log_size},
        )
        await store.clear_witness_alarm(alarm.witness)
        print(
            f"cleared the rollback alarm of {alarm.witness} (witness at {alarm.witness_size}, "
            f"log at {alarm.log_size}); a running gateway drops it at its next submission, "
            "and raises it again if the witness still refuses"
        )
        return EXIT_OK

    return with_store(args, work)


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key", required=True, help="the witness's Ed25519 key (PEM), created 0600 if missing"
    )
    parser.add_argument(
        "--name", help="its key name in cosignature lines (default: witness-<key hash>)"
    )


def cmd_witness_vkey(args: argparse.Namespace) -> int:
    key = load_or_create_key(Path(args.key))
    print(witness_vkey(_name(args, key), key.public_key()))
    return EXIT_OK


def cmd_witness_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_format)
    log = logging.getLogger("gateway.witness")
    key_path = Path(args.key)
    key = load_or_create_key(key_path)
    name = _name(args, key)
    for vkey in args.log:
        try:
            parse_verifier_key(vkey)
        except CheckpointError as exc:
            raise UsageError(f"--log {vkey!r}: {exc}") from None
    if not 0 < args.port < 65536:
        raise UsageError("--port must be from 1 to 65535")
    state = WitnessState.open(
        Path(args.state) if args.state else key_path.with_suffix(".state.json")
    )
    try:
        witness = Witness(name, key, args.log, state)
        log.info(
            "witness %s serving on http://%s:%d for %s (state %s); vkey %s",
            name,
            args.host,
            args.port,
            ", ".join(witness.origins),
            state.path,
            witness.vkey,
        )
        web.run_app(
            witness_app(witness),
            host=args.host,
            port=args.port,
            print=None,
            access_log=None,
            handle_signals=True,
        )
    finally:
        state.close()
    return EXIT_OK


def _name(args: argparse.Namespace, key: Ed25519PrivateKey) -> str:
    """`--name`, checked as a signed-note key name, or the one derived from the key."""
    if args.name is None:
        return default_name(key)
    try:
        check_key_name(args.name)
    except CheckpointError as exc:
        raise UsageError(f"--name: {exc}") from None
    return str(args.name)
