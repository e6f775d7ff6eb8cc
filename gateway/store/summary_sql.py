"""The overview's counts of the disclosure log, each one GROUP BY statement (issue #19).

Written once for both databases with ``?`` placeholders (PostgreSQL's ``$n`` come from
the adapter's ``_in_dialect``); the two expressions that differ — the UTC day of
``logged_at`` and the ``problem`` member of an entry's JSON — are given by each adapter
(`SummaryExpressions`). Every statement starts from ``logged_at >= ?``, so the database
walks the time index (``log_entries_by_time``) over the window only, whatever the size
of the log; kinds and outcomes are the indexed search columns of schema 2.

Nothing counted here is personal: partner ids, outcomes, problem codes, days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

__all__ = [
    "DayCount",
    "KeyCount",
    "SummaryExpressions",
    "decisions_by_day",
    "decisions_by_partner",
    "refusals_by_problem",
]


@dataclass(frozen=True)
class DayCount:
    """Decisions of one UTC day that ended in `outcome` (sent, failed, unknown, refused)."""

    day: date
    outcome: str
    count: int


@dataclass(frozen=True)
class KeyCount:
    """How many entries share one value (a partner id, a problem code)."""

    key: str
    count: int


@dataclass(frozen=True)
class SummaryExpressions:
    """What one database writes differently: SQL expressions over a ``log_entries`` row."""

    day: str  # the UTC day of logged_at as text YYYY-MM-DD
    problem: str  # the entry's "problem" member as text


SQLITE: Final = SummaryExpressions(
    # Times are stored as UTC ISO text (gateway.store.sqlite._time): the day is its start.
    day="substr(logged_at, 1, 10)",
    problem="json_extract(CAST(entry AS TEXT), '$.problem')",
)
POSTGRES: Final = SummaryExpressions(
    day="to_char(logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    problem="convert_from(entry, 'UTF8')::jsonb ->> 'problem'",
)


def decisions_by_day(x: SummaryExpressions) -> str:
    """Outcome entries (sent, failed, unknown) and refusals since ``?``, per day and
    outcome. An intent still without its outcome is not counted (it is pending)."""
    return (
        f"SELECT {x.day} AS day, outcome, count(*) FROM log_entries "  # noqa: S608 - fixed text
        "WHERE logged_at >= ? AND kind IN ('outcome', 'refused') AND outcome IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )


def refusals_by_problem(x: SummaryExpressions) -> str:
    """Refusals since ``?`` per problem code, most frequent first."""
    return (
        f"SELECT {x.problem} AS problem, count(*) FROM log_entries "  # noqa: S608 - fixed text
        "WHERE logged_at >= ? AND kind = 'refused' "
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    )


def decisions_by_partner(x: SummaryExpressions) -> str:
    """Decisions (intents and refusals) since ``?`` per partner, most first; at most ``?``."""
    return (
        "SELECT partner, count(*) FROM log_entries "
        "WHERE logged_at >= ? AND kind IN ('intent', 'refused') AND partner IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?"
    )
