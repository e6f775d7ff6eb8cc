"""The load limits a partner file and a `[[callers]]` entry may set: `max_in_flight`,
`rate` ("50/s", "600/min", "3600/h") and `rate_burst`, read alike in both places.

None is set by default. `gateway.disclosure.limits` enforces them; here they are only
values, read with `file:line` errors by whichever reader holds the table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

LIMIT_KEYS: Final = {
    "max_in_flight": "disclosures at once through this instance (a whole number >= 1)",
    "rate": 'disclosures per unit of time through this instance, e.g. "50/s", "600/min", "3600/h"',
    "rate_burst": "disclosures allowed at once above `rate` after a quiet spell (default: one "
    "second's worth, at least 1)",
}
_RATE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|min|h)\s*$")
_UNIT_S: Final = {"s": 1.0, "min": 60.0, "h": 3600.0}
MAX_RATE_PER_S: Final = 1_000_000.0  # beyond this a limit limits nothing


@dataclass(frozen=True)
class Rate:
    """A token bucket's figures: `per_second` tokens added, at most `burst` kept."""

    per_second: float
    burst: int
    text: str  # as the file wrote it, for messages and `gateway partners diff`

    def __str__(self) -> str:
        return f"{self.text} (burst {self.burst})"


def parse_rate(text: str, burst: int | None = None) -> Rate:
    """`"50/s"` → Rate(50.0, 50); ValueError saying what a valid one looks like."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f'rate {text!r} must look like "50/s", "600/min" or "3600/h"')
    per_second = float(match.group(1)) / _UNIT_S[match.group(2)]
    if not 0 < per_second <= MAX_RATE_PER_S:
        raise ValueError(f"rate {text!r} must be above 0 and at most {MAX_RATE_PER_S:.0f}/s")
    default_burst = max(1, math.ceil(per_second))
    return Rate(per_second, default_burst if burst is None else burst, text.strip())


@dataclass(frozen=True)
class Limits:
    """What one partner or caller may have: None for no limit (the default)."""

    max_in_flight: int | None = None
    rate: Rate | None = None


NO_LIMITS: Final = Limits()


def read_limits(table: Mapping[str, Any], fail: Callable[..., None], *at: str | int) -> Limits:
    """The limits in `table` (a partner file's top level, a `[[callers]]` entry); each
    problem goes to `fail(message, *key)` and leaves that limit unset."""
    max_in_flight = table.get("max_in_flight")
    if max_in_flight is not None and (
        isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
    ):
        fail(
            f"'max_in_flight' must be a whole number >= 1 (disclosures at once), "
            f"got {max_in_flight!r}; remove it for no limit",
            *at,
            "max_in_flight",
        )
        max_in_flight = None
    burst = table.get("rate_burst")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        fail(f"'rate_burst' must be a whole number >= 1, got {burst!r}", *at, "rate_burst")
        burst = None
    text = table.get("rate")
    rate = None
    if text is None:
        if "rate_burst" in table:
            fail("'rate_burst' is only read with 'rate': set both, or remove it", *at, "rate_burst")
    elif not isinstance(text, str):
        fail(f"'rate' must be a string such as \"50/s\", got {text!r}", *at, "rate")
    else:
        try:
            rate = parse_rate(text, burst)
        except ValueError as exc:
            fail(str(exc), *at, "rate")
    return Limits(max_in_flight, rate)
