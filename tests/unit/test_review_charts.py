"""The overview's chart geometry (gateway.web.review.charts): pure, no browser needed."""

from __future__ import annotations

from datetime import date

from gateway.web.review.charts import DAY_OUTCOMES, HEIGHT, day_chart, nice_ceiling

FIRST = date(2026, 11, 1)


def link(day: date, outcome: str) -> str:
    return f"/list?outcome={outcome}&since={day}"


def test_axis_top_is_a_round_number_at_least_the_tallest_bar() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 2, 3, 6, 11, 49, 50, 51, 999)] == [
        1, 1, 2, 5, 10, 20, 50, 50, 100, 1000,
    ]  # fmt: skip


def test_one_bar_per_day_stacked_in_outcome_order_with_counts_titles_and_links() -> None:
    counts = {
        (date(2026, 11, 3), "refused"): 2,
        (date(2026, 11, 3), "sent"): 6,
        (date(2026, 11, 5), "failed"): 1,
        (date(2026, 10, 31), "sent"): 99,  # before the window: not drawn
    }
    chart = day_chart(counts, FIRST, 7, link)
    assert [bar.day.day for bar in chart.bars] == [1, 2, 3, 4, 5, 6, 7]
    assert chart.totals == {"sent": 6, "failed": 1, "unknown": 0, "refused": 2}
    assert chart.total == 9
    third = chart.bars[2]
    assert [s.outcome for s in third.segments] == ["sent", "refused"]
    sent, refused = third.segments
    assert sent.y + sent.height == chart.baseline  # sent at the bottom
    assert refused.y + refused.height == sent.y  # refused on top of it
    assert sent.height == 3 * refused.height
    assert sent.title == "2026-11-03: 6 sent" and refused.title == "2026-11-03: 2 refused"
    assert refused.href == "/list?outcome=refused&since=2026-11-03"
    assert third.segment("failed") is None and third.segment("sent") == sent
    assert chart.bars[4].segments[0].title == "2026-11-05: 1 failed to send"
    assert all(not bar.segments for bar in (chart.bars[0], chart.bars[1], chart.bars[3]))
    # The tallest bar reaches the axis top (10) at most; ticks at 0, 5 and 10.
    assert [t.value for t in chart.ticks] == [0, 5, 10]
    assert min(s.y for bar in chart.bars for s in bar.segments) >= chart.ticks[-1].y
    assert all(0 < bar.x < chart.width for bar in chart.bars)


def test_an_empty_window_draws_no_segment_and_still_an_axis() -> None:
    chart = day_chart({}, FIRST, 30, link)
    assert len(chart.bars) == 30 and chart.total == 0
    assert all(not bar.segments for bar in chart.bars)
    assert [t.value for t in chart.ticks] == [0, 1]
    assert chart.ticks[0].y == chart.baseline < HEIGHT
    assert set(chart.totals) == set(DAY_OUTCOMES)


def test_the_last_day_and_each_week_before_it_are_labelled() -> None:
    chart = day_chart({}, FIRST, 30, link)
    labelled = [bar.day.day for bar in chart.bars if bar.label]
    assert labelled == [2, 9, 16, 23, 30]
    assert chart.bars[-1].label == "30 Nov"
