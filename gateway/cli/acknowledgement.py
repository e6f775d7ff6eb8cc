"""`gateway ack verify`: check a partner's acknowledgement recorded in an outcome entry, offline.

Reads no config.toml and no store: anyone holding an outcome entry (`gateway log export`,
or `GET /v1/log/entries/{index}` saved to a file) and the partner's public signing key can
check that the partner acknowledged receiving exactly what the gateway sent
(gateway.crypto.acknowledgement). The integrator may fold it under `gateway receipt`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.support import EXIT_FOUND, EXIT_OK, Commands, UsageError, add_command, add_group
from gateway.crypto.acknowledgement import AcknowledgementInvalid, verify_acknowledgement


def register(commands: Commands) -> None:
    """Add `gateway ack verify`."""
    group = add_group(commands, "ack", "partners' signed acknowledgements of disclosures")
    verify = add_command(
        group,
        "verify",
        cmd_ack_verify,
        "check the partner acknowledgement an outcome entry records, with the partner's "
        "public key (exit 0 valid, 1 not)",
    )
    verify.add_argument(
        "entry",
        metavar="OUTCOME_ENTRY_FILE",
        help="the outcome entry as JSON (one line of `gateway log export`, or the answer of "
        "GET /v1/log/entries/{index}); - reads stdin",
    )
    verify.add_argument(
        "--partner-key",
        metavar="KEYFILE",
        required=True,
        help="the partner's public signing key, a JWK or JWKS file (its acknowledgement_key)",
    )
    verify.add_argument(
        "--sent-hash",
        metavar="B64URL",
        help="also check it acknowledges these bytes: base64url SHA-256 of the JWE sent",
    )


def cmd_ack_verify(args: argparse.Namespace) -> int:
    entry = _read(args.entry, "outcome entry file")
    key = _read(args.partner_key, "partner key file")
    try:
        json.loads(key)
    except ValueError as exc:
        raise UsageError(f"partner key file {args.partner_key}: not JSON (a JWK or JWKS)") from exc
    try:
        ack = verify_acknowledgement(entry, key, sent_hash=args.sent_hash)
    except AcknowledgementInvalid as exc:
        print(f"not acknowledged ({exc.reason}): {exc}")
        return EXIT_FOUND
    partner = _partner_of(entry)
    print(
        f"ok: {partner} acknowledged disclosure {ack.disclosure_id} (received_sha256 "
        f"{ack.received_sha256}, received_at {ack.received_at}, {ack.alg} key "
        f"{ack.kid or '(no kid)'})"
    )
    return EXIT_OK


def _read(name: str, what: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{what} {name}: cannot be read ({exc.__class__.__name__})") from exc


def _partner_of(entry_text: str) -> str:
    doc = json.loads(entry_text)
    inner = doc.get("entry") if isinstance(doc.get("entry"), dict) else doc
    return str(inner.get("partner") or "the partner")
