"""The overview's counts of the disclosure log, each one GROUP BY statement (issue #19).

Written once for both databases with ``?`` placeholders (PostgreSQL's ``$n`` come from
the adapter's ``_in_dialect``). They read three per-day rollups (`rollup_sql`, schema
12), so a window of 30 days reads at most 30 rows per outcome, problem or partner
whatever the size of the log; each rollup counts the entries of an index range, where
the two expressions that differ — the UTC day of ``logged_at`` and the ``problem``
member of an entry's JSON — are given by each adapter (`SummaryExpressions`).

Nothing counted here is personal: partner ids, outcomes, problem codes, days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from gateway.store.rollup_sql import Combine, Rollup

__all__ = [
    "DECISIONS_BY_DAY",
    "DECISIONS_BY_PARTNER",
    "REFUSALS_BY_PROBLEM",
    "DayCount",
    "KeyCount",
    "SummaryExpressions",
    "summary_rollups",
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
    """What one database writes differently: SQL expressions over a ``log_index e`` row
    and its entry's bytes ``ee.entry``."""

    day: str  # the UTC day of logged_at as text YYYY-MM-DD
    problem: str  # the entry's "problem" member as text


SQLITE: Final = SummaryExpressions(
    # Times are stored as UTC ISO text (gateway.store.sqlite._time): the day is its start.
    day="substr(e.logged_at, 1, 10)",
    problem="json_extract(CAST(ee.entry AS TEXT), '$.problem')",
)
POSTGRES: Final = SummaryExpressions(
    day="to_char(e.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    problem="convert_from(ee.entry, 'UTF8')::jsonb ->> 'problem'",
)

# The projection's rows `e` (schema 14), each with its entry's bytes `ee`.
_RANGE: Final = (
    "FROM log_index e JOIN log_entries ee ON ee.idx = e.idx WHERE e.idx >= ? AND e.idx < ? AND "
)


def summary_rollups(x: SummaryExpressions) -> tuple[Rollup, ...]:
    """The overview's three rollups, counted in a database's expressions."""
    return (
        # Outcome entries (sent, failed, unknown) and refusals: an intent still without
        # its outcome is not counted (it is pending).
        Rollup(
            "summary_outcome_days",
            ("day", "outcome"),
            (("entries", Combine.ADD),),
            f"SELECT {x.day}, e.outcome, count(*) {_RANGE}"
            "e.kind IN ('outcome', 'refused') AND e.outcome IS NOT NULL GROUP BY 1, 2",
        ),
        Rollup(
            "summary_problem_days",
            ("day", "problem"),
            (("entries", Combine.ADD),),
            f"SELECT {x.day}, COALESCE({x.problem}, ''), count(*) {_RANGE}"
            "e.kind = 'refused' GROUP BY 1, 2",
        ),
        # Decisions: intents and refusals.
        Rollup(
            "summary_partner_days",
            ("day", "partner"),
            (("entries", Combine.ADD),),
            f"SELECT {x.day}, e.partner, count(*) {_RANGE}"
            "e.kind IN ('intent', 'refused') AND e.partner IS NOT NULL GROUP BY 1, 2",
        ),
    )


# Each from the day ``?`` (YYYY-MM-DD) on.
DECISIONS_BY_DAY: Final = (
    "SELECT day, outcome, sum(entries) FROM summary_outcome_days WHERE day >= ? "
    "GROUP BY 1, 2 ORDER BY 1, 2"
)
# Most frequent first.
REFUSALS_BY_PROBLEM: Final = (
    "SELECT problem, sum(entries) FROM summary_problem_days WHERE day >= ? "
    "GROUP BY 1 ORDER BY 2 DESC, 1"
)
# Most first; at most ``?``.
DECISIONS_BY_PARTNER: Final = (
    "SELECT partner, sum(entries) FROM summary_partner_days WHERE day >= ? "
    "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?"
)
