"""The SQL of a log search (`Store.log_search`), built once for both databases.

A :class:`~gateway.store.records.LogQuery` becomes conditions in one fixed order —
subject reference, partner, kind, purpose, legal basis, outcome, time from, time to,
index — one for each filter given and none for the others, so each database can use
the index of what was asked. Every value is a bound parameter; the SQL text comes only
from the fixed column names here.

What the two databases write differently is a :class:`Dialect`, which each adapter
subclasses: the placeholder (``?`` or ``$n``), a match of any of several values
(``IN (?, ?)`` or ``= ANY($n::text[])``), how a time is bound, and a hint to the
planner on a column name. How each one steers its planner towards the subject index
(a few rows out of millions) is the adapter's: that is why the subject condition is
kept apart from the others here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from gateway.store.records import LogQuery

__all__ = ["Dialect", "SearchSql", "count_rows", "count_sql", "found_rows", "search_sql", "where"]


class Dialect(ABC):
    """How one database writes a log search's conditions."""

    @abstractmethod
    def placeholder(self, position: int) -> str:
        """The bound value at `position` (counted from 1)."""

    @abstractmethod
    def any_of(self, column: str, values: Sequence[str], position: int) -> tuple[str, list[object]]:
        """A condition true when `column` is any of `values` (two or more), its first
        placeholder at `position`, and the values it binds."""

    def time(self, value: datetime) -> object:
        """A time as bound (as it is, unless the database keeps times as text)."""
        return value

    def column(self, name: str, *, by_subject: bool, in_window: bool = False) -> str:
        """`name` as a condition writes it; `by_subject` when the query names subjects,
        `in_window` when it bounds the time."""
        return name


@dataclass(frozen=True)
class SearchSql:
    """A query's conditions as SQL text, and every value they bind.

    `subject` holds the condition on the subject reference (none or one), `others`
    the rest in the fixed order. `params` are bound in placeholder order, the limit
    last, at the placeholder `limit`.
    """

    subject: tuple[str, ...]
    others: tuple[str, ...]
    params: tuple[object, ...]
    limit: str
    order: str = "p.idx"  # the ORDER BY: "p.idx", or "p.idx DESC" for a newest-first query

    @property
    def conditions(self) -> tuple[str, ...]:
        return (*self.subject, *self.others)


def search_sql(query: LogQuery, dialect: Dialect) -> SearchSql | None:
    """The SQL of `query` in `dialect`; None when it matches nothing (a filter of no
    values), which needs no database to answer."""
    if query.matches_nothing:
        return None
    by_subject = query.subject_refs is not None
    in_window = query.since is not None or query.until is not None
    params: list[object] = []

    # Every column is the projection's, `p` (schema 14: log_index; the entry's bytes are
    # joined by index).
    def compare(column: str, operator: str, value: object) -> str:
        params.append(value)
        name = dialect.column(f"p.{column}", by_subject=by_subject, in_window=in_window)
        return f"{name} {operator} {dialect.placeholder(len(params))}"

    def one_of(column: str, values: Sequence[str]) -> str:
        if len(values) == 1:
            return compare(column, "=", values[0])
        name = dialect.column(f"p.{column}", by_subject=by_subject, in_window=in_window)
        condition, bound = dialect.any_of(name, values, len(params) + 1)
        params.extend(bound)
        return condition

    subject = () if query.subject_refs is None else (one_of("subject_ref", query.subject_refs),)
    others: list[str] = []
    if query.partner is not None:
        others.append(compare("partner", "=", query.partner))
    if query.kinds == ("action",):
        # Written out, not bound: what the partial index of acts (log_index_actions, a few
        # rows among millions) needs to be chosen; the text is this constant.
        name = dialect.column("p.kind", by_subject=by_subject, in_window=in_window)
        others.append(f"{name} = 'action'")
    elif query.kinds is not None:
        others.append(one_of("kind", query.kinds))
    for column, value in (
        ("purpose", query.purpose),
        ("legal_basis", query.legal_basis),
        ("outcome", query.outcome),
    ):
        if value is not None:
            others.append(compare(column, "=", value))
    if query.since is not None:
        others.append(compare("logged_at", ">=", dialect.time(query.since)))
    if query.until is not None:
        others.append(compare("logged_at", "<", dialect.time(query.until)))
    if query.after_index is not None:
        others.append(compare("idx", "<" if query.newest_first else ">", query.after_index))
    params.append(query.limit)
    return SearchSql(
        subject,
        tuple(others),
        tuple(params),
        dialect.placeholder(len(params)),
        "p.idx DESC" if query.newest_first else "p.idx",
    )


def count_sql(query: LogQuery, dialect: Dialect) -> SearchSql | None:
    """The conditions of `query` for a count of every page: its `after_index` left out
    (the limit stays the last parameter; a count binds ``params[:-1]``)."""
    return search_sql(replace(query, after_index=None), dialect)


def found_rows(sql: SearchSql, source: str, conditions: Sequence[str]) -> str:
    """The entries of the rows of `source` (``p``: the projection, or what a database
    narrowed it to first) meeting `conditions`, in `sql`'s order, at most its limit:
    each row's bytes read by its index. A subquery, not a join: neither planner may
    read the entries any other way (PostgreSQL without statistics hashed the whole log)."""
    return (
        "SELECT p.idx, (SELECT e.entry FROM log_entries e WHERE e.idx = p.idx) "  # noqa: S608
        f"FROM {source}" + where(conditions) + f" ORDER BY {sql.order} LIMIT {sql.limit}"
    )


def count_rows(sql: SearchSql) -> str:
    """The count of the projected rows meeting every condition of `sql` (bind
    ``params[:-1]``)."""
    return "SELECT count(*) FROM log_index p" + where(sql.conditions)  # noqa: S608


def where(conditions: Sequence[str]) -> str:
    """`` WHERE a AND b`` of `conditions`, or nothing when there are none."""
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""
