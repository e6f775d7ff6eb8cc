"""The `gateway` command (CONTRACT §6): builds the parser from each module's commands and
runs the one asked for.

Exit codes: 0 ok (or allowed), 1 a failure found (or refused), 2 usage or
configuration error. Configuration errors print `file:line: message`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import gateway
from gateway.cli import acknowledgement as cli_acknowledgement
from gateway.cli import completion as cli_completion
from gateway.cli import config as cli_config
from gateway.cli import consent as cli_consent
from gateway.cli import exposure as cli_exposure
from gateway.cli import init_folder as cli_init_folder
from gateway.cli import keys as cli_keys
from gateway.cli import log as cli_log
from gateway.cli import login as cli_login
from gateway.cli import notices as cli_notices
from gateway.cli import partners as cli_partners
from gateway.cli import policy as cli_policy
from gateway.cli import receipt as cli_receipt
from gateway.cli import review as cli_review
from gateway.cli import rights as cli_rights
from gateway.cli import ropa as cli_ropa
from gateway.cli import server as cli_server
from gateway.cli import tokens as cli_tokens
from gateway.cli import witness as cli_witness
from gateway.cli.support import EXIT_OK, EXIT_USAGE, UsageError
from gateway.errors import ConfigError, ConfigErrors, GatewayError
from gateway.observe.app_log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Disclosure Gateway: decide, minimize, sign, encrypt, log."
    )
    parser.add_argument("--version", action="version", version=f"gateway {gateway.__version__}")
    parser.add_argument(
        "--config", default="config.toml", help="configuration file (default: ./config.toml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # In the order `gateway --help` lists them.
    cli_policy.register(commands)
    cli_keys.register(commands)
    cli_consent.register(commands)
    cli_server.register(commands)
    cli_keys.register_token(commands)
    cli_partners.register(commands)
    cli_log.register(commands)
    cli_witness.register(commands)
    cli_acknowledgement.register(commands)
    cli_receipt.register(commands)
    cli_review.register(commands)
    cli_rights.register(commands)
    cli_exposure.register(commands)
    cli_notices.register(commands)
    cli_login.register(commands)
    cli_tokens.register(commands)
    cli_ropa.register(commands)
    cli_completion.register(commands)
    cli_config.register(commands)
    cli_init_folder.register(commands)
    cli_policy.register_vocabulary(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Application log lines of every command are JSON on stderr, as serve's are (which
    # sets its own format and INFO level); a command's own messages stay plain text.
    setup_logging(getattr(args, "log_format", "json"), level=logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} problem(s) found", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except GatewayError as exc:
        print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `gateway … | head`: the reader left; that is not a failure of ours.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
