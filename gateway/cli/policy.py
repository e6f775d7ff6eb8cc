"""The policy asked offline: `gateway decide` (a dry run of a disclosure body) and
`gateway vocabulary` (the policy's closed vocabularies)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from gateway import vocabulary as v
from gateway.cli.support import EXIT_FOUND, EXIT_OK, Commands, UsageError, add_command, load
from gateway.config.model import Caller
from gateway.partners import load_partners
from gateway.policy.decide import decide
from gateway.policy.facts import SubjectFacts, parse_facts, parse_time
from gateway.policy.request import parse_disclosure_request

# `gateway decide` without --caller: a what-if for the privacy team, so the
# caller allowlist is not what is being asked about.
WHAT_IF_CALLER = Caller(
    "what-if", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}), frozenset({"*"})
)


def cmd_decide(args: argparse.Namespace) -> int:
    config = load(args)
    partners = load_partners(config.partners_dir, config.root)
    try:
        body = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{args.file}: not a readable JSON file ({exc.__class__.__name__})"
        ) from None
    now = parse_time(args.at, "--at") if args.at else datetime.now(UTC)
    if not isinstance(body, dict):
        raise UsageError(f"{args.file}: the body must be a JSON object")
    request = parse_disclosure_request(body, extra_keys=("facts",))
    facts = parse_facts(body["facts"], now=now) if "facts" in body else SubjectFacts()
    if args.caller:
        caller = config.callers.get(args.caller)
        if caller is None:
            raise UsageError(
                f"unknown caller {args.caller!r}; config lists: {', '.join(sorted(config.callers))}"
            )
    else:
        caller = WHAT_IF_CALLER
    decision = decide(request, caller, partners, facts, config.policy, now)
    print(json.dumps(decision.as_json(), indent=2))
    return EXIT_OK if decision.allowed else EXIT_FOUND


def cmd_vocabulary(args: argparse.Namespace) -> int:
    print(
        json.dumps(
            {
                "field_categories": v.FIELD_CATEGORIES,
                "purposes": v.PURPOSES,
                "legal_bases": v.LEGAL_BASES,
                "partner_categories": v.PARTNER_CATEGORIES,
                "transforms": v.TRANSFORMS,
            },
            indent=2,
        )
    )
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `gateway decide`."""
    decide_cmd = add_command(
        commands,
        "decide",
        cmd_decide,
        "dry run of a disclosure body (CONTRACT §4.1), optionally against 'facts'; "
        "exit 0 allowed, 1 refused",
    )
    decide_cmd.add_argument("file", help="JSON file: a §4.1 body, optionally with 'facts'")
    decide_cmd.add_argument("--caller", help="evaluate the allowlist of this caller id too")
    decide_cmd.add_argument("--at", help="decide as of this RFC 3339 time (default: now)")


def register_vocabulary(commands: Commands) -> None:
    """Add `gateway vocabulary` (listed last in `gateway --help`)."""
    add_command(
        commands, "vocabulary", cmd_vocabulary, "print the policy's closed vocabularies as JSON"
    )
