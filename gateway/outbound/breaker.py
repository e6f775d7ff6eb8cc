"""A circuit breaker per partner, so a partner that is down is not hammered.

After `threshold` consecutive failed deliveries the circuit opens: deliveries
are refused at once (`circuit_open`) without touching the network. After
`cooldown_s` it half-opens and lets exactly one trial delivery through; the
trial's success closes the circuit, its failure opens it for another
cool-down. Any answer from the partner — even a 4xx — is a success here: the
breaker measures whether the partner is reachable, not whether it agrees.

A small class of our own rather than a library: the maintained Python
breakers (pybreaker, aiobreaker, circuitbreaker) are either sync-only,
decorator-shaped (no way to ask "may I?" before building the request), or
read the wall clock directly, which makes the cool-down untestable without
sleeping. This is forty lines with an injectable monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """The state of one partner's circuit. Not thread-safe; one event loop owns it."""

    DEFAULT_THRESHOLD: Final = 5
    DEFAULT_COOLDOWN_S: Final = 30.0

    def __init__(
        self,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        if cooldown_s <= 0:
            raise ValueError(f"cooldown_s must be > 0, got {cooldown_s}")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def retry_in(self) -> float:
        """Seconds until the circuit half-opens (0 when it is not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def try_acquire(self) -> bool:
        """May a delivery start now? In half-open state only the first caller gets the trial."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        # A success from any delivery proves the partner reachable, even one
        # that started before the circuit opened.
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        if self._trial_in_flight or self.state == "half_open":
            self._open()
            return
        self._failures += 1
        if self._opened_at is None and self._failures >= self.threshold:
            self._open()

    def release(self) -> None:
        """A delivery ended without a verdict (cancelled, or never reached the network)."""
        self._trial_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_in_flight = False


class Breakers:
    """One CircuitBreaker per partner id, created on first use."""

    def __init__(
        self,
        *,
        threshold: int = CircuitBreaker.DEFAULT_THRESHOLD,
        cooldown_s: float = CircuitBreaker.DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._by_partner: dict[str, CircuitBreaker] = {}

    def for_partner(self, partner_id: str) -> CircuitBreaker:
        breaker = self._by_partner.get(partner_id)
        if breaker is None:
            breaker = CircuitBreaker(
                threshold=self._threshold, cooldown_s=self._cooldown_s, clock=self._clock
            )
            self._by_partner[partner_id] = breaker
        return breaker

    def state(self, partner_id: str) -> BreakerState:
        """For metrics: a partner never delivered to is `closed`."""
        breaker = self._by_partner.get(partner_id)
        return breaker.state if breaker is not None else "closed"
