"""Personal API tokens: what a person signed in on the review site makes for the CLI.

A token is ``dgpt_<id>_<secret>`` — the id names it in lists and `action` entries, the
secret (32 random bytes) proves it. Only the SHA-256 of the whole token is stored
(gateway.store.records.PersonalToken): it is shown once, when made. A plain hash suffices:
the secret is random, so there is nothing to guess that a slow hash would protect.
`prove` is the CLI's check (gateway.cli.person): the token must exist, be the person's
that `--as` names, be neither revoked nor expired.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from gateway.config.model import OidcConfig
from gateway.store.ports import PersonalTokenStore
from gateway.store.records import PersonalToken

__all__ = [
    "DEFAULT_MAX_DAYS",
    "TOKEN_PREFIX",
    "MintedToken",
    "PersonalTokenError",
    "is_personal_token",
    "lifetimes_days",
    "mint",
    "prove",
    "token_hash",
]

TOKEN_PREFIX: Final = "dgpt_"  # noqa: S105 - the visible start of every token, no secret
STEPS_DAYS: Final = (7, 30, 90)  # the choices the page offers, up to the maximum
# Without [oidc] (a password account's tokens): the provider's default maximum.
DEFAULT_MAX_DAYS: Final = OidcConfig.personal_token_max_days
MAX_TOKEN: Final = 200


class PersonalTokenError(ValueError):
    """A token that proves nobody; the message says why, never the token."""


@dataclass(frozen=True)
class MintedToken:
    """A new token: the text shown once, and the record stored."""

    text: str
    record: PersonalToken


def token_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_personal_token(text: str) -> bool:
    return text.startswith(TOKEN_PREFIX)


def lifetimes_days(max_days: int) -> tuple[int, ...]:
    """The lifetimes the page offers: the usual steps below the maximum, and the maximum."""
    return (*(d for d in STEPS_DAYS if d < max_days), max_days)


def mint(
    person: str, roles: frozenset[str], now: datetime, days: int, max_days: int = DEFAULT_MAX_DAYS
) -> MintedToken:
    offered = lifetimes_days(max_days)
    if days not in offered:
        raise PersonalTokenError(f"a token lasts {', '.join(map(str, offered))} days, not {days}")
    token_id = secrets.token_hex(6)
    text = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = PersonalToken(
        id=token_id,
        person=person,
        roles=roles,
        token_hash=token_hash(text),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    return MintedToken(text, record)


async def prove(store: PersonalTokenStore, text: str, who: str, now: datetime) -> PersonalToken:
    """The usable token `text` of the person `who`; PersonalTokenError otherwise."""
    if len(text) > MAX_TOKEN or not is_personal_token(text):
        raise PersonalTokenError("this is not a personal token of the review site")
    found = await store.personal_token_by_hash(token_hash(text))
    if found is None:
        raise PersonalTokenError("no such personal token (mistyped, or made on another gateway)")
    if found.person != who:
        raise PersonalTokenError(f"the personal token {found.id} is not {who!r}'s")
    if found.revoked_at is not None:
        raise PersonalTokenError(
            f"the personal token {found.id} was revoked; make a new one on the review site"
        )
    if not found.usable(now):
        raise PersonalTokenError(
            f"the personal token {found.id} expired; make a new one on the review site"
        )
    return found
