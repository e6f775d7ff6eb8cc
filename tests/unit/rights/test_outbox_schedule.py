"""The notice outbox's schedule (gateway.rights.outbox.next_attempt_at): pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.rights.outbox import DEFAULT_MAX_AGE, DEFAULT_SCHEDULE_S, next_attempt_at

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_the_delay_grows_with_each_failed_attempt():
    delays = [
        next_attempt_at(T0, attempts, T0) - T0 for attempts in range(1, len(DEFAULT_SCHEDULE_S) + 1)
    ]
    assert delays == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=6),
        timedelta(hours=12),
    ]


def test_the_last_step_repeats_until_the_notice_is_too_old():
    now = T0 + timedelta(days=3)
    assert next_attempt_at(T0, 20, now) == now + timedelta(hours=12)
    # Exactly at the edge still counts; one step past it is given up.
    edge = T0 + DEFAULT_MAX_AGE - timedelta(hours=12)
    assert next_attempt_at(T0, 9, edge) == T0 + DEFAULT_MAX_AGE
    assert next_attempt_at(T0, 9, edge + timedelta(seconds=1)) is None


def test_a_whole_run_of_failures_gives_up_after_max_age_and_not_before():
    now, attempts = T0, 1
    while (due := next_attempt_at(T0, attempts, now)) is not None:
        now, attempts = due, attempts + 1
    assert T0 + DEFAULT_MAX_AGE - timedelta(hours=12) < now <= T0 + DEFAULT_MAX_AGE
    # The first attempt, five after growing delays, then twelve-hourly for the rest of the week.
    assert attempts == 1 + 5 + 13


def test_a_configured_schedule_and_age():
    assert next_attempt_at(T0, 1, T0, (10, 20), timedelta(seconds=25)) == T0 + timedelta(seconds=10)
    assert (
        next_attempt_at(T0, 2, T0 + timedelta(seconds=10), (10, 20), timedelta(seconds=25)) is None
    )


def test_nonsense_is_refused():
    with pytest.raises(ValueError):
        next_attempt_at(T0, 0, T0)
    with pytest.raises(ValueError):
        next_attempt_at(T0, 1, T0, ())
