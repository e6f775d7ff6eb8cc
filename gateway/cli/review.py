"""Legal review and subject rights commands: `legal-request`, `report`, `reviewers`."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from pathlib import Path
from typing import Final

from gateway.cli.support import (
    EXIT_OK,
    Commands,
    RecordWriter,
    UsageError,
    add_command,
    add_format_option,
    add_group,
    columns,
    load,
)
from gateway.config.model import load_config
from gateway.errors import ConfigError, ConfigErrors
from gateway.files import write_atomically

REVIEWER_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MAX_NAME: Final = 200


def _toml_string(value: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's, for text without control characters."""
    return json.dumps(value, ensure_ascii=False)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise UsageError("the two passwords differ")
    return first


def _append_atomically(path: Path, addition: str) -> None:
    """Rewrite `path` with `addition` appended, so a crash never leaves half a file."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    write_atomically(path, (text + addition).encode("utf-8"), mode=path.stat().st_mode & 0o777)


def cmd_reviewers_add(args: argparse.Namespace) -> int:
    from gateway.web.review.passwords import (
        PasswordHashError,
        check_password_strength,
        hash_password,
    )

    config = load(args)
    reviewer_id, name = args.reviewer_id, args.name.strip()
    if not REVIEWER_ID.match(reviewer_id):
        raise UsageError(
            "a reviewer id is 1 to 100 letters, digits, '.', '_', '@' or '-', starting with a "
            "letter or digit"
        )
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(f"--name must be 1 to {MAX_NAME} printable characters")
    if reviewer_id in config.reviewers:
        raise UsageError(f"reviewer {reviewer_id!r} is already in {config.path}")
    password = _read_password(args)
    try:
        check_password_strength(password)
    except PasswordHashError as exc:
        raise UsageError(str(exc)) from None
    password_hash = hash_password(password)
    original = config.path.read_text(encoding="utf-8")
    _append_atomically(
        config.path,
        "\n[[reviewers]]\n"
        f"id = {_toml_string(reviewer_id)}\n"
        f"name = {_toml_string(name)}\n"
        f"password_hash = {_toml_string(password_hash)}\n",
    )
    try:
        reread = load_config(config.path)
    except (ConfigError, ConfigErrors):
        config.path.write_text(original, encoding="utf-8")
        raise
    if reviewer_id not in reread.reviewers:
        config.path.write_text(original, encoding="utf-8")
        raise UsageError(f"{config.path}: the new [[reviewers]] table did not read back")
    print(f"added reviewer {reviewer_id} to {config.path} (scrypt hash); restart the gateway")
    if not reread.passwords_on:
        print(
            f"note: {config.path.name} has [oidc], so passwords are off: this account signs in "
            "only while [oidc] allow_passwords = true (the break-glass for a provider that is "
            "down); people sign in through the provider",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_reviewers_list(args: argparse.Namespace) -> int:
    config = load(args)
    rows = [
        {"id": r.id, "name": r.name, "password_scheme": r.password_hash.split("$")[1]}
        for r in config.reviewers.values()
    ]
    RecordWriter(
        args.format,
        columns("id", "name", "password_scheme"),
        # Tab-separated without a header, as before --format: scripts cut the fields.
        text_line=lambda row: f"{row['id']}\t{row['name']}\t{row['password_scheme']}",
    ).write_all(rows).close()
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add this module's commands to the `gateway` parser."""
    reviewers = add_group(commands, "reviewers", "accounts of the review web page (/review/)")
    add_reviewer = add_command(
        reviewers,
        "add",
        cmd_reviewers_add,
        "append a [[reviewers]] table with an scrypt password hash to the config file",
    )
    add_reviewer.add_argument("reviewer_id", metavar="ID", help="the reviewer's sign-in id")
    add_reviewer.add_argument("--name", required=True, help="the reviewer's full name")
    add_reviewer.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else: ask twice)",
    )
    listing = add_command(
        reviewers, "list", cmd_reviewers_list, "list reviewer ids and names (no hashes)"
    )
    add_format_option(listing, default="text", old_json_flag=True)
