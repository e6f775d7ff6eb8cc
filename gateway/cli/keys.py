"""`gateway keys …` (the gateway's own key material in keys/) and `gateway token` (a
development bearer token signed with the dev issuer key)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from gateway.cli.at_rest import cmd_keys_rotate_at_rest
from gateway.cli.support import EXIT_OK, Commands, UsageError, add_command, load
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.generate import generate_missing
from gateway.crypto.keyring import (
    published_jwks,
    rotate_signing_keys,
)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    config = load(args)
    created = generate_missing(config.keys_dir, config.partners_dir, base_dir=config.root)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"all keys present in {config.keys_dir}")
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    config = load(args)
    keys = rotate_signing_keys(
        config.keys_dir, datetime.now(UTC), grace=timedelta(days=args.grace_days)
    )
    for key in keys:
        print(f"active {key.alg} {key.kid}")
    print(
        f"retired keys stay published for {args.grace_days} day(s); restart the gateway "
        "instances to sign with the new keys"
    )
    return EXIT_OK


def cmd_keys_jwks(args: argparse.Namespace) -> int:
    print(json.dumps(published_jwks(load(args).keys_dir, datetime.now(UTC)), indent=2))
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    config = load(args)
    if args.caller_id not in config.callers:
        raise UsageError(
            f"unknown caller {args.caller_id!r}; config lists: {', '.join(sorted(config.callers))}"
        )
    print(issue_dev_token(config.keys_dir, config.auth, args.caller_id, ttl_s=args.ttl))
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `gateway keys …`."""
    keys = commands.add_parser(
        "keys", help="key material in keys/", description="Create and publish the gateway's keys."
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    add_command(
        key_commands, "generate", cmd_keys_generate, "create every missing key (idempotent)"
    )
    rotate = add_command(
        key_commands,
        "rotate",
        cmd_keys_rotate,
        "new signing keys; old public keys stay in the JWKS for a grace period",
    )
    rotate.add_argument("--grace-days", type=int, default=7, help="days (default 7)")
    add_command(
        key_commands,
        "rotate-at-rest",
        cmd_keys_rotate_at_rest,
        "new at-rest key; every stored value is re-sealed with it (old key files then unused)",
    )
    add_command(key_commands, "jwks", cmd_keys_jwks, "print the gateway's published JWKS")


def register_token(commands: Commands) -> None:
    """Add `gateway token`."""
    token = add_command(
        commands,
        "token",
        cmd_token,
        "print a development bearer token for a configured caller (dev issuer key)",
    )
    token.add_argument("caller_id", help="a [[callers]] id from config.toml")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
