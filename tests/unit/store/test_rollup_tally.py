"""Counted range by range, the rows a rollup's table must hold: combined as its upsert
combines them (gateway.store.rollup_sql)."""

from __future__ import annotations

from decimal import Decimal

from gateway.store.rollup_sql import Combine, Rollup, Tally, plain_rows, ranges

DAYS = Rollup(
    "days",
    ("day", "partner"),
    (("n", Combine.ADD), ("first", Combine.LEAST), ("last", Combine.GREATEST)),
    "SELECT 1",
)
SET = Rollup("ids", ("day", "id"), (), "SELECT 1")


def test_ranges_cover_the_interval_in_order() -> None:
    assert list(ranges(0, 7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(ranges(5, 5, 3)) == []


def test_ranges_of_a_key_add_up_keep_the_first_and_the_last() -> None:
    tally = Tally(DAYS)
    tally.add([("d1", "p", 2, "10:00", "11:00"), ("d2", "p", 1, "09:00", "09:00")])
    tally.add([("d1", "p", Decimal(3), "09:30", "10:30")])  # PostgreSQL's sum() is numeric

    assert tally.difference(
        [("d1", "p", 5, "09:30", "11:00"), ("d2", "p", 1, "09:00", "09:00")]
    ) == (
        0,
        0,
    )
    # A count changed in the table: one row missing, one too many.
    assert tally.difference(
        [("d1", "p", 6, "09:30", "11:00"), ("d2", "p", 1, "09:00", "09:00")]
    ) == (
        1,
        1,
    )


def test_a_set_keeps_one_row_per_key() -> None:
    tally = Tally(SET)
    tally.add([("d1", "c-1"), ("d1", "c-2")])
    tally.add([("d1", "c-1")])
    assert tally.difference([("d1", "c-1"), ("d1", "c-2")]) == (0, 0)
    assert tally.difference([("d1", "c-1")]) == (1, 0)


def test_the_upsert_combines_as_the_tally() -> None:
    assert DAYS.upsert == (
        "INSERT INTO days (day, partner, n, first, last) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (day, partner) DO UPDATE SET n = days.n + excluded.n, "
        "first = CASE WHEN excluded.first < days.first THEN excluded.first ELSE days.first END, "
        "last = CASE WHEN excluded.last > days.last THEN excluded.last ELSE days.last END"
    )
    assert SET.upsert.endswith("VALUES (?, ?) ON CONFLICT (day, id) DO NOTHING")


def test_counted_rows_take_the_tables_types() -> None:
    assert plain_rows([("d1", "p", Decimal(3), "09:30")]) == [("d1", "p", 3, "09:30")]
