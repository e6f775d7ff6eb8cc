"""`gateway tokens revoke --person ID`: a leaver's personal API tokens and review-site
sessions, ended at once.

A person removed at the OpenID provider can no longer sign in, but the personal API tokens
they made on the review site (gateway.web.review.personal_tokens) keep proving them to the
CLI until they expire (`[oidc] personal_token_max_days`, 90 by default), and a site session
they hold keeps acting for up to its 8 hours. The host operator who handles the leaver
ends both here. Each token revoked is first a `revoke_personal_token` action entry (target
`personal_token:<id>`), as when its owner revokes it on the site; their live sessions end
after one `end_sessions` entry (target `sessions:<person id>`), as when they sign out
everywhere — on every instance sharing the store, at their next request. The actor is the
person `--as` names, proven by their own credential, or without `--as` the shell's account
(``host:<user>``, credential ``host-shell``), as for the host operator's reads.
"""

from __future__ import annotations

import argparse

from gateway.cli.person import add_credential_options, cli_actions, reader
from gateway.cli.support import EXIT_OK, Commands, UsageError, add_command, add_group, with_store
from gateway.config.model import Config
from gateway.log.actions import ActionLog, Person, target
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
        "revoke every unrevoked, unexpired personal API token of a person and end their "
        "review-site sessions (a leaver: both otherwise prove them until they expire)",
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


async def end_person(
    store: Store, actions: ActionLog, who: Person, person: str
) -> tuple[list[str], int]:
    """`who` ends what proves `person`: their usable personal tokens (each a
    `revoke_personal_token` entry first) and their live site sessions (one `end_sessions`
    entry first). The ids of the tokens revoked, and how many sessions ended."""
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
    ended = 0
    if await store.live_review_sessions_of(person, now):
        await actions.record(who, "end_sessions", at=now, target=target("sessions", person))
        ended = await store.end_review_sessions_of(person, now)
    return revoked, ended


def cmd_revoke(args: argparse.Namespace) -> int:
    person: str = args.person.strip()
    if not person or len(person) > MAX_ID:
        raise UsageError(f"--person must be a person's id of 1 to {MAX_ID} characters")

    async def work(store: Store, config: Config) -> int:
        who = await reader(args, config, REVOKERS)
        revoked, ended = await end_person(store, cli_actions(store, config), who, person)
        if revoked:
            print(f"revoked {len(revoked)} personal token(s) of {person}: {', '.join(revoked)}")
        else:
            print(f"{person} has no usable personal token")
        if ended:
            print(
                f"ended {ended} review-site session(s) of {person}: their next request, on "
                "any instance, gets the sign-in page"
            )
        else:
            print(f"{person} has no live review-site session")
        if not revoked and not ended:
            print("nothing was changed")
        return EXIT_OK

    return with_store(args, work)
