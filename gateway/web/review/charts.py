"""The overview's pictures as numbers: where each bar of a server-rendered SVG chart goes.

The review site's CSP allows no script, so a chart is SVG drawn by the template from what
is computed here — pure geometry, no I/O. Every bar segment keeps its count, its label and
the link to the entries behind it, so the template gives it a ``<title>`` (shown on
hover and read by screen readers) and an ``<a>``; the same numbers are also in a table
next to the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

__all__ = [
    "DAY_OUTCOMES",
    "DayBar",
    "DayChart",
    "Segment",
    "Tick",
    "day_chart",
    "nice_ceiling",
]

DAY_OUTCOMES: Final = ("sent", "failed", "unknown", "refused")
"""The stacking order of a day's bar, bottom up (what went out first)."""

OUTCOME_WORDS: Final = {
    "sent": "sent",
    "failed": "failed to send",
    "unknown": "outcome unknown",
    "refused": "refused",
}

# The chart's own coordinate system (the SVG scales to its box through its viewBox).
WIDTH: Final = 1080
HEIGHT: Final = 250
LEFT: Final = 40  # room for the axis labels
RIGHT: Final = 24  # room for the last day's label, centred under its bar
BOTTOM: Final = 22  # room for the day labels
TOP: Final = 8


@dataclass(frozen=True)
class Segment:
    """One outcome's part of a day's bar."""

    outcome: str
    count: int
    y: float
    height: float
    title: str
    href: str


@dataclass(frozen=True)
class DayBar:
    day: date
    x: float
    width: float
    total: int
    segments: tuple[Segment, ...]
    label: str | None  # the day written under the bar (every few days), or None

    def segment(self, outcome: str) -> Segment | None:
        """This day's segment of `outcome` (None: no decision ended so that day)."""
        return next((s for s in self.segments if s.outcome == outcome), None)


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class DayChart:
    width: int
    height: int
    left: int
    baseline: float
    bars: tuple[DayBar, ...]
    ticks: tuple[Tick, ...]
    totals: Mapping[str, int]  # per outcome over the whole window
    total: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 … at least `value` (an axis' top)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def day_label(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}"


def day_chart(
    counts: Mapping[tuple[date, str], int],
    first: date,
    days: int,
    link: Callable[[date, str], str],
) -> DayChart:
    """Stacked bars, one per day from `first` for `days` days, of `counts` per
    (day, outcome); `link(day, outcome)` is where a segment leads."""
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - RIGHT) / days
    width = slot * 0.72
    per_day = [first + timedelta(days=n) for n in range(days)]
    top = nice_ceiling(max((_total(counts, d) for d in per_day), default=0))
    scale = plot_height / top
    baseline = HEIGHT - BOTTOM
    bars: list[DayBar] = []
    totals = dict.fromkeys(DAY_OUTCOMES, 0)
    for n, day in enumerate(per_day):
        y = float(baseline)
        segments: list[Segment] = []
        for outcome in DAY_OUTCOMES:
            count = counts.get((day, outcome), 0)
            if not count:
                continue
            totals[outcome] += count
            height = count * scale
            y -= height
            words = OUTCOME_WORDS[outcome]
            segments.append(
                Segment(
                    outcome,
                    count,
                    round(y, 2),
                    round(height, 2),
                    f"{day.isoformat()}: {count} {words}",
                    link(day, outcome),
                )
            )
        labelled = (days - 1 - n) % 7 == 0  # the last day, and every week before it
        bars.append(
            DayBar(
                day,
                round(LEFT + n * slot + (slot - width) / 2, 2),
                round(width, 2),
                _total(counts, day),
                tuple(segments),
                day_label(day) if labelled else None,
            )
        )
    ticks = tuple(Tick(v, round(baseline - v * scale, 2)) for v in _tick_values(top))
    return DayChart(
        WIDTH, HEIGHT, LEFT, float(baseline), tuple(bars), ticks, totals, sum(totals.values())
    )


def _total(counts: Mapping[tuple[date, str], int], day: date) -> int:
    return sum(counts.get((day, outcome), 0) for outcome in DAY_OUTCOMES)


def _tick_values(top: int) -> Sequence[int]:
    if top <= 1:
        return (0, 1)
    return (0, top // 2, top) if top % 2 == 0 else (0, top)
