"""The per-day counts of the log kept beside it (schema 12), written once for both databases.

A reader of the record of processing or of the overview would otherwise count a year of
entries each time (19 s over 500 000 entries). Each :class:`Rollup` is a table of counts
per UTC day and the statement that counts the entries of an index range ``[?, ?)`` for
it; `log_rollup.next_index` says up to where they are counted. A reader first adds the
entries appended since (`SqlStore.roll_up_log`: a batch counted by a read, then merged by
an upsert per counted row in a short transaction that moves the mark), so what it
reads is derived from the log, never from what a person declared, and nothing is written
on the disclosure path.

What the tables must hold is the same statements over ``[0, next_index)``; they are
counted range by range and the ranges combined as the upsert combines them
(:class:`Tally`), so that no statement reads more than a range of the log however long
it grows (`SqlStore.check_rollup`, `gateway ropa --verify`); `--rebuild` empties the
tables and counts again, a range per transaction likewise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Final, TypeAlias

__all__ = [
    "CLEAR_MARK",
    "LOG_END",
    "MARK",
    "SET_MARK",
    "Combine",
    "Progress",
    "Rollup",
    "Tally",
    "plain_rows",
    "ranges",
]

MARK: Final = "SELECT next_index FROM log_rollup WHERE name = 'counts'"
# Moved from an expected mark only (``?`` new, ``?`` expected): one counter per range.
SET_MARK: Final = "UPDATE log_rollup SET next_index = ? WHERE name = 'counts' AND next_index = ?"
CLEAR_MARK: Final = "UPDATE log_rollup SET next_index = 0 WHERE name = 'counts'"
# Counted up to the projection's mark, never past it: the counts read its columns.
LOG_END: Final = "SELECT projected_size FROM log_projection WHERE name = 'search'"

# Told, after each range, how many entries are counted and of how many (a long run's
# progress line: `gateway ropa --verify` over ten million entries takes minutes).
Progress: TypeAlias = Callable[[int, int], None]


class Combine(Enum):
    """How a counted value meets the stored one of the same key."""

    ADD = "add"  # a count
    LEAST = "least"  # the first time
    GREATEST = "greatest"  # the last time

    def sql(self, table: str, column: str) -> str:
        """The upsert's SET of `column`: the stored value combined with ``excluded``'s."""
        stored, counted = f"{table}.{column}", f"excluded.{column}"
        if self is Combine.ADD:
            return f"{column} = {stored} + {counted}"
        # CASE rather than LEAST/GREATEST: SQLite has neither (its min/max of two
        # arguments is not PostgreSQL's).
        wins = "<" if self is Combine.LEAST else ">"
        return f"{column} = CASE WHEN {counted} {wins} {stored} THEN {counted} ELSE {stored} END"

    def of(self, stored: Any, counted: Any) -> Any:
        if self is Combine.ADD:
            return stored + counted
        return min(stored, counted) if self is Combine.LEAST else max(stored, counted)


@dataclass(frozen=True)
class Rollup:
    """One table of per-day counts and how entries are counted into it."""

    table: str
    key: tuple[str, ...]  # its primary key: a row per distinct value
    # The other columns, after the key, and how a counted value meets a stored one
    # (none: the table is a set of keys, a counted row already stored is kept as it is).
    values: tuple[tuple[str, Combine], ...]
    # SELECT of `columns` over the entries with ``idx >= ? AND idx < ?``, one row per key.
    counted: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key, *(column for column, _ in self.values))

    @property
    def upsert(self) -> str:
        """Merge one counted row (`columns` in order) into the table."""
        merge = ", ".join(how.sql(self.table, column) for column, how in self.values)
        conflict = f"DO UPDATE SET {merge}" if merge else "DO NOTHING"
        marks = ", ".join("?" for _ in self.columns)
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({', '.join(self.key)}) {conflict}"
        )

    @property
    def stored(self) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.table}"  # noqa: S608 - fixed text

    @property
    def clear(self) -> str:
        return f"DELETE FROM {self.table}"  # noqa: S608 - fixed text


@dataclass
class Tally:
    """The rows of a rollup counted range by range, combined as its upsert combines them:
    what the table holds after counting the same ranges."""

    rollup: Rollup
    _rows: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)

    def add(self, counted: Iterable[Sequence[Any]]) -> None:
        width = len(self.rollup.key)
        for row in counted:
            plain = [_plain(v) for v in row]
            key, values = tuple(plain[:width]), plain[width:]
            stored = self._rows.get(key)
            if stored is None:
                self._rows[key] = values
                continue
            for i, (_, how) in enumerate(self.rollup.values):
                stored[i] = how.of(stored[i], values[i])

    def difference(self, stored: Iterable[Sequence[Any]]) -> tuple[int, int]:
        """How many rows counted are not in `stored`, and of `stored` not counted."""
        want = Counter((*key, *values) for key, values in self._rows.items())
        have = Counter(tuple(_plain(v) for v in row) for row in stored)
        return sum((want - have).values()), sum((have - want).values())


def plain_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Counted rows as the table's columns take them (PostgreSQL's sum() is numeric)."""
    return [tuple(_plain(v) for v in row) for row in rows]


def ranges(start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` in consecutive ranges of at most `size` indexes."""
    for first in range(start, end, size):
        yield first, min(end, first + size)


def _plain(value: object) -> object:
    # PostgreSQL's sum() is numeric where the table holds bigint: compare numbers as ints.
    return int(value) if isinstance(value, Decimal) else value
