"""`gateway login --device`: an ID token of the `[oidc]` provider for the CLI's acts.

The person approves on any browser (the device authorization grant, RFC 8628); the ID
token goes to stdout, the instructions to stderr, so it pipes into a command that acts:

    gateway login --device | gateway legal-request approve LR --as 'ISSUER#SUB' --token-stdin

The token is checked here (so a person without a gateway role learns it at once) and again
by the command that uses it (gateway.cli.person), like every credential.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from datetime import datetime

from gateway.cli.support import EXIT_OK, Commands, UsageError, add_command, load
from gateway.clock import utc_now
from gateway.config.model import Config
from gateway.errors import ConfigError, GatewayError
from gateway.web.review.oidc_client import OidcClient, read_client_secret
from gateway.web.review.oidc_device import start_device_flow, wait_for_id_token


def cli_oidc_client(config: Config, clock: Callable[[], datetime] = utc_now) -> OidcClient:
    """The `[oidc]` client as the CLI speaks it: with the client secret when this shell
    has it, else as a public client (a provider that demands the secret then says so)."""
    if config.oidc is None:
        raise UsageError(
            f"{config.path.name} has no [oidc] table: people prove themselves with a password "
            "or a caller token (see --as)"
        )
    try:
        secret = read_client_secret(config.oidc, os.environ)
    except ConfigError:
        secret = None
    return OidcClient(config.oidc, secret, clock)


async def device_login(config: Config) -> str:
    client = cli_oidc_client(config)
    try:
        device = await start_device_flow(client)
        where = device.verification_uri_complete or device.verification_uri
        print(
            f"Open {where} and enter the code {device.user_code} to sign in "
            f"(within {int(device.expires_in // 60) or 1} minutes).",
            file=sys.stderr,
        )
        id_token = await wait_for_id_token(client, device)
        person = await client.person_of(id_token, None, need=None)
    except GatewayError as exc:
        raise UsageError(exc.detail) from None
    finally:
        await client.close()
    print(f"signed in as {person.id} ({', '.join(sorted(person.roles))})", file=sys.stderr)
    return id_token


def cmd_login(args: argparse.Namespace) -> int:
    if not args.device:
        raise UsageError(
            "name the way to sign in: --device (a code to approve in a browser); or make a "
            "personal API token on the review site (/review/tokens)"
        )
    print(asyncio.run(device_login(load(args))))
    return EXIT_OK


def register(commands: Commands) -> None:
    login = add_command(
        commands,
        "login",
        cmd_login,
        "an ID token of the [oidc] provider for --token-stdin (printed on stdout)",
    )
    login.add_argument(
        "--device",
        action="store_true",
        help="the device sign-in: approve a short code in any browser",
    )
