"""The per-day counts of the log kept beside it (schema 12), written once for both databases.

A reader of the record of processing or of the overview would otherwise count a year of
entries each time (19 s over 500 000 entries). Each :class:`Rollup` is a table of counts
per UTC day and the statement that counts the entries of an index range ``[?, ?)`` into
it; `log_rollup.next_index` says up to where they are counted. A reader first adds the
entries appended since (`SqlStore.roll_up_log`, a batch per transaction), so what it
reads is derived from the log, never from what a person declared, and nothing is written
on the disclosure path. The same statements over ``[0, next_index)`` are what the tables
must hold (`SqlStore.check_rollup`, `gateway ropa --verify`); `--rebuild` empties them
and counts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CLEAR_MARK", "LOG_END", "MARK", "SET_MARK", "Rollup", "added"]

MARK: Final = "SELECT next_index FROM log_rollup WHERE name = 'counts'"
SET_MARK: Final = "UPDATE log_rollup SET next_index = ? WHERE name = 'counts'"
CLEAR_MARK: Final = "UPDATE log_rollup SET next_index = 0 WHERE name = 'counts'"
# Counted up to the projection's mark, never past it: the counts read its columns.
LOG_END: Final = "SELECT projected_size FROM log_projection WHERE name = 'search'"


def added(table: str, column: str) -> str:
    """An upsert's SET of a count: the stored one plus the newly counted one."""
    return f"{column} = {table}.{column} + excluded.{column}"


@dataclass(frozen=True)
class Rollup:
    """One table of per-day counts and how entries are counted into it."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # its primary key: a row per distinct value
    # The SET of the upsert when a counted row meets a stored one ("": keep the stored).
    merge: str
    # SELECT of `columns` over the entries with ``idx >= ? AND idx < ?``, one row per key.
    counted: str

    @property
    def add(self) -> str:
        """Count the entries of ``[?, ?)`` into the table."""
        conflict = f"DO UPDATE SET {self.merge}" if self.merge else "DO NOTHING"
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) {self.counted} "
            f"ON CONFLICT ({', '.join(self.key)}) {conflict}"
        )

    @property
    def stored(self) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.table}"  # noqa: S608 - fixed text

    @property
    def clear(self) -> str:
        return f"DELETE FROM {self.table}"  # noqa: S608 - fixed text
