"""`gateway legal-request …` (and, with the log, `gateway report subject`): the legal team's CLI.

The CLI acts on the configured store directly, as an operator would; who
acts is named with `--as` and proven by that person's own credential
(gateway.cli.person): a reviewer in config.toml (a [[reviewers]] account with
its password, or a caller with the `reviewer` role with its bearer token), or,
to register a request, also a caller with the `rights_officer` role (as over HTTP).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from gateway.cli.person import add_credential_options, cli_actions, proven_person, reader
from gateway.cli.support import (
    EXIT_OK,
    Commands,
    RecordWriter,
    add_command,
    add_format_option,
    add_group,
    columns,
    with_store,
)
from gateway.config.model import Config
from gateway.errors import NotFoundError
from gateway.log.actions import lawful_request_text, target
from gateway.partners import load_partners
from gateway.rights import lawful_requests as legal_requests
from gateway.store import Store
from gateway.subject_id import subject_id_argument

# Who may register a lawful request (the same roles as POST /v1/legal-requests).
REGISTRARS = ("reviewer", "rights_officer")
# Who may read a subject's report with --as (the roles GET /v1/subjects/{id}/disclosures asks).
READERS = ("rights_officer", "reviewer")


def cmd_create(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        body: dict[str, Any] = {
            "authority": args.authority,
            "reference": args.reference,
            "instrument": args.instrument,
            "subjects": args.subject,
            "partners": args.partner,
        }
        if args.received_at:
            body["received_at"] = args.received_at
        partners = load_partners(config.partners_dir, config.root)
        who = await proven_person(args, config, REGISTRARS)
        record = legal_requests.parse_legal_request(
            body, registered_by=who.id, known_partners=partners, now=datetime.now(UTC)
        )
        await cli_actions(store, config).record(
            who,
            "register_lawful_request",
            target=target("lawful_request", record.id),
            legal_request_id=record.id,
            text=lawful_request_text(record),
        )
        await store.add_legal_request(record)
        if args.quiet:
            print(record.id)
        else:
            print(json.dumps(legal_requests.legal_request_json(record), indent=2))
        return EXIT_OK

    return with_store(args, work)


def cmd_approve(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        who = await proven_person(args, config, ("reviewer",))
        record = await legal_requests.approve(
            store,
            args.request_id,
            who.id,
            datetime.now(UTC),
            actions=cli_actions(store, config),
            credential=who.credential,
        )
        print(json.dumps(legal_requests.legal_request_json(record), indent=2))
        return EXIT_OK

    return with_store(args, work)


def cmd_reject(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        who = await proven_person(args, config, ("reviewer",))
        record = await legal_requests.reject(
            store,
            args.request_id,
            who.id,
            args.reason,
            datetime.now(UTC),
            actions=cli_actions(store, config),
            credential=who.credential,
        )
        print(json.dumps(legal_requests.legal_request_json(record), indent=2))
        return EXIT_OK

    return with_store(args, work)


LEGAL_REQUEST_COLUMNS: Final = columns(
    "id",
    "status",
    "authority",
    "reference",
    "partners",
    "subject_count",
    "approved_by",
    "rejected_by",
)


def _legal_request_flat(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **record,
        "partners": ",".join(record["partners"]),
        "approved_by": ",".join(a["reviewer"] for a in record["approvals"]),
        "rejected_by": record.get("rejection", {}).get("reviewer", ""),
    }


def _legal_request_line(record: Mapping[str, Any]) -> str:
    row = _legal_request_flat(record)
    return (
        f"{row['id']}  {row['status']:<8}  {row['authority']}  {row['reference']}  partners="
        f"{row['partners']}  subjects={row['subject_count']}  "
        f"approved by {row['approved_by'] or '-'}"
        + (f"  rejected by {row['rejected_by']}" if row["rejected_by"] else "")
    )


def cmd_list(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        records = await legal_requests.list_requests(store, args.status)
        RecordWriter(
            args.format,
            LEGAL_REQUEST_COLUMNS,
            flat=_legal_request_flat,
            text_line=_legal_request_line,
            empty_text="no lawful requests",
        ).write_all(
            legal_requests.legal_request_json(r, with_subjects=False) for r in records
        ).close()
        return EXIT_OK

    return with_store(args, work)


def cmd_show(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        record = await store.get_legal_request(args.request_id)
        if record is None:
            raise NotFoundError(
                "no lawful request with this id; `gateway legal-request list` shows their ids"
            )
        print(json.dumps(legal_requests.legal_request_json(record), indent=2))
        return EXIT_OK

    return with_store(args, work)


def cmd_report_subject(args: argparse.Namespace) -> int:
    from gateway.crypto.subject_keys import LogKeys
    from gateway.rights import subjects as rights

    async def work(store: Store, config: Config) -> int:
        partners = load_partners(config.partners_dir, config.root)
        who = await reader(args, config, READERS)
        await cli_actions(store, config).record(who, "read_subject_report", subject=args.subject_id)
        rows = await rights.subject_report(
            store, LogKeys.load(config.keys_dir), partners, args.subject_id
        )
        if args.format == "csv":
            # The report's own CSV, the same bytes GET /v1/subjects/{id}/disclosures?format=csv
            # gives (gateway.rights.subjects), so a CLI report and an HTTP one compare equal.
            sys.stdout.write(rights.report_csv(rows))
        elif args.format == "json":
            print(json.dumps({"subject": args.subject_id, "disclosures": rows}, indent=2))
        else:
            RecordWriter(
                "text", REPORT_TEXT_COLUMNS, empty_text="no disclosure of this subject"
            ).write_all(rows).close()
        return EXIT_OK

    return with_store(args, work)


# The text table: what a person reads first; json and csv have every column.
REPORT_TEXT_COLUMNS: Final = columns(
    "time", "partner", "operation", "purpose", "legal_basis", "outcome", "disclosure_id"
)


def register(commands: Commands) -> None:
    report = add_group(commands, "report", "reports for subject-rights requests")
    subject = add_command(
        report,
        "subject",
        cmd_report_subject,
        "every disclosure of one subject: when, partner, category, purpose, "
        "basis, fields, outcome, retention (VII.1, VII.5)",
    )
    subject.add_argument("subject_id", type=subject_id_argument)
    add_format_option(subject, default="json")
    add_credential_options(
        subject,
        "who reads it (recorded in the log; default: the shell's user, as host:<user>)",
        required=False,
    )

    group = add_group(
        commands,
        "legal-request",
        "lawful requests of authorities: register, approve (two reviewers), reject, show, list",
    )
    create = add_command(group, "create", cmd_create, "register a lawful request (pending)")
    create.add_argument("--authority", required=True)
    create.add_argument("--reference", required=True, help="the authority's reference")
    create.add_argument("--instrument", required=True, help="court order, warrant, statute…")
    create.add_argument(
        "--subject", action="append", required=True, type=subject_id_argument, help="repeatable"
    )
    create.add_argument("--partner", action="append", required=True, help="repeatable")
    create.add_argument("--received-at", help="RFC 3339 time (default now)")
    add_credential_options(create, "who registers it (a reviewer or rights officer)")
    create.add_argument(
        "-q", "--quiet", action="store_true", help="print only the new request's id"
    )
    approve = add_command(
        group,
        "approve",
        cmd_approve,
        "approve as one reviewer; two distinct ones (not the registrant) make it approved",
    )
    approve.add_argument("request_id")
    add_credential_options(approve, "the approving reviewer")
    reject = add_command(
        group,
        "reject",
        cmd_reject,
        "reject a pending request as a reviewer other than the registrant, with a reason",
    )
    reject.add_argument("request_id")
    reject.add_argument(
        "--reason", required=True, help="why (kept sealed; the log holds its keyed hash)"
    )
    add_credential_options(reject, "the rejecting reviewer")
    show = add_command(
        group, "show", cmd_show, "one lawful request as JSON: status, approvals, rejection"
    )
    show.add_argument("request_id")
    listing = add_command(group, "list", cmd_list, "list lawful requests, newest first")
    listing.add_argument("--status", choices=legal_requests.STATUSES)
    add_format_option(listing, default="text", old_json_flag=True)
