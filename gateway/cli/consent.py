"""`gateway consent grant|withdraw|list`: consents in the configured store (CONTRACT §4.3),
recorded as POST /v1/consents records them, by a person holding the consent_writer role."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from gateway import vocabulary as v
from gateway.cli.person import add_credential_options, cli_actions, proven_person
from gateway.cli.support import (
    EXIT_OK,
    Commands,
    UsageError,
    add_command,
    load,
    unserved_app,
    with_store,
)
from gateway.config.model import Config
from gateway.errors import NotFoundError
from gateway.partners import load_partners
from gateway.policy.facts import check_consent_to_record, parse_consent
from gateway.rights.withdrawal import check_consent_of
from gateway.store import Store
from gateway.subject_id import subject_id_argument
from gateway.web.routes.consents import consent_json, withdraw_and_tell

# Who may record or withdraw a consent: the role POST /v1/consents asks for.
CONSENT_WRITERS = ("consent_writer",)


def cmd_consent_grant(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "subject": args.subject,
        "purposes": args.purpose,
        "partners": args.partner or [],
        "partner_categories": args.category or [],
        "special_categories": args.special or [],
        "policy_version": args.policy_version,
        "method": args.method,
        "evidence": args.evidence or None,
    }
    if args.expires_at:
        body["expires_at"] = args.expires_at
    now = datetime.now(UTC)
    consent = parse_consent(body, consent_id=f"c-{uuid.uuid4()}", now=now)

    async def work(store: Store, config: Config) -> int:
        who = await proven_person(args, config, CONSENT_WRITERS)
        check_consent_to_record(
            consent,
            known_partners=load_partners(config.partners_dir, config.root),
            policy_version=config.policy.version,
            now=now,
        )
        await cli_actions(store, config).record(
            who, "consent_given", at=now, subject=consent.subject, consent_id=consent.id
        )
        await store.add_consent(consent)
        print(json.dumps(consent_json(consent, subject=consent.subject), indent=2))
        return EXIT_OK

    return with_store(args, work)


def cmd_consent_withdraw(args: argparse.Namespace) -> int:
    return asyncio.run(withdraw_and_notify(args, load(args)))


async def withdraw_and_notify(args: argparse.Namespace, config: Config) -> int:
    """`consent withdraw ID [--subject S]`: as POST /v1/consents/{id}/withdraw, the partners
    that received data under the consent are told (the gateway's application started
    without serving: its partners, keys, log and notice outbox)."""
    from gateway.web.keys import ACTIONS, GATEWAY, NOTICES, STORE

    who = await proven_person(args, config, CONSENT_WRITERS)
    async with unserved_app(config) as app:
        store, gw = app[STORE], app[GATEWAY]
        try:
            await check_consent_of(store, args.consent_id, args.subject)
        except NotFoundError as exc:
            raise UsageError(f"consent {args.consent_id!r}: {exc.detail}") from None
        answer = await withdraw_and_tell(
            gw, store, app[ACTIONS], who, args.consent_id, args.subject, app[NOTICES]
        )
        if answer is None:
            raise UsageError(f"no consent with id {args.consent_id!r}")
        print(json.dumps(answer, indent=2))
        return EXIT_OK


def cmd_consent_list(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        consents = await store.consents_for_subject(args.subject)
        print(json.dumps([consent_json(c, subject=args.subject) for c in consents], indent=2))
        return EXIT_OK

    return with_store(args, work)


def register(commands: Commands) -> None:
    """Add `gateway consent …`."""
    consent = commands.add_parser(
        "consent",
        help="record, withdraw and list consents",
        description="Consents in the configured store (CONTRACT §4.3).",
    )
    consent_commands = consent.add_subparsers(
        dest="consent_command", metavar="COMMAND", required=True
    )
    grant = add_command(consent_commands, "grant", cmd_consent_grant, "record a consent")
    grant.add_argument("--subject", required=True, type=subject_id_argument)
    add_credential_options(grant, "who records the consent (a consent_writer caller)")
    grant.add_argument("--purpose", action="append", required=True, choices=v.PURPOSES)
    grant.add_argument("--partner", action="append", help="partner id (repeatable)")
    grant.add_argument(
        "--category",
        action="append",
        choices=v.PARTNER_CATEGORIES,
        help="partner category (repeatable)",
    )
    grant.add_argument(
        "--special",
        action="append",
        choices=sorted(v.SPECIAL_FIELDS),
        help="explicit consent for a special-category field (repeatable)",
    )
    grant.add_argument("--policy-version", required=True, help="YYYY-MM-DD")
    grant.add_argument("--expires-at", help="RFC 3339 time")
    grant.add_argument("--method", default="paper", help="app, web, paper… (default paper)")
    grant.add_argument("--evidence", help="reference to the evidence")
    withdraw = add_command(consent_commands, "withdraw", cmd_consent_withdraw, "withdraw a consent")
    withdraw.add_argument("consent_id")
    withdraw.add_argument(
        "--subject",
        type=subject_id_argument,
        help="the consent's subject (optional: checked against the consent, and the "
        "withdrawal then appears in the subject's report); the partners that received data "
        "under the consent are sent a consent_withdrawn notice either way",
    )
    add_credential_options(withdraw, "who records the withdrawal (a consent_writer caller)")
    consent_list = add_command(
        consent_commands, "list", cmd_consent_list, "list a subject's consents"
    )
    consent_list.add_argument("subject", type=subject_id_argument)
