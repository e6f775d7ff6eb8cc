"""The one clock: the current time as an aware UTC datetime.

Pure code never reads it — `policy.decide()`, the log's entry builders and the review
listing take `now` as an argument. The services that live long (the log, crash recovery,
the composition root, the review page, partner standing) take a `clock` parameter that
defaults to :func:`utc_now`, so a test passes a fixed or stepping clock instead.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC (never a naive datetime: every time the gateway stores or compares is UTC)."""
    return datetime.now(UTC)
