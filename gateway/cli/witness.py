"""`gateway witness serve` and `gateway witness vkey`: run a witness, print its key.

Neither reads config.toml: a witness is run by someone other than the gateway's operator
(a partner, a regulator), often on another machine, with only the log's verifier key
(`gateway log key` prints it) and a key file of its own, created when missing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli.support import EXIT_OK, Commands, UsageError, add_command, add_group
from gateway.log.checkpoint import CheckpointError, check_key_name, parse_verifier_key
from gateway.log.cosignature import witness_vkey
from gateway.observe.app_log import setup_logging
from gateway.witness.app import Witness, witness_app
from gateway.witness.keyfile import default_name, load_or_create_key
from gateway.witness.state import WitnessState

DEFAULT_PORT = 7380


def register(commands: Commands) -> None:
    """Add `gateway witness serve` and `gateway witness vkey`."""
    group = add_group(commands, "witness", "run a C2SP tlog-witness for a log")
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
