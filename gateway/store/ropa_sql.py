"""The SQL of the record of processing (`Store.ropa_counts`), written once for both databases.

Two GROUP BY queries over the disclosures *sent* in a window — an intent whose
disclosure has an ``outcome`` entry saying ``sent`` — so that a year of a million
entries is counted by the database, never row by row in Python:

- one row per partner × operation × purpose × legal basis: how many disclosures, the
  first and last, and how many distinct consents they were made under and how many of
  those consents are withdrawn today (the consents table, joined on the intent's
  ``consent_id``);
- one row per partner × operation × purpose × legal basis × field: how many of those
  disclosures carried the field (the keys of the intent's ``fields``).

The operation, the consent id and the field names are read from the entry's own JSON
(they are not search columns); how each database reads JSON out of the stored bytes is
the only difference, a :class:`JsonReads` each adapter gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["JsonReads", "RopaSql", "ropa_sql"]


@dataclass(frozen=True)
class JsonReads:
    """How one database reads the entry ``i.entry`` as JSON."""

    # `{name}` is replaced by a top-level member name (a fixed one of this module).
    member: str
    # A FROM item joined to `i`: one row per key of the entry's `fields`, column `f.key`.
    field_keys: str


@dataclass(frozen=True)
class RopaSql:
    """The two statements, with ``?`` placeholders: since, until (in that order)."""

    rows: str
    fields: str


# An intent in the window whose disclosure was sent (once is enough: EXISTS). The outcome
# is compared as an expression (`|| ''`) so that neither database looks the subquery up by
# the outcome index — every sent outcome of the log, for each intent — rather than by the
# disclosure's own entries (log_entries_by_disclosure).
_SENT_IN_WINDOW: Final = (
    "i.kind = 'intent' AND i.logged_at >= ? AND i.logged_at < ? AND EXISTS ("
    "SELECT 1 FROM log_entries o WHERE o.disclosure_id = i.disclosure_id "
    "AND o.kind = 'outcome' AND (o.outcome || '') = 'sent')"
)


def ropa_sql(json: JsonReads) -> RopaSql:
    """The statements in a database's JSON reads."""
    operation = json.member.format(name="operation")
    consent_id = json.member.format(name="consent_id")
    key = f"i.partner, {operation}, i.purpose, i.legal_basis"
    rows = (
        f"SELECT {key}, count(*), min(i.logged_at), max(i.logged_at), "  # noqa: S608 - fixed text
        "count(DISTINCT c.id), "
        "count(DISTINCT CASE WHEN c.withdrawn_at IS NOT NULL THEN c.id END) "
        f"FROM log_entries i LEFT JOIN consents c ON c.id = {consent_id} "
        f"WHERE {_SENT_IN_WINDOW} GROUP BY {key}"
    )
    fields = (
        f"SELECT {key}, f.key, count(*) "  # noqa: S608 - fixed text
        f"FROM log_entries i {json.field_keys} "
        f"WHERE {_SENT_IN_WINDOW} GROUP BY {key}, f.key"
    )
    return RopaSql(rows, fields)
