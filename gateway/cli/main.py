"""The `gateway` command (CONTRACT §6).

Exit codes: 0 ok (or allowed), 1 a failure found (or refused), 2 usage or
configuration error. Configuration errors print `file:line: message`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gateway
from gateway import vocabulary as v
from gateway.cli import completion as cli_completion
from gateway.cli import log as cli_log
from gateway.cli import partners as cli_partners
from gateway.cli import review as cli_review
from gateway.cli import rights as cli_rights
from gateway.cli.config import register as register_config_commands
from gateway.cli.init_folder import register as register_init_command
from gateway.cli.person import add_credential_options, authenticate_person
from gateway.cli.support import (
    EXIT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    Handler,
    UsageError,
    add_command,
    load,
    with_store,
)
from gateway.config.model import Caller, Config
from gateway.crypto.keyring import generate_missing
from gateway.errors import ConfigError, ConfigErrors, GatewayError
from gateway.observe.app_log import setup_logging
from gateway.partners.model import Partner, load_partners
from gateway.policy.decide import decide
from gateway.policy.facts import SubjectFacts, parse_facts, parse_time
from gateway.policy.request import parse_disclosure_request
from gateway.store import Store
from gateway.subject_id import subject_id_argument

# Who may record or withdraw a consent: the role POST /v1/consents asks for.
CONSENT_WRITERS = ("consent_writer",)

# `gateway decide` without --caller: a what-if for the privacy team, so the
# caller allowlist is not what is being asked about.
WHAT_IF_CALLER = Caller(
    "what-if", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}), frozenset({"*"})
)


def _partners(config: Config) -> dict[str, Partner]:
    return load_partners(config.partners_dir, config.root)


def cmd_decide(args: argparse.Namespace) -> int:
    config = load(args)
    partners = _partners(config)
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


def cmd_keys_generate(args: argparse.Namespace) -> int:
    config = load(args)
    created = generate_missing(config.keys_dir, config.partners_dir, base_dir=config.root)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"all keys present in {config.keys_dir}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.observe.app_log import setup_logging

    setup_logging(args.log_format)  # before create_app: its start-up warnings are records too
    # Every line `gateway serve` writes is a log record (JSON lines by default), a refusal
    # to start included: the file:line messages become ERROR records.
    log = logging.getLogger("gateway.serve")
    try:
        return _serve(args, log)
    except ConfigErrors as exc:
        for error in exc.errors:
            log.error("%s", error)
        log.error("gateway not started: %d problem(s) found", len(exc.errors))
    except (ConfigError, UsageError) as exc:
        log.error("gateway not started: %s", exc)
    except GatewayError as exc:
        log.error("gateway not started: %s: %s", exc.code, exc.detail)
    return EXIT_USAGE


def _serve(args: argparse.Namespace, log: logging.Logger) -> int:
    from gateway.cli.serve import serve
    from gateway.ops.preflight import check_before_start
    from gateway.web.app import create_app

    config = load(args)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    create_app(config)  # fail here, with file:line messages, before any worker starts
    # What the workers would refuse only once they open their resources (a partner secret
    # env var unset, an unreadable key file), refused here too, as `partners validate` does.
    check_before_start(
        _partners(config).values(),
        os.environ,
        keys_dir=config.keys_dir,
        log_origin=config.log.origin,
    )
    scheme = "https" if config.server.tls_cert_file else "http"
    log.info(
        "gateway serving on %s://%s:%s with %d worker(s) (storage %s, %d callers)",
        scheme,
        host,
        port,
        args.workers,
        config.storage_url.split(":")[0],
        len(config.callers),
    )
    serve(config.path, host, port, args.workers, log_format=args.log_format)
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        # Opening the store applied what was missing (open_store migrates, as serve does).
        versions = await store.schema_versions()
        print(
            f"storage {config.storage_url.split(':')[0]} at schema version {max(versions)} "
            f"(applied: {', '.join(map(str, versions))})"
        )
        return EXIT_OK

    return with_store(args, work)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli.demo import main as demo_main

    return demo_main(load(args))


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.crypto.keyring import issue_dev_token

    config = load(args)
    if args.caller_id not in config.callers:
        raise UsageError(
            f"unknown caller {args.caller_id!r}; config lists: {', '.join(sorted(config.callers))}"
        )
    print(issue_dev_token(config.keys_dir, config.auth, args.caller_id, ttl_s=args.ttl))
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gateway.crypto.keyring import rotate_signing_keys

    config = load(args)
    keys = rotate_signing_keys(
        config.keys_dir, datetime.now(UTC), grace=timedelta(days=args.grace_days)
    )
    for key in keys:
        print(f"active {key.alg} {key.kid}")
    print(
        f"retired keys stay published for {args.grace_days} day(s); restart the gateway "
        "instances to sign with the new keys"
    )
    return EXIT_OK


def cmd_keys_rotate_at_rest(args: argparse.Namespace) -> int:
    from gateway.cli.at_rest import cmd_keys_rotate_at_rest as rotate_at_rest

    return rotate_at_rest(args)


def cmd_keys_jwks(args: argparse.Namespace) -> int:
    from gateway.crypto.keyring import published_jwks

    print(json.dumps(published_jwks(load(args).keys_dir, datetime.now(UTC)), indent=2))
    return EXIT_OK


def cmd_consent_grant(args: argparse.Namespace) -> int:
    import uuid

    from gateway.policy.facts import check_consent_to_record, parse_consent
    from gateway.web.routes.consents import consent_json

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
        await authenticate_person(args, config, CONSENT_WRITERS)
        check_consent_to_record(
            consent,
            known_partners=_partners(config),
            policy_version=config.policy.version,
            now=now,
        )
        await store.add_consent(consent)
        print(json.dumps(consent_json(consent, subject=consent.subject), indent=2))
        return EXIT_OK

    return with_store(args, work)


def cmd_consent_withdraw(args: argparse.Namespace) -> int:
    from gateway.web.routes.consents import consent_json

    async def work(store: Store, config: Config) -> int:
        await authenticate_person(args, config, CONSENT_WRITERS)
        consent = await store.withdraw_consent(args.consent_id, datetime.now(UTC))
        if consent is None:
            raise UsageError(f"no consent with id {args.consent_id!r}")
        print(json.dumps(consent_json(consent, subject=None), indent=2))
        return EXIT_OK

    return with_store(args, work)


def cmd_consent_list(args: argparse.Namespace) -> int:
    from gateway.web.routes.consents import consent_json

    async def work(store: Store, config: Config) -> int:
        consents = await store.consents_for_subject(args.subject)
        print(json.dumps([consent_json(c, subject=args.subject) for c in consents], indent=2))
        return EXIT_OK

    return with_store(args, work)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Disclosure Gateway: decide, minimize, sign, encrypt, log."
    )
    parser.add_argument("--version", action="version", version=f"gateway {gateway.__version__}")
    parser.add_argument(
        "--config", default="config.toml", help="configuration file (default: ./config.toml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, handler: Handler, text: str, under: Commands = commands
    ) -> argparse.ArgumentParser:
        return add_command(under, name, handler, text)

    decide_cmd = add(
        "decide",
        cmd_decide,
        "dry run of a disclosure body (CONTRACT §4.1), optionally against 'facts'; "
        "exit 0 allowed, 1 refused",
    )
    decide_cmd.add_argument("file", help="JSON file: a §4.1 body, optionally with 'facts'")
    decide_cmd.add_argument("--caller", help="evaluate the allowlist of this caller id too")
    decide_cmd.add_argument("--at", help="decide as of this RFC 3339 time (default: now)")

    keys = commands.add_parser(
        "keys", help="key material in keys/", description="Create and publish the gateway's keys."
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    add("generate", cmd_keys_generate, "create every missing key (idempotent)", key_commands)
    rotate = add(
        "rotate",
        cmd_keys_rotate,
        "new signing keys; old public keys stay in the JWKS for a grace period",
        key_commands,
    )
    rotate.add_argument("--grace-days", type=int, default=7, help="days (default 7)")
    add(
        "rotate-at-rest",
        cmd_keys_rotate_at_rest,
        "new at-rest key; every stored value is re-sealed with it (old key files then unused)",
        key_commands,
    )
    add("jwks", cmd_keys_jwks, "print the gateway's published JWKS", key_commands)

    consent = commands.add_parser(
        "consent",
        help="record, withdraw and list consents",
        description="Consents in the configured store (CONTRACT §4.3).",
    )
    consent_commands = consent.add_subparsers(
        dest="consent_command", metavar="COMMAND", required=True
    )
    grant = add("grant", cmd_consent_grant, "record a consent", consent_commands)
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
    withdraw = add("withdraw", cmd_consent_withdraw, "withdraw a consent", consent_commands)
    withdraw.add_argument("consent_id")
    add_credential_options(withdraw, "who records the withdrawal (a consent_writer caller)")
    consent_list = add("list", cmd_consent_list, "list a subject's consents", consent_commands)
    consent_list.add_argument("subject", type=subject_id_argument)

    serve = add("serve", cmd_serve, "run the gateway HTTP server")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="application log on stderr: JSON lines (default) or text for a terminal",
    )

    db = commands.add_parser(
        "db", help="the store's schema", description="The configured store's schema."
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    add(
        "upgrade",
        cmd_db_upgrade,
        "apply missing schema migrations to storage.url (serve does too); print the versions",
        db_commands,
    )

    add(
        "demo",
        cmd_demo,
        "start sandbox partners and the gateway, send sample disclosures, show the log",
    )

    token = add(
        "token",
        cmd_token,
        "print a development bearer token for a configured caller (dev issuer key)",
    )
    token.add_argument("caller_id", help="a [[callers]] id from config.toml")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")

    cli_partners.register(commands)
    cli_log.register(commands)
    cli_review.register(commands)
    cli_rights.register(commands)
    cli_completion.register(commands)
    register_config_commands(commands)
    register_init_command(commands)
    add("vocabulary", cmd_vocabulary, "print the policy's closed vocabularies as JSON")
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
