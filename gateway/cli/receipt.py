"""The `gateway receipt …` commands: check a disclosure's receipt offline.

`gateway receipt verify FILE --policy POLICY --entry ENTRYFILE` reads three files and
nothing else — no config, no database, no key of the gateway: the receipt (a C2SP
tlog-proof, `GET /v1/disclosures/{id}/receipt`), the entry it proves (as
`GET /v1/log/entries/{index}` serves it, or the bare entry) and a C2SP tlog-policy whose
`log` line is the log's key and whose witnesses and quorum say who must have cosigned.

With `--outcome OUTCOME_ENTRY_FILE --partner-key KEYFILE` it also shows the other side: the
partner's signed acknowledgement recorded in the disclosure's outcome entry, checked with
the partner's public key (what `gateway ack verify` checks) and tied to the receipt's entry.

Exit codes as everywhere: 0 the receipt holds (one `ok: …` line, then with `--outcome` one
`acknowledged by <partner> (…)` line), 1 it does not (one `FAILED: <reason>: …` line; after
the `ok:` line when only the acknowledgement fails), 2 unusable input (a file unreadable, a
policy without a log, a key file with no public signing key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

from gateway.cli.support import EXIT_FOUND, EXIT_OK, Commands, UsageError, add_command, add_group
from gateway.log.receipt import (
    MAX_RECEIPT_BYTES,
    ReceiptError,
    UnusableEntry,
    UnusablePartnerKey,
    UnusablePolicy,
    acknowledgement_of,
    partner_key_of,
    verify_receipt,
)
from gateway.log.witness_policy import load_witness_policy

__all__ = ["register"]

MAX_ENTRY_BYTES: Final = 1024 * 1024
MAX_KEY_BYTES: Final = 64 * 1024


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with Path(path).open("rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise UsageError(f"{path}: the {what} is over {limit} bytes")
    return data


def cmd_verify(args: argparse.Namespace) -> int:
    if (args.outcome is None) != (args.partner_key is None):
        raise UsageError(
            "--outcome and --partner-key go together: the disclosure's outcome entry and "
            "the partner's public key check the partner's acknowledgement"
        )
    stdin = [name for name in (args.file, args.entry, args.outcome) if name == "-"]
    if len(stdin) > 1:
        raise UsageError("only one of FILE, --entry and --outcome may be - (stdin)")
    policy = load_witness_policy(Path(args.policy))
    proof = _read(args.file, "receipt", MAX_RECEIPT_BYTES)
    entry = _read(args.entry, "entry", MAX_ENTRY_BYTES)
    outcome = None
    if args.outcome is not None:
        outcome = _read(args.outcome, "outcome entry", MAX_ENTRY_BYTES)
        try:
            json.loads(outcome)
        except ValueError:
            raise UsageError(f"{args.outcome}: the outcome entry is not JSON") from None
    key = None
    if args.partner_key is not None:
        try:
            key = partner_key_of(_read(args.partner_key, "partner key", MAX_KEY_BYTES))
        except UnusablePartnerKey as exc:
            raise UsageError(f"{args.partner_key}: {exc}") from None
    try:
        result = verify_receipt(proof, entry, policy)
        print(result.summary())
        if outcome is not None and key is not None:
            print(acknowledgement_of(entry, outcome, key).summary())
    except (UnusablePolicy, UnusableEntry) as exc:
        raise UsageError(str(exc)) from None
    except ReceiptError as exc:
        print(f"FAILED: {exc.reason}: {exc}")
        return EXIT_FOUND
    return EXIT_OK


def register(commands: Commands) -> None:
    group = add_group(
        commands,
        "receipt",
        "check a disclosure's receipt (C2SP tlog-proof) offline, without the gateway",
    )
    verify = add_command(
        group,
        "verify",
        cmd_verify,
        "check a receipt: the log's signature, the witnesses' quorum and the entry's "
        "inclusion; exit 1 if any part fails",
    )
    verify.add_argument("file", metavar="FILE", help="the receipt, a .tlog-proof (- for stdin)")
    verify.add_argument(
        "--policy",
        required=True,
        help="C2SP tlog-policy: 'log <vkey>' (GET /v1/log/key), the witnesses and the quorum",
    )
    verify.add_argument(
        "--entry",
        required=True,
        metavar="ENTRYFILE",
        help="the entry as GET /v1/log/entries/{index} serves it (- for stdin)",
    )
    verify.add_argument(
        "--outcome",
        metavar="OUTCOME_ENTRY_FILE",
        help="also show the partner's acknowledgement: the same disclosure's outcome entry "
        "(GET /v1/log/entries/{index}, or a line of `gateway log export`; - for stdin)",
    )
    verify.add_argument(
        "--partner-key",
        metavar="KEYFILE",
        help="with --outcome: the partner's public signing key, a JWK or JWKS (its "
        "acknowledgement_key, e.g. keys/partners/<partner>.ack.jwk.json)",
    )
