"""The `gateway receipt …` commands: check a disclosure's receipt offline.

`gateway receipt verify FILE --policy POLICY --entry ENTRYFILE` reads three files and
nothing else — no config, no database, no key of the gateway: the receipt (a C2SP
tlog-proof, `GET /v1/disclosures/{id}/receipt`), the entry it proves (as
`GET /v1/log/entries/{index}` serves it, or the bare entry) and a C2SP tlog-policy whose
`log` line is the log's key and whose witnesses and quorum say who must have cosigned.

Exit codes as everywhere: 0 the receipt holds (one `ok: …` line), 1 it does not (one
`FAILED: <reason>: …` line), 2 unusable input (a file unreadable, a policy without a log).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from gateway.cli.support import EXIT_FOUND, EXIT_OK, Commands, UsageError, add_command, add_group
from gateway.log.receipt import (
    MAX_RECEIPT_BYTES,
    ReceiptError,
    UnusableEntry,
    UnusablePolicy,
    verify_receipt,
)
from gateway.log.witness_policy import load_witness_policy

__all__ = ["register"]

MAX_ENTRY_BYTES: Final = 1024 * 1024


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
    if args.file == "-" and args.entry == "-":
        raise UsageError("only one of FILE and --entry may be - (stdin)")
    policy = load_witness_policy(Path(args.policy))
    proof = _read(args.file, "receipt", MAX_RECEIPT_BYTES)
    entry = _read(args.entry, "entry", MAX_ENTRY_BYTES)
    try:
        result = verify_receipt(proof, entry, policy)
    except (UnusablePolicy, UnusableEntry) as exc:
        raise UsageError(str(exc)) from None
    except ReceiptError as exc:
        print(f"FAILED: {exc.reason}: {exc}")
        return EXIT_FOUND
    print(result.summary())
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
