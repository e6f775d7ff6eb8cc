"""The log's search columns: derived from the entry bytes, compared in one place (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.log.audit import Auditor
from gateway.log.columns import (
    COLUMNS,
    SearchIndexDamaged,
    check_rows,
    columns_of,
    columns_of_bytes,
    disagreeing,
)
from gateway.log.entries import outcome_entry, row_of
from gateway.store.records import LogColumns, LogQuery

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


def outcome(i: int, value: str = "sent") -> bytes:
    entry = outcome_entry(disclosure_id=f"d-{i}", outcome=value, at=AT, partner="p")
    return row_of(entry).entry


def test_columns_are_the_entrys_own_values() -> None:
    entry = {
        "kind": "refused",
        "disclosure_id": "d-1",
        "time": "2026-11-24T09:00:00.000Z",
        "subject_ref": "r",
        "partner": "p\x00",
        "purpose": "x",
        "legal_basis": "y",
    }
    expected = LogColumns("refused", "d-1", "r", "p\ufffd", AT, "x", "y", "refused")
    assert columns_of(entry) == expected
    # What the projector derives from the appended row's bytes.
    assert columns_of_bytes(row_of(entry).entry) == expected


@pytest.mark.parametrize("column", COLUMNS)
def test_each_edited_column_is_named(column: str) -> None:
    data = outcome(1)
    stored = columns_of(json.loads(data))
    forged = stored._replace(**{column: AT.replace(year=2020) if column == "time" else "x"})
    assert disagreeing(stored, data) == ()
    assert disagreeing(forged, data) == (column,)


def test_bytes_that_are_no_entry_disagree_everywhere() -> None:
    stored = columns_of(json.loads(outcome(1)))
    for junk in (b"", b"[]", b"{", b'{"kind":"note"}', b'{"kind":"intent","disclosure_id":"d"}'):
        assert disagreeing(stored, junk) == COLUMNS


def test_a_found_row_must_satisfy_its_filters_by_its_bytes() -> None:
    rows = [(0, outcome(0)), (1, outcome(1, "failed"))]
    checked = check_rows(rows, LogQuery(kind="outcome"))
    assert [(entry.index, entry.raw) for entry in checked] == rows
    assert [entry.outcome for entry in checked] == ["sent", "failed"]
    with pytest.raises(SearchIndexDamaged) as damaged:
        check_rows(rows, LogQuery(kind="outcome", outcome="sent"))
    assert (damaged.value.index, damaged.value.column, damaged.value.status) == (1, "outcome", 503)
    with pytest.raises(SearchIndexDamaged) as late:
        check_rows(rows, LogQuery(until=AT))
    assert late.value.column == "time"
    with pytest.raises(SearchIndexDamaged):
        check_rows([(7, b"not json")], LogQuery())


def test_the_auditor_reports_columns_past_a_gap_and_feeds_the_tree() -> None:
    good = [outcome(i) for i in range(4)]
    cols = [columns_of(json.loads(d)) for d in good]
    auditor = Auditor([], "unused", "origin")
    auditor.feed_rows(
        [
            (0, good[0], None, cols[0], True),
            (1, good[1], None, cols[1]._replace(subject_ref="someone"), True),
            (3, good[3], None, cols[3]._replace(partner="q", outcome="failed"), True),
        ]
    )
    report = auditor.finish(4)
    messages = [p.message for p in report.problems]
    assert any(m.startswith("entry 1: its search column subject_ref does not") for m in messages)
    assert any(
        m.startswith("entry 3: its search columns partner, outcome do not") for m in messages
    )
    assert any("entry 2 is missing" in m for m in messages)
    assert report.first_bad is not None and report.first_bad.start == 1


def test_the_quick_comparison_never_accepts_what_the_full_one_rejects() -> None:
    entry = {
        "kind": "refused",
        "disclosure_id": "d-1",
        "time": "2026-11-24T09:00:00.000Z",
        "partner": "p\x00",
        "subject_ref": 7,
    }
    data = row_of(entry).entry
    good = columns_of(entry)
    assert good.partner == "p\ufffd" and good.subject_ref == "7"
    assert disagreeing(good, data) == ()
    assert disagreeing(good._replace(partner="p\x00"), data) == ("partner",)
    assert disagreeing(good._replace(subject_ref=None), data) == ("subject_ref",)
    assert disagreeing(good._replace(outcome=None), data) == ("outcome",)
    naive = good._replace(time=good.time.replace(tzinfo=None))
    assert disagreeing(naive, data) == ("time",)
