"""The SQL of the record of processing (`Store.ropa_counts`), written once for both databases.

What is counted is the disclosures *sent* in a window — an intent whose disclosure has
an ``outcome`` entry saying ``sent`` — per partner × operation × purpose × legal basis:
how many, the first and last, how many distinct consents they were made under and how
many of those are withdrawn today (the consents table, joined on the intent's
``consent_id``), and per field how many carried it (the keys of the intent's ``fields``).

A year of a million entries is not read at each request: three rollups (`rollup_sql`,
schema 12) hold those counts per UTC day and per month of the intent, counted when the
disclosure's first ``sent`` outcome is reached, so that an intent is counted once,
whenever its outcome arrives. A window reads its whole months and the whole days around
them from them, and its two partial days (a window need not start or end at midnight)
from the entries: a year is about twelve months and a few dozen days of rows.

The operation, the consent id and the field names are read from the entry's own JSON
(they are not search columns); how each database reads JSON out of the stored bytes and
the day of a time is the only difference, a :class:`JsonReads` each adapter gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.store.rollup_sql import Combine, Rollup

__all__ = ["JsonReads", "RopaSql", "ropa_sql"]


@dataclass(frozen=True)
class JsonReads:
    """How one database reads the entry ``ie.entry`` as JSON, and the day of ``i.logged_at``."""

    # `{name}` is replaced by a top-level member name (a fixed one of this module).
    member: str
    # A FROM item joined to `i`: one row per key of the entry's `fields`, column `f.key`.
    field_keys: str
    # The UTC day of `i.logged_at` as text YYYY-MM-DD.
    day: str


@dataclass(frozen=True)
class RopaSql:
    """The three reads, with ``?`` placeholders: the window's whole months [first, last)
    (YYYY-MM), its whole days before and after them, two ranges [first, last) of days
    (YYYY-MM-DD), then its two partial days, two ranges [start, end) of times — and
    the rollups they read."""

    rows: str
    fields: str
    consents: str
    rollups: tuple[Rollup, ...]


# A scalar subquery, not EXISTS: PostgreSQL turns an EXISTS into a join it may drive from
# every sent outcome of the log (it did without statistics: 0.7 s for 100,000 entries),
# where the intents of the partial days are a few hundred.
_SENT: Final = (
    "(SELECT 1 FROM log_index o WHERE o.disclosure_id = i.disclosure_id "
    "AND o.kind = 'outcome' AND (o.outcome || '') = 'sent' LIMIT 1) = 1"
)
# An intent of the partial days whose disclosure was sent (once is enough). The
# outcome is compared as an expression (`|| ''`) so that neither database looks the
# subquery up by the outcome index — every sent outcome of the log, for each intent —
# rather than by the disclosure's own entries (log_entries_by_disclosure); the kind too,
# so that the intents are found by time (log_entries_by_time), not every intent by kind.
_SENT_IN_PARTS: Final = (
    "(i.kind || '') = 'intent' AND ((i.logged_at >= ? AND i.logged_at < ?) "
    f"OR (i.logged_at >= ? AND i.logged_at < ?)) AND {_SENT}"
)
# The intents whose disclosure's first `sent` outcome is among the entries [?, ?): each
# disclosure is counted once, by the range that holds that outcome.
_FIRST_SENT_IN_RANGE: Final = (
    "i.kind = 'intent' AND i.disclosure_id IN (SELECT o.disclosure_id FROM log_index o "
    "WHERE o.idx >= ? AND o.idx < ? AND o.kind = 'outcome' AND o.outcome = 'sent' "
    "AND NOT EXISTS (SELECT 1 FROM log_index p WHERE p.disclosure_id = o.disclosure_id "
    "AND p.kind = 'outcome' AND (p.outcome || '') = 'sent' AND p.idx < o.idx))"
)
# The projection's rows `i` (schema 14), each with its entry's bytes `ie`.
_ENTRIES: Final = "log_index i JOIN log_entries ie ON ie.idx = i.idx"
_KEY: Final = ("partner", "operation", "purpose", "legal_basis")
_KEYS: Final = ", ".join(_KEY)


def _whole_periods(table: str, columns: str) -> str:
    """`columns` of `table`'s rows of the whole months [?, ?) (YYYY-MM), then of the whole
    days before and after them, [?, ?) and [?, ?) (YYYY-MM-DD): each a range of its key."""
    return " UNION ALL ".join(
        f"SELECT {columns} FROM {table} WHERE grain = '{grain}' "  # noqa: S608 - fixed text
        "AND period >= ? AND period < ?"
        for grain in ("month", "day", "day")
    )


def _by_day_and_month(columns: tuple[str, ...], by_day: str, by_month: str) -> str:
    """`by_day` (rows per day) and `by_month` (the same rows added up per month, over
    ``d``): each entry range is counted once, into both."""
    return (
        f"WITH d ({', '.join(columns)}) AS ({by_day}) "  # noqa: S608 - fixed text
        f"SELECT * FROM d WHERE true UNION ALL {by_month}"
    )


def ropa_sql(json: JsonReads) -> RopaSql:
    """The statements in a database's JSON reads."""
    operation = json.member.format(name="operation")
    consent_id = json.member.format(name="consent_id")
    key_reads = ("i.partner", operation, "i.purpose", "i.legal_basis")  # as _KEY
    key = ", ".join(f"COALESCE({read}, '')" for read in key_reads)
    key_named = ", ".join(
        f"COALESCE({read}, '') AS {name}" for read, name in zip(key_reads, _KEY, strict=True)
    )

    def first_sent(*more: str) -> str:
        """The intents first sent in the range as ``t``: their day and key, read out of
        their JSON once each, and `more`. Materialized, so that no read of the JSON is
        repeated per field (PostgreSQL did: 12 s for a range of 100,000 entries under
        load, 1.5 s after) nor applied to the intents of the whole log as a filter."""
        columns = ", ".join((f"{json.day} AS day", key_named, *more))
        return (
            f"WITH t AS MATERIALIZED (SELECT {columns} FROM {_ENTRIES} "  # noqa: S608
            f"WHERE {_FIRST_SENT_IN_RANGE}) "
        )

    month = "'month', substr(period, 1, 7)"
    day_columns = ("grain", "period", *_KEY, "disclosures", "first_at", "last_at")
    days = Rollup(
        "ropa_days",
        ("grain", "period", *_KEY),
        (
            ("disclosures", Combine.ADD),
            ("first_at", Combine.LEAST),
            ("last_at", Combine.GREATEST),
        ),
        _by_day_and_month(
            day_columns,
            f"{first_sent('i.logged_at')}SELECT 'day', day, {_KEYS}, count(*), "  # noqa: S608
            "min(logged_at), max(logged_at) FROM t GROUP BY 1, 2, 3, 4, 5, 6",
            f"SELECT {month}, {_KEYS}, sum(disclosures), min(first_at), max(last_at) "  # noqa: S608
            "FROM d WHERE true GROUP BY 1, 2, 3, 4, 5, 6",
        ),
    )
    field_columns = ("grain", "period", *_KEY, "field", "disclosures")
    field_days = Rollup(
        "ropa_field_days",
        ("grain", "period", *_KEY, "field"),
        (("disclosures", Combine.ADD),),
        _by_day_and_month(
            field_columns,
            # `t` as `ie`: the fields' FROM item reads `ie.entry`.
            f"{first_sent('ie.entry')}SELECT 'day', day, {_KEYS}, f.key, count(*) "  # noqa: S608
            f"FROM t ie {json.field_keys} GROUP BY 1, 2, 3, 4, 5, 6, 7",
            f"SELECT {month}, {_KEYS}, field, sum(disclosures) "  # noqa: S608 - fixed text
            "FROM d WHERE true GROUP BY 1, 2, 3, 4, 5, 6, 7",
        ),
    )
    consent_columns = ("grain", "period", *_KEY, "consent_id")
    consent_days = Rollup(
        "ropa_consent_days",
        consent_columns,
        (),
        _by_day_and_month(
            consent_columns,
            f"{first_sent(f'{consent_id} AS consent_id')}SELECT DISTINCT 'day', day, "  # noqa: S608
            f"{_KEYS}, consent_id FROM t WHERE consent_id IS NOT NULL",
            f"SELECT DISTINCT {month}, {_KEYS}, consent_id FROM d WHERE true",  # noqa: S608
        ),
    )
    rows = (
        f"SELECT {_KEYS}, sum(n), min(first_at), max(last_at) FROM ("  # noqa: S608 - fixed text
        f"{_whole_periods('ropa_days', f'{_KEYS}, disclosures AS n, first_at, last_at')} "
        f"UNION ALL SELECT {key}, 1, i.logged_at, i.logged_at FROM {_ENTRIES} "
        f"WHERE {_SENT_IN_PARTS}) u GROUP BY 1, 2, 3, 4"
    )
    fields = (
        f"SELECT {_KEYS}, field, sum(n) FROM ("  # noqa: S608 - fixed text
        f"{_whole_periods('ropa_field_days', f'{_KEYS}, field, disclosures AS n')} "
        f"UNION ALL SELECT {key}, f.key, 1 FROM {_ENTRIES} {json.field_keys} "
        f"WHERE {_SENT_IN_PARTS}) u GROUP BY 1, 2, 3, 4, 5"
    )
    consents = (
        f"SELECT {_KEYS}, count(DISTINCT c.id), "  # noqa: S608 - fixed text
        "count(DISTINCT CASE WHEN c.withdrawn_at IS NOT NULL THEN c.id END) FROM ("
        f"{_whole_periods('ropa_consent_days', f'{_KEYS}, consent_id')} "
        f"UNION ALL SELECT {key}, {consent_id} FROM {_ENTRIES} WHERE {_SENT_IN_PARTS}"
        ") u JOIN consents c ON c.id = u.consent_id GROUP BY 1, 2, 3, 4"
    )
    return RopaSql(rows, fields, consents, (days, field_days, consent_days))
