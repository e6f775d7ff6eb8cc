"""`gateway exposure PARTNER` and `gateway subjects resolve FILE` (breach scope, issue #19).

The first prints what a partner received in a window (gateway.rights.exposure); the
second matches the company's own customer list against it and prints the customers found
with their subject reference, so they can be told — the list is read once, in memory,
and never stored or logged. Both are reads of personal scope: each is an ``action`` entry
(``read_exposure``, ``resolve_subjects``) holding the partner, the window and counts,
never a customer id. Like ``gateway log export``, they are a host operator's reads: the
shell's account (``host:<user>``, credential ``host-shell``) unless ``--as`` names a person.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from gateway.cli.person import add_credential_options, cli_actions, reader
from gateway.cli.support import (
    EXIT_OK,
    Commands,
    RecordWriter,
    UsageError,
    add_command,
    add_group,
    columns,
    with_store,
)
from gateway.config.model import Config
from gateway.crypto.subject_keys import LogKeys
from gateway.log.entries import target
from gateway.partners import load_partners
from gateway.rights.exposure import (
    MAX_PAGE,
    Exposure,
    Window,
    all_subject_refs,
    parse_window,
    read_customer_ids,
    read_exposure,
    require_known_partner,
    resolve,
)
from gateway.store import Store

__all__ = ["register"]

READERS: Final = ("reviewer", "rights_officer")
READ_AS: Final = "who reads (recorded in the log; default: the shell's user, as host:<user>)"
MAX_FILE_BYTES: Final = 256 * 1024 * 1024
FIELD_COLUMNS: Final = {
    "field": "FIELD",
    "category": "CATEGORY",
    "special_category": "SPECIAL",
    "disclosures": "DISCLOSURES",
    "maybe_received": "MAYBE RECEIVED",
    "subjects": "SUBJECTS",
}


def _window(args: argparse.Namespace) -> Window:
    return parse_window(args.since, args.until)


async def _whole_exposure(store: Store, partner: str, window: Window) -> Exposure:
    """The counts and every subject reference (the CLI prints them all)."""
    first = await read_exposure(store, partner, window, limit=MAX_PAGE)
    refs, cursor = list(first.refs), first.next_cursor
    while cursor is not None:
        page = await read_exposure(store, partner, window, cursor=cursor, limit=MAX_PAGE)
        refs.extend(page.refs)
        cursor = page.next_cursor
    return Exposure(first.partner, window, first.totals, first.fields, first.categories, refs, None)


def _require_known(config: Config, partner: str, disclosures: int) -> None:
    require_known_partner(partner, load_partners(config.partners_dir, config.root), disclosures)


def _print_text(found: dict[str, Any]) -> None:
    flag = "  (special categories disclosed)" if found["special_category"] else ""
    print(f"partner {found['partner']}, {found['since']} to {found['until']} (exclusive)")
    print(
        f"{found['disclosures']} disclosure(s) delivered or maybe delivered "
        f"({found['maybe_received']} maybe received), {found['subjects']} subject reference(s)"
        f"{flag}"
    )
    rows = [{"field": name, **count} for name, count in found["fields"].items()]
    writer = RecordWriter("text", FIELD_COLUMNS, empty_text="no field disclosed")
    writer.write_all(rows).close()
    for name, count in found["categories"].items():
        special = "  SPECIAL" if count["special_category"] else ""
        print(f"category {name}: {count['disclosures']} disclosure(s){special}")
    print(f"subject references ({len(found['subject_refs'])}; 'maybe': only maybe received):")
    for ref in found["subject_refs"]:
        print(f"{ref['subject_ref']}  {ref['disclosures']}{'' if ref['sent'] else '  maybe'}")


def cmd_exposure(args: argparse.Namespace) -> int:
    window = _window(args)

    async def work(store: Store, config: Config) -> int:
        who = await reader(args, config, READERS)
        found = await _whole_exposure(store, args.partner, window)
        _require_known(config, args.partner, found.totals.disclosures)
        await cli_actions(store, config).record(
            who,
            "read_exposure",
            target=target("partner", args.partner),
            partner=args.partner,
            window=str(window),
            counts=found.counts(),
        )
        body = found.as_json()
        if args.format == "json":
            print(json.dumps(body, indent=2))
        elif args.format == "csv":
            RecordWriter("csv", FIELD_COLUMNS).write_all(
                {"field": name, **count} for name, count in body["fields"].items()
            ).close()
        else:
            _print_text(body)
        return EXIT_OK

    return with_store(args, work)


def _read_file(path: str) -> str:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def cmd_resolve(args: argparse.Namespace) -> int:
    window = _window(args)
    listed = read_customer_ids(_read_file(args.file))
    for number in listed.bad_lines:
        # The line's number, never its value: it may be a customer's data.
        print(
            f"{args.file}:{number}: not a customer id (skipped); an id is 1 to 200 ASCII "
            "letters, digits or - _ . : @",
            file=sys.stderr,
        )

    async def work(store: Store, config: Config) -> int:
        who = await reader(args, config, READERS)
        keys = LogKeys.load(config.keys_dir)
        exposed = await all_subject_refs(store, args.partner, window)
        _require_known(config, args.partner, len(exposed))
        resolved = resolve(listed.ids, keys, window, exposed)
        await cli_actions(store, config).record(
            who,
            "resolve_subjects",
            target=target("partner", args.partner),
            partner=args.partner,
            window=str(window),
            counts={**resolved.counts(), "bad_lines": len(listed.bad_lines)},
        )
        for month in resolved.forgotten:
            print(
                f"month {month} cannot be resolved: its subject key was forgotten "
                "(`gateway log forget-before`); customers disclosed then are not found",
                file=sys.stderr,
            )
        if args.format == "csv":
            RecordWriter("csv", columns("customer_id", "subject_ref")).write_all(
                {"customer_id": c, "subject_ref": r} for c, r in resolved.found
            ).close()
        else:
            for customer, ref in resolved.found:
                print(f"{customer} {ref}")
        print(
            f"{resolved.customers_found} of {resolved.searched} customer(s) found in the "
            f"exposure of {args.partner} ({len(resolved.found)} subject reference(s))",
            file=sys.stderr,
        )
        return EXIT_OK

    return with_store(args, work)


def _window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", required=True, help="from this date (YYYY-MM-DD) or RFC 3339 time"
    )
    parser.add_argument(
        "--until",
        required=True,
        help="through this date (YYYY-MM-DD, the whole day) or up to this RFC 3339 time",
    )


def register(commands: Commands) -> None:
    """Add `exposure` and `subjects resolve` to the `gateway` parser."""
    exposure = add_command(
        commands,
        "exposure",
        cmd_exposure,
        "what a partner received in a window: disclosures, subjects, fields (breach scope)",
    )
    exposure.add_argument("partner", metavar="PARTNER")
    _window_options(exposure)
    exposure.add_argument("--format", choices=("text", "json", "csv"), default="text")
    add_credential_options(exposure, READ_AS, required=False)

    group = add_group(commands, "subjects", "customers in a partner's exposure")
    found = add_command(
        group,
        "resolve",
        cmd_resolve,
        "print the customers of FILE that a partner received data about in a window",
    )
    found.add_argument(
        "file", metavar="FILE", help="customer ids, one a line or the first CSV column"
    )
    found.add_argument("--partner", required=True)
    _window_options(found)
    found.add_argument("--format", choices=("text", "csv"), default="text")
    add_credential_options(found, READ_AS, required=False)
