"""`gateway tokens revoke --person ID`: a leaver's personal API tokens, revoked at once.

A person removed at the OpenID provider can no longer sign in, but the personal API tokens
they made on the review site (gateway.web.review.personal_tokens) keep proving them to the
CLI until they expire (`[oidc] personal_token_max_days`, 90 by default). The host operator
who handles the leaver ends them here. Each token revoked is first a
`revoke_personal_token` action entry (target `personal_token:<id>`), as when its owner
revokes it on the site; the actor is the person `--as` names, proven by their own
credential, or without `--as` the shell's account (``host:<user>``, credential
``host-shell``), as for the host operator's reads.
"""

from __future__ import annotations

import argparse

from gateway.cli.person import add_credential_options, cli_actions, reader
from gateway.cli.support import EXIT_OK, Commands, UsageError, add_command, add_group, with_store
from gateway.config.model import Config
from gateway.log.actions import target
from gateway.policy.request import MAX_ID
from gateway.store import Store

# Who may end another person's tokens when named with --as.
REVOKERS = ("rights_officer", "reviewer")


def register(commands: Commands) -> None:
    """Add `gateway tokens revoke`."""
    group = add_group(commands, "tokens", "the review site's personal API tokens")
    revoke = add_command(
        group,
        "revoke",
        cmd_revoke,
        "revoke every unrevoked, unexpired personal API token of a person (a leaver: their "
        "tokens otherwise prove them until they expire)",
    )
    revoke.add_argument(
        "--person",
        required=True,
        metavar="ID",
        help="whose tokens: the id the review site shows (issuer#subject, or a [[reviewers]] id)",
    )
    add_credential_options(
        revoke,
        "who revokes (a rights_officer or reviewer, proven); without it, the shell's account",
        required=False,
    )


def cmd_revoke(args: argparse.Namespace) -> int:
    person: str = args.person.strip()
    if not person or len(person) > MAX_ID:
        raise UsageError(f"--person must be a person's id of 1 to {MAX_ID} characters")

    async def work(store: Store, config: Config) -> int:
        who = await reader(args, config, REVOKERS)
        actions = cli_actions(store, config)
        now = actions.clock()
        revoked: list[str] = []
        for token in await store.personal_tokens_of(person):
            if not token.usable(now):
                continue  # revoked or expired already: it proves nobody
            await actions.record(
                who, "revoke_personal_token", at=now, target=target("personal_token", token.id)
            )
            if await store.revoke_personal_token(token.id, person, now):
                revoked.append(token.id)
        if revoked:
            print(f"revoked {len(revoked)} personal token(s) of {person}: {', '.join(revoked)}")
        else:
            print(f"{person} has no usable personal token; nothing was changed")
        return EXIT_OK

    return with_store(args, work)
