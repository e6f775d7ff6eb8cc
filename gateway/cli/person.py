"""Who acts, proven: the CLI commands that act for a person check that person's credential.

`--as ID` names the person; it no longer suffices on its own (anyone with a shell on the host
could otherwise approve a lawful request twice, under two names). The credential is the one
the person uses elsewhere:

- a `[[reviewers]]` account of the review page: its password, read from the first line of
  stdin with `--password-stdin`, else from $GATEWAY_PASSWORD, else from a prompt on a
  terminal — never from the command line, where `ps` and shell history would keep it.
  Only while passwords are on (`Config.passwords_on`: no `[oidc]`, or its break-glass
  `allow_passwords = true`); otherwise refused, naming what proves a person instead, and
  so are the personal tokens such an account made;
- a `[[callers]]` entry (a person who uses the API, e.g. `privacy-office`): a bearer token of
  the company's identity provider whose `sub` is that id, from stdin with `--token-stdin` or
  from $GATEWAY_TOKEN, verified exactly as the HTTP API verifies it (same JWKS, issuer,
  audience, algorithms);
- a person who signs in to the review site through the OpenID provider of `[oidc]` (`--as`
  is then their `issuer#subject`, as the site shows it): a personal API token they made on
  the site (`/review/tokens`), the same way; it must be theirs, unrevoked and unexpired, and
  its roles (theirs when it was made) must include one the command needs.

Without a valid credential the command exits 2 before it touches the store. With one, the
act is first an `action` entry of the disclosure log (`cli_actions`, gateway.log.actions):
who, which credential (`token:<kid>`, `password:<id>` or `personal-token:<id>`, never the
secret), what, when.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Final, TextIO

import aiohttp

from gateway.callers.tokens import CallerAuthenticator, token_key_id
from gateway.cli.login import cli_oidc_client
from gateway.cli.support import UsageError
from gateway.clock import utc_now
from gateway.config.model import Config
from gateway.crypto.subject_keys import LogKeys
from gateway.errors import GatewayError
from gateway.log.actions import ActionLog, AppendsRows, Person, direct_append
from gateway.store import open_store
from gateway.web.review.oidc_client import peek_issuer
from gateway.web.review.passwords import PasswordHashError, parse_password_hash
from gateway.web.review.personal_tokens import PersonalTokenError, is_personal_token, prove

PASSWORD_ENV: Final = "GATEWAY_PASSWORD"  # noqa: S105 - a variable name, not a password
TOKEN_ENV: Final = "GATEWAY_TOKEN"  # noqa: S105 - a variable name, not a token
# A [[reviewers]] account is a reviewer (the review page's one role).
ACCOUNT_ROLES: Final = frozenset({"reviewer"})


class CredentialError(UsageError):
    """No credential, or one that does not prove who `--as` names: nothing was changed."""


def add_credential_options(
    parser: argparse.ArgumentParser, who_help: str, *, required: bool = True
) -> None:
    """`--as` and the two ways to hand over a credential without putting it in argv."""
    parser.add_argument("--as", dest="as_", required=required, metavar="ID", help=who_help)
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the review-page password of --as from stdin (else ${PASSWORD_ENV}, "
        "else a prompt on a terminal); off while [oidc] is set, unless allow_passwords",
    )
    parser.add_argument(
        "--token-stdin",
        action="store_true",
        help=f"read a bearer token whose sub is --as, or a personal API token of --as made on "
        f"the review site, from stdin (else ${TOKEN_ENV})",
    )


def cli_actions(store: AppendsRows, config: Config) -> ActionLog:
    """Where the CLI records a person's acts: straight into the store's log, durable
    before the act (the store serializes appends with a running gateway's)."""
    return ActionLog(direct_append(store), LogKeys.load(config.keys_dir), utc_now)


HOST_SHELL: Final = "host-shell"


async def reader(args: argparse.Namespace, config: Config, roles: Collection[str]) -> Person:
    """Who reads personal-scope data on the CLI (`report subject`, `log search --subject`,
    `log export`): the person `--as` names, proven by their credential; without `--as`,
    the account of the shell (``host:<user>``, credential ``host-shell``) — the read is
    recorded all the same, under the only name the host gives."""
    if getattr(args, "as_", None):
        return await proven_person(args, config, roles)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return Person(f"host:{user}"[:200], HOST_SHELL)


async def proven_person(
    args: argparse.Namespace,
    config: Config,
    roles: Collection[str],
    *,
    stdin: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Person:
    """The person `--as` names, once their credential proves them and they hold one of
    `roles`, with the id of the credential that proved it."""
    who: str = args.as_
    stdin = sys.stdin if stdin is None else stdin
    environ = os.environ if environ is None else environ
    if getattr(args, "password_stdin", False) and not config.passwords_on:
        raise CredentialError(_passwords_off(config, who))
    token = _token(args, stdin, environ)
    if token is not None and is_personal_token(token):
        return await _personal_token_person(config, who, token, roles, now or utc_now())
    if token is not None and config.oidc is not None and peek_issuer(token) == config.oidc.issuer:
        return await _id_token_person(config, who, token, roles, now or utc_now())
    caller = config.callers.get(who)
    account = config.reviewers.get(who)
    may_as_caller = caller is not None and bool(caller.roles & set(roles))
    may_as_account = account is not None and bool(ACCOUNT_ROLES & set(roles))
    if not (may_as_caller or may_as_account):
        allowed = sorted(
            {c.id for c in config.callers.values() if c.roles & set(roles)}
            | (
                set(config.reviewers)
                if ACCOUNT_ROLES & set(roles) and config.passwords_on
                else set()
            )
        )
        raise CredentialError(
            f"--as {who!r} is not a {' or '.join(sorted(roles))} in {config.path.name}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    if token is not None or not may_as_account:
        if not may_as_caller:
            raise CredentialError(
                f"{who!r} is a review-page account: prove it with its password "
                f"(--password-stdin or ${PASSWORD_ENV}), not a token"
            )
        if token is None:
            raise CredentialError(
                f"no credential for {who!r}: pass a bearer token whose sub is {who!r} with "
                f"--token-stdin or ${TOKEN_ENV}; nothing was changed"
            )
        await _check_token(config, who, token)
        return Person(who, f"token:{token_key_id(token) or who}")
    assert account is not None
    if not config.passwords_on:
        raise CredentialError(_passwords_off(config, who))
    password = _password(args, who, stdin, environ)
    try:
        verifier = parse_password_hash(account.password_hash)
    except PasswordHashError as exc:
        raise CredentialError(f"reviewer {who!r}: password_hash: {exc}") from None
    if not verifier.matches(password):
        raise CredentialError(f"the password of {who!r} does not match; nothing was changed")
    return Person(who, f"password:{who}")


def _passwords_off(config: Config, who: str) -> str:
    assert config.oidc is not None
    return (
        f"passwords are off: {config.path.name} signs people in through {config.oidc.issuer} "
        f"([oidc]); prove {who!r} with a personal API token made on the review site "
        f"(/review/tokens) or an ID token of `gateway login --device`, given with "
        f"--token-stdin or ${TOKEN_ENV} (--as being the id the site shows, issuer#subject); "
        "nothing was changed"
    )


async def _personal_token_person(
    config: Config, who: str, token: str, roles: Collection[str], now: datetime
) -> Person:
    """The person a personal API token of the review site proves (gateway.web.review
    .personal_tokens), once it is theirs, usable, and made with one of `roles`."""
    store = await open_store(config.storage_url, config.root)
    try:
        found = await prove(store, token, who, now)
    except PersonalTokenError as exc:
        raise CredentialError(f"{exc}; nothing was changed") from None
    finally:
        await store.close()
    provider = config.oidc.issuer + "#" if config.oidc else None
    if not (provider and who.startswith(provider)) and who not in config.reviewers:
        # The person left config.toml (or its provider did): their tokens end with them.
        raise CredentialError(
            f"{who!r} is neither a [[reviewers]] account nor a person of the [oidc] provider "
            f"in {config.path.name} any more; nothing was changed"
        )
    if not (provider and who.startswith(provider)) and not config.passwords_on:
        # Made by a password account: it would outlive the passwords that were turned off.
        raise CredentialError(
            f"the personal token {found.id} was made by the password account {who!r}, and "
            f"passwords are off while {config.path.name} has [oidc]; sign in through "
            f"{config.oidc and config.oidc.issuer} and make one there; nothing was changed"
        )
    _require_one_of(roles, found.roles, f"the personal token {found.id} carries the roles")
    return Person(who, f"personal-token:{found.id}")


async def _id_token_person(
    config: Config, who: str, token: str, roles: Collection[str], now: datetime
) -> Person:
    """The person an ID token of the `[oidc]` provider proves (`gateway login --device`),
    checked as the review site checks one (no nonce: the device grant has none)."""
    client = cli_oidc_client(config, lambda: now)
    try:
        person = await client.person_of(token, None, need=None)
    except GatewayError as exc:
        raise CredentialError(f"the ID token does not prove {who!r}: {exc.detail}") from None
    finally:
        await client.close()
    if person.id != who:
        raise CredentialError(
            f"the ID token is {person.id!r}'s, not {who!r}'s (--as); nothing was changed"
        )
    _require_one_of(roles, person.roles, f"{who!r} has the roles", " at the provider")
    # The key that signed it, as `token:<kid>` names a caller token's (never the token).
    return Person(who, f"id-token:{person.key_id or 'no-kid'}")


def _require_one_of(
    roles: Collection[str], held: Collection[str], holding: str, where: str = ""
) -> None:
    """CredentialError unless `held` includes one of `roles`: `holding` names whose roles
    they are (the token's, the person's), `where` where they were given."""
    if not set(held) & set(roles):
        raise CredentialError(
            f"{holding} {', '.join(sorted(held))}{where}; this needs "
            f"{' or '.join(sorted(roles))}; nothing was changed"
        )


def _token(args: argparse.Namespace, stdin: TextIO, environ: Mapping[str, str]) -> str | None:
    if getattr(args, "token_stdin", False):
        return stdin.readline().strip() or None
    return environ.get(TOKEN_ENV) or None


def _password(args: argparse.Namespace, who: str, stdin: TextIO, environ: Mapping[str, str]) -> str:
    if getattr(args, "password_stdin", False):
        password = stdin.readline().rstrip("\r\n")
    elif environ.get(PASSWORD_ENV):
        password = environ[PASSWORD_ENV]
    elif stdin.isatty():
        password = getpass.getpass(f"password of {who}: ")
    else:
        raise CredentialError(
            f"no credential for {who!r}: give its review-page password with --password-stdin "
            f"or ${PASSWORD_ENV}, or run on a terminal to be asked; nothing was changed"
        )
    if not password:
        raise CredentialError(f"an empty password for {who!r}; nothing was changed")
    return password


async def _check_token(config: Config, who: str, token: str) -> None:
    async with aiohttp.ClientSession() as session:
        authenticator = CallerAuthenticator(
            config.auth, config.callers, session if config.auth.jwks_url else None
        )
        try:
            caller = await authenticator.authenticate(f"Bearer {token}")
        except GatewayError as exc:
            raise CredentialError(
                f"the token does not prove {who!r}: {exc.detail}; nothing was changed"
            ) from None
    if caller.id != who:
        raise CredentialError(
            f"the token is {caller.id!r}'s, not {who!r}'s (--as); nothing was changed"
        )
