"""A partner's exposure in a window (breach scope, issue #19), aggregated in SQL, written once.

"Which of our customers, which fields, since when": the disclosures to one partner whose
intent was logged in ``since <= time < until``, counted by the database rather than read
entry by entry. Each disclosure is classed by its outcome entries:

- ``sent``: an outcome ``sent`` (the partner answered that it received it);
- ``maybe``: no outcome ``sent``, but an outcome ``unknown`` (crash recovery could not
  tell), a failure whose ``maybe_received`` is true (a timeout after sending), or no
  outcome at all yet (in flight) — the partner may hold the data, and a breach analyst
  counts it, flagged;
- ``failed``: only failures that never reached the partner — not exposed, not counted.

What differs between SQLite and PostgreSQL is only how the entry's JSON is read
(:class:`JsonSql`); the statements use ``?`` placeholders, numbered for PostgreSQL by the
adapter. The field names come from the intent entry's ``fields`` (the vocabulary's names
only: gateway.log.entries never writes another), their categories from
:mod:`gateway.vocabulary`, written into the SQL as fixed literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway import vocabulary as v

__all__ = [
    "POSTGRES_JSON",
    "SQLITE_JSON",
    "ExposureCount",
    "ExposureSql",
    "ExposureTotals",
    "SubjectRefCount",
    "exposure_sql",
]


@dataclass(frozen=True)
class JsonSql:
    """How one database reads the entry's JSON: an outcome entry ``o``'s
    ``maybe_received`` being true, and the field names of an intent entry ``d`` as a
    FROM item with one column ``f.key``."""

    maybe_received: str
    field_names: str


# The bytes of the outcome entry ``o`` (a row of the projection, schema 14).
_OUTCOME_ENTRY: Final = "(SELECT oe.entry FROM log_entries oe WHERE oe.idx = o.idx)"

SQLITE_JSON: Final = JsonSql(
    maybe_received=f"json_extract(CAST({_OUTCOME_ENTRY} AS TEXT), '$.maybe_received') = 1",
    field_names="json_each(CAST(d.entry AS TEXT), '$.fields') AS f",
)
POSTGRES_JSON: Final = JsonSql(
    maybe_received=(
        f"(convert_from({_OUTCOME_ENTRY}, 'UTF8')::jsonb ->> 'maybe_received') = 'true'"
    ),
    field_names="jsonb_object_keys(convert_from(d.entry, 'UTF8')::jsonb -> 'fields') AS f(key)",
)


@dataclass(frozen=True)
class ExposureTotals:
    """Disclosures (sent or maybe) and distinct subject references among them."""

    disclosures: int
    maybe_disclosures: int  # of `disclosures`, those only maybe received
    subjects: int


@dataclass(frozen=True)
class ExposureCount:
    """One field's (or category's) share of an exposure."""

    name: str
    disclosures: int
    maybe_disclosures: int
    subjects: int


@dataclass(frozen=True)
class SubjectRefCount:
    """One subject reference of an exposure: its disclosures, and whether any was sent
    for certain (False: every one of them only maybe received)."""

    subject_ref: str
    disclosures: int
    sent: bool


def _category_case() -> str:
    # Fixed names of the vocabulary (letters and underscores), never a value from a request.
    whens = " ".join(f"WHEN '{name}' THEN '{cat}'" for name, cat in v.CATEGORY_OF_FIELD.items())
    return f"CASE split_key {whens} ELSE 'unknown' END"


# Outcomes are compared as expressions (`|| ''`), and so is the intent's kind: otherwise
# SQLite (without statistics) walks the outcome index — every `sent` outcome of the log,
# for each intent: 105 s for 50,000 entries — or every intent of the log by kind, instead
# of the disclosure's own entries and the partner's.
def _outcome(condition: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM log_index o WHERE o.disclosure_id = i.disclosure_id "  # noqa: S608
        f"AND o.kind = 'outcome'{condition})"
    )


@dataclass(frozen=True)
class ExposureSql:
    """The statements, each binding (partner, since, until) first."""

    totals: str
    fields: str
    categories: str
    subject_refs: str  # then (after ref, limit)


def exposure_sql(json: JsonSql) -> ExposureSql:
    sent = _outcome(" AND (o.outcome || '') = 'sent'")
    maybe = _outcome(f" AND ((o.outcome || '') = 'unknown' OR {json.maybe_received})")
    delivered = (
        "WITH d AS (SELECT i.idx, i.subject_ref, ie.entry, CASE "  # noqa: S608
        f"WHEN {sent} THEN 'sent' WHEN NOT {_outcome('')} THEN 'maybe' "
        f"WHEN {maybe} THEN 'maybe' ELSE 'failed' END AS delivery "
        "FROM log_index i JOIN log_entries ie ON ie.idx = i.idx "
        "WHERE (i.kind || '') = 'intent' AND i.partner = ? "
        "AND i.logged_at >= ? AND i.logged_at < ?) "
    )
    counts = (
        "count(DISTINCT d.idx), count(DISTINCT CASE WHEN d.delivery = 'maybe' THEN d.idx END), "
        "count(DISTINCT d.subject_ref)"
    )
    # A nested payment record's keys are named `payment_records.<key>`: the category is
    # that of the name before the dot.
    field = "f.key"
    category = _category_case().replace(
        "split_key",
        "CASE WHEN f.key LIKE 'payment\\_records.%' ESCAPE '\\' THEN 'payment_records' "
        "ELSE f.key END",
    )
    exposed = "d.delivery <> 'failed'"
    return ExposureSql(
        totals=f"{delivered}SELECT {counts} FROM d WHERE {exposed}",  # noqa: S608
        fields=(
            f"{delivered}SELECT {field}, {counts} FROM d, {json.field_names} "  # noqa: S608
            f"WHERE {exposed} GROUP BY {field} ORDER BY {field}"
        ),
        categories=(
            f"{delivered}SELECT {category} AS category, {counts} FROM d, {json.field_names} "  # noqa: S608
            f"WHERE {exposed} GROUP BY {category} ORDER BY 1"
        ),
        subject_refs=(
            f"{delivered}SELECT d.subject_ref, count(*), max(d.delivery) FROM d "  # noqa: S608
            f"WHERE {exposed} AND d.subject_ref > ? "
            "GROUP BY d.subject_ref ORDER BY d.subject_ref LIMIT ?"
        ),
    )
