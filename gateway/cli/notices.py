"""`gateway notices list|retry`: the notice outbox (gateway.rights.outbox) on the CLI.

`list` shows every notice a partner has not accepted yet, and those given up (`failed`):
kind, partner, operation, reference, status, attempts, age, next attempt and last error —
no personal value (the subject and identifiers stay sealed in the store). A host
operator's read, like `log export`.

`retry` sends now, and waits for, the notices named (or `--all` pending and failed ones):
a person's act, proven by that person's own credential (`--as`, gateway.cli.person) and
recorded as one `retry_notice` action entry per notice before it is sent. It starts the
gateway's application without serving (the partners, keys and log of `gateway serve`), so
each attempt is a disclosure like any other: sealed, delivered with retries, logged.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.cli.person import add_credential_options, proven_person
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
    unserved_app,
    with_store,
)
from gateway.config.model import Config
from gateway.rights.outbox import LISTED_MEMBERS, outbox_json, retry_as
from gateway.store import Store

# Who may send a kept notice now: those who may ask for erasure, and reviewers.
RETRIERS = ("rights_officer", "reviewer")
# Exit status when a retried notice was still not accepted.
EXIT_NOT_ACCEPTED = 1

NOTICE_COLUMNS = columns(*LISTED_MEMBERS)


def _age(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _text_cells(record: Mapping[str, Any]) -> list[str]:
    return [
        str(record["id"]),
        str(record["kind"]),
        str(record["partner"]),
        str(record["operation"]),
        str(record["reference"]),
        str(record["status"]),
        str(record["attempts"]),
        _age(int(record["age_s"])),
        str(record["next_at"] or "-"),
        str(record["last_error"] or "-"),
    ]


def cmd_notices_list(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        statuses = None if args.all else ("pending", "failed")
        notices = await store.outbox_notices(statuses)
        now = datetime.now(UTC)
        RecordWriter(
            args.format,
            NOTICE_COLUMNS,
            text_cells=_text_cells,
            empty_text="no notice waiting: every notice was accepted",
        ).write_all(outbox_json(n, now) for n in notices).close()
        return EXIT_OK

    return with_store(args, work)


def cmd_notices_retry(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all):
        raise UsageError("name the notices to retry (IDs from `gateway notices list`) or --all")
    return asyncio.run(retry(args, load(args)))


async def retry(args: argparse.Namespace, config: Config) -> int:
    from gateway.web.keys import ACTIONS, NOTICES, STORE

    who = await proven_person(args, config, RETRIERS)
    async with unserved_app(config) as app:
        store, outbox = app[STORE], app[NOTICES]
        if args.all:
            chosen = await store.outbox_notices(("pending", "failed"))
        else:
            found = [await store.outbox_notice(i) for i in args.ids]
            missing = [i for i, n in zip(args.ids, found, strict=True) if n is None]
            if missing:
                raise UsageError(f"no notice {missing[0]!r} in the outbox (gateway notices list)")
            chosen = [n for n in found if n is not None]
        done = await retry_as(outbox, app[ACTIONS], who, chosen)
        now = outbox.clock()
        RecordWriter(
            args.format, NOTICE_COLUMNS, text_cells=_text_cells, empty_text="nothing to retry"
        ).write_all(outbox_json(n, now) for n in done).close()
        return EXIT_OK if all(n.status == "sent" for n in done) else EXIT_NOT_ACCEPTED


def register(commands: Commands) -> None:
    """Add `gateway notices …`."""
    notices = add_group(
        commands, "notices", "the outbox of partner notices not accepted yet (list, retry)"
    )
    listing = add_command(
        notices, "list", cmd_notices_list, "notices waiting for a partner, and given up ones"
    )
    listing.add_argument(
        "--all", action="store_true", help="also the notices already accepted (sent)"
    )
    add_format_option(listing, default="text")
    again = add_command(notices, "retry", cmd_notices_retry, "send kept notices now and wait")
    again.add_argument("ids", nargs="*", metavar="ID", help="notice ids (gateway notices list)")
    again.add_argument("--all", action="store_true", help="every pending and failed notice")
    add_credential_options(again, "who retries (a rights_officer caller or a reviewer)")
    add_format_option(again, default="text")
