"""The one grammar of a subject id, checked wherever a subject enters the gateway.

A restriction, an objection, a consent, a lawful request and the log's subject
references are all keyed by the exact subject id. If two spellings of one person
were both accepted (" s-1", "s-1\\u200b", "ｓ-1", a decomposed "é"), a restriction
set on one would not stop a disclosure under the other. So there is one spelling:
the id is refused, never repaired, unless it is

- 1 to 200 characters,
- each an ASCII letter or digit, or one of ``- _ . : @``.

ASCII only means nothing needs normalizing: no Unicode form (NFC, NFKC), no width,
no invisible or space character can make a second spelling of a valid id. Case is
kept and matters ("S-1" and "s-1" are two ids): the ids come from the company's own
systems, some of which issue mixed-case ids, and folding case would merge two people
(one person's consent covering another) and split every record already stored and
logged under an upper-case id from new ones. A system that treats its ids as
case-insensitive (e-mail addresses, say) sends them in one case.

Refusals state the grammar and never repeat the id (it may be personal data).
"""

from __future__ import annotations

import argparse
import re
from typing import Final, TypeGuard

from gateway.errors import InvalidRequestError

MAX_SUBJECT_ID: Final = 200
# The grammar as a regular expression (JSON Schema's `pattern` in /openapi.json too).
PATTERN: Final = rf"^[A-Za-z0-9._:@-]{{1,{MAX_SUBJECT_ID}}}$"
_SUBJECT_ID: Final = re.compile(PATTERN)  # used with fullmatch: no "$" before a newline
GRAMMAR: Final = (
    f"1 to {MAX_SUBJECT_ID} characters, each an ASCII letter, digit, '-', '_', '.', ':' "
    "or '@' (no spaces, no other characters; case matters)"
)


def is_subject_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _SUBJECT_ID.fullmatch(value) is not None


def check_subject_id(value: object, where: str = "'subject'") -> str:
    """`value` if it is a subject id; else a 400 `invalid_request` naming `where`."""
    if is_subject_id(value):
        return value
    raise InvalidRequestError(f"{where} must be a subject id: {GRAMMAR}")


def subject_id_argument(value: str) -> str:
    """An argparse `type=` for command-line subject ids (usage error, exit 2)."""
    if is_subject_id(value):
        return value
    # ArgumentTypeError's message is printed as is: the id is not repeated.
    raise argparse.ArgumentTypeError(f"a subject id is {GRAMMAR}")
