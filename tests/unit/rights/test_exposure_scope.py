"""Breach scope's pure parts: the window, the customer file, resolving ids to references."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest

from gateway.crypto.subject_keys import LogKeys, Period
from gateway.errors import InvalidRequestError
from gateway.rights.exposure import Window, parse_window, read_customer_ids, resolve


def test_dates_cover_whole_days_and_times_are_exact() -> None:
    window = parse_window("2026-03-01", "2026-03-31")
    assert window.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 4, 1, tzinfo=UTC)  # through the 31st
    window = parse_window("2026-03-01T08:00:00+07:00", "2026-03-02T00:00:00Z")
    assert window.since == datetime(2026, 3, 1, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 3, 2, tzinfo=UTC)
    assert [str(p) for p in parse_window("2026-01-31", "2026-03-01").months()] == [
        "2026-01",
        "2026-02",
        "2026-03",
    ]


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("03/01/2026", "2026-03-31"),
        ("2026-03-01", None),
        ("2026-03-01T00:00:00", "2026-03-31"),  # no time zone
        ("2026-04-01", "2026-03-01"),
    ],
)
def test_bad_windows_say_the_format(since: str, until: str | None) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_window(since, until)
    assert "YYYY-MM-DD" in caught.value.detail or "before" in caught.value.detail


def test_customer_file_header_blank_and_bad_lines() -> None:
    read = read_customer_ids('"Customer ID",name\nc-1,Ann\n\n  c-2 \nnot an id!\nc-3\n')
    assert read.header_skipped and read.ids == ["c-1", "c-2", "c-3"]
    assert read.bad_lines == [5]  # its number, never its value
    plain = read_customer_ids("c-9\nc-8\n")
    assert not plain.header_skipped and plain.ids == ["c-9", "c-8"]


def test_resolve_finds_the_months_references_and_reports_forgotten_months() -> None:
    keys = LogKeys(secrets.token_bytes(32), Period(2026, 1))
    march, april = datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 4, 5, tzinfo=UTC)
    exposed = {keys.subject_ref("c-1", march), keys.subject_ref("c-1", april)}
    exposed.add(keys.subject_ref("c-2", april))
    window = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    found = resolve(["c-1", "c-2", "c-3", "c-1"], keys, window, exposed)
    assert sorted(found.found) == sorted(
        [
            ("c-1", keys.subject_ref("c-1", march)),
            ("c-1", keys.subject_ref("c-1", april)),
            ("c-2", keys.subject_ref("c-2", april)),
        ]
    )
    assert found.counts() == {
        "ids_read": 3,
        "found": 2,
        "references": 3,
        "forgotten_months": 0,
    }
    keys.drop_before(Period(2026, 4))  # March's key forgotten
    after = resolve(["c-1", "c-2"], keys, window, exposed)
    assert [str(p) for p in after.forgotten] == ["2026-03"]
    assert sorted(after.found) == [
        ("c-1", keys.subject_ref("c-1", april)),
        ("c-2", keys.subject_ref("c-2", april)),
    ]
