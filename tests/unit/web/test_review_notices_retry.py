"""What the notices page says a retry did (gateway.web.review.notices_page.retried_text),
and the retry schedule it states (schedule_text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.store.records import OutboxNotice
from gateway.web.review.notices_page import retried_text, schedule_text

AT = datetime(2026, 12, 7, tzinfo=UTC)


def notice(notice_id: str, status: str, error: str = "") -> OutboxNotice:
    return OutboxNotice(
        id=notice_id,
        kind="consent_withdrawn",
        partner="adreach",
        operation="erasure",
        reference="CW-c-1",
        payload="sealed",
        status=status,
        attempts=2,
        created_at=AT,
        next_at=AT,
        last_error=error,
        disclosure_id="d-1",
    )


def test_one_notice_says_whether_the_partner_accepted_it() -> None:
    assert retried_text([notice("n-1", "sent")], 1) == "Notice n-1 to adreach was accepted"
    assert (
        retried_text([notice("n-1", "pending", "partner_status_503")], 1)
        == "Notice n-1 to adreach was not accepted: Partner answered HTTP 503 (partner_status_503)"
    )


def test_several_are_counted_and_those_another_instance_sends_are_named() -> None:
    done = [notice("n-1", "sent"), notice("n-2", "failed", "partner_unavailable")]
    assert retried_text(done, 2) == "2 retried: 1 accepted, 1 not accepted"
    assert retried_text(done, 3) == (
        "3 retried: 1 accepted, 1 not accepted, 1 being sent by another instance"
    )
    assert retried_text([], 0) == "Nothing to retry: every notice was accepted"


@pytest.mark.parametrize(
    "schedule,max_age,text",
    [
        (
            (60, 300, 1800, 7200, 21600, 43200),
            timedelta(days=7),
            "1 min, 5 min, 30 min, 2 h, 6 h, then every 12 h for 7 d",
        ),
        ((30, 3600), timedelta(days=2), "30 s, then every 1 h for 2 d"),
        ((600,), timedelta(hours=12), "every 10 min for 12 h"),
    ],
)
def test_the_page_states_the_configured_schedule(schedule, max_age, text):
    # The page said "1 min, … every 12 h for a week" whatever [notices] retry_schedule_s
    # and max_age_days said.
    assert schedule_text(schedule, max_age) == text
