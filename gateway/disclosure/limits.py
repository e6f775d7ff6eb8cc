"""Load shedding: a disclosure over a limit is refused at once instead of queued.

Three limits, none of which lets latency grow without bound under overload:

- the log's commit queue (`[log] max_pending_appends`): beyond it a new disclosure is
  answered 503 `log_overloaded` before anything is logged. It is looked at only before a
  disclosure's intent, never after: a disclosure whose intent is logged goes on.
- a caller's `max_in_flight` and `rate` (`[[callers]]` in config.toml): 429
  `caller_rate_limited`, before the body is read, so a compromised service cannot drain
  its allowlist at full speed.
- a partner's `max_in_flight` and `rate` (its partner file): 429 `partner_rate_limited`,
  before the decision, so a slow partner is not buried under retries and queued sends; a
  first look (`check_partner`) comes before the request's Idempotency-Key is, so a retry
  shed there costs no store write.

A shed request is not logged: it discloses nothing and decides nothing about anyone (no
subject's facts are read), and a `refused` entry per shed request would add to the very
commit queue the first limit protects, at the rate of whoever floods the gateway. It is
counted instead (`gateway_shed_requests`, by reason, partner and caller), and written to no
application log either: clients that ignore Retry-After send refusals' worth of requests as
fast as they are answered, so a refusal must cost as little as it can.

The limits are per instance: with N instances (or `gateway serve` workers) each keeps its
own buckets and counts, so the whole gateway allows up to N times a limit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from gateway.config.limits import Rate
from gateway.config.model import Caller
from gateway.errors import CallerRateLimitedError, LogOverloadedError, PartnerRateLimitedError
from gateway.observe.metrics import Metrics
from gateway.partners.model import Partner
from gateway.problem_catalog import SHED_RETRY_AFTER_S

__all__ = ["SHED_CODES", "Admission", "InFlightGate", "TokenBucket"]

SHED_CODES: Final = frozenset({"log_overloaded", "caller_rate_limited", "partner_rate_limited"})
"""The refusals of this module: nothing was logged or sent, so the Idempotency-Key is left
free and no `refused` entry is written (gateway.disclosure.idempotency, .refusals), nor a
request line (gateway.web.app)."""

OTHER_CALLER: Final = "other"
"""The caller label of a sender that is not a `[[callers]]` entry (a rights officer's
notice): metrics name configured services only, never a person."""


class TokenBucket:
    """`rate.per_second` tokens a second, at most `rate.burst` kept; one per request."""

    def __init__(self, rate: Rate, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = float(rate.burst)
        self._at = clock()

    def take(self) -> float:
        """Take a token: 0.0 if there was one, else the seconds until one is due (and none
        is taken, so a refused request does not push the next one further out)."""
        wait = self.due()
        if wait == 0.0:
            self._tokens -= 1.0
        return wait

    def due(self) -> float:
        """The seconds until a token is there, 0.0 if one is (none is taken)."""
        now = self._clock()
        refill = max(0.0, now - self._at) * self.rate.per_second
        self._tokens = min(float(self.rate.burst), self._tokens + refill)
        self._at = now
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate.per_second


class InFlightGate:
    """One partner's or caller's limits in this instance: how many of its disclosures are
    under way, at most `max_in_flight`, started no faster than `rate`."""

    def __init__(
        self, max_in_flight: int | None, rate: Rate | None, clock: Callable[[], float]
    ) -> None:
        self.in_flight = 0
        self._clock = clock
        self.max_in_flight: int | None = None
        self._bucket: TokenBucket | None = None
        self.configure(max_in_flight, rate)

    def configure(self, max_in_flight: int | None, rate: Rate | None) -> None:
        """The limits in force (a reload may change them); the count under way is kept."""
        self.max_in_flight = max_in_flight
        current = None if self._bucket is None else self._bucket.rate
        if rate != current:
            self._bucket = None if rate is None else TokenBucket(rate, self._clock)

    def enter(self) -> tuple[str, float] | None:
        """Take a slot: None when taken, else why not ("in_flight" | "rate") and the
        seconds after which a retry can pass."""
        refused = self.full()
        if refused is None:
            if self._bucket is not None:
                self._bucket.take()  # there is one: `full` looked
            self.in_flight += 1
        return refused

    def full(self) -> tuple[str, float] | None:
        """What `enter` would refuse now, without taking a slot or a token."""
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            return "in_flight", SHED_RETRY_AFTER_S
        if self._bucket is not None and (wait := self._bucket.due()) > 0:
            return "rate", wait
        return None

    def leave(self) -> None:
        self.in_flight -= 1


class Admission:
    """The three limits of this instance, looked at before a disclosure is logged.

    `pending_appends` reads the log writer's queue (`LogWriter.waiting`); `callers` are the
    configured ones, the only callers metrics name: the composition root passes the live
    table a reload swaps, so a caller added by SIGHUP is named, not `other`. `clock` is
    monotonic seconds.
    """

    def __init__(
        self,
        *,
        max_pending_appends: int | None = None,
        pending_appends: Callable[[], int] = lambda: 0,
        callers: Mapping[str, Caller] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pending_appends = max_pending_appends
        self._pending_appends = pending_appends
        self._callers = callers if callers is not None else {}
        self._metrics = metrics
        self._clock = clock
        self._partner_gates: dict[str, InFlightGate] = {}
        self._caller_gates: dict[str, InFlightGate] = {}

    @contextmanager
    def caller_admitted(self, caller: Caller) -> Iterator[None]:
        """The log's queue and `caller`'s limits, before its request is read: raises
        LogOverloadedError or CallerRateLimitedError, else holds a slot until the end."""
        self.check_log(caller, None)
        if caller.max_in_flight is None and caller.rate is None:
            yield
            return
        gate = self._gate(self._caller_gates, caller.id, caller.max_in_flight, caller.rate)
        with _slot_held(gate, functools.partial(self._caller_shed, caller)):
            yield

    @contextmanager
    def partner_admitted(self, caller: Caller, partner: Partner | None) -> Iterator[None]:
        """The log's queue and `partner`'s limits, before the decision: raises
        LogOverloadedError or PartnerRateLimitedError, else holds a slot until the
        disclosure ends. An unknown partner (None) is left to the decision to refuse."""
        self.check_log(caller, partner)
        if partner is None:
            yield
            return
        gate = self._gate(self._partner_gates, partner.id, partner.max_in_flight, partner.rate)
        with _slot_held(gate, functools.partial(self._partner_shed, caller, partner)):
            yield

    def check_log(self, caller: Caller, partner: Partner | None) -> None:
        """LogOverloadedError when more entries wait for their commit than the bound."""
        bound = self.max_pending_appends
        if bound is None:
            return
        if self._pending_appends() >= bound:
            self._count("log_queue", caller, partner)
            # The same words for every request shed at this bound: rendered once (web layer).
            raise LogOverloadedError(
                f"the log's commit queue holds its limit of entries waiting for their commit "
                f"on this instance ([log] max_pending_appends = {bound}): the store is not "
                "keeping up, so this disclosure was neither logged nor sent; retry after "
                "Retry-After with the same Idempotency-Key"
            )

    def check_partner(self, caller: Caller, partner: Partner | None) -> None:
        """PartnerRateLimitedError when `partner` has no slot free now, without taking one:
        the look before a request's Idempotency-Key and decision, so a shed request costs
        neither. `partner_admitted` still decides, since a slot may be gone by then."""
        if partner is None or (partner.max_in_flight is None and partner.rate is None):
            return
        gate = self._gate(self._partner_gates, partner.id, partner.max_in_flight, partner.rate)
        refused = gate.full()
        if refused is not None:
            raise self._partner_shed(caller, partner, *refused)

    def in_flight(self) -> dict[tuple[str, str], int]:
        """Disclosures under way now, by ("partner" | "caller", id): every partner that had
        one, the callers with a limit."""
        counts = {("partner", pid): g.in_flight for pid, g in self._partner_gates.items()}
        counts |= {("caller", cid): g.in_flight for cid, g in self._caller_gates.items()}
        return counts

    def _gate(
        self,
        gates: dict[str, InFlightGate],
        key: str,
        max_in_flight: int | None,
        rate: Rate | None,
    ) -> InFlightGate:
        gate = gates.get(key)
        if gate is None:
            gate = gates[key] = InFlightGate(max_in_flight, rate, self._clock)
        else:
            gate.configure(max_in_flight, rate)  # a reload may have changed them
        return gate

    def _count(self, reason: str, caller: Caller, partner: Partner | None) -> None:
        if self._metrics is not None:
            name = caller.id if caller.id in self._callers else OTHER_CALLER
            self._metrics.shed(reason, partner.id if partner is not None else "", name)

    def _caller_shed(self, caller: Caller, reason: str, wait: float) -> CallerRateLimitedError:
        self._count(f"caller_{reason}", caller, None)
        return CallerRateLimitedError(_caller_detail(caller, reason), retry_after_s=wait)

    def _partner_shed(
        self, caller: Caller, partner: Partner, reason: str, wait: float
    ) -> PartnerRateLimitedError:
        self._count(f"partner_{reason}", caller, partner)
        return PartnerRateLimitedError(_partner_detail(partner, reason), retry_after_s=wait)


@contextmanager
def _slot_held(gate: InFlightGate, shed: Callable[[str, float], Exception]) -> Iterator[None]:
    """A slot of `gate` until the end; when none is free, what `shed(reason, wait)` makes
    is raised (the caller's or the partner's refusal, counted)."""
    refused = gate.enter()
    if refused is not None:
        raise shed(*refused)
    try:
        yield
    finally:
        gate.leave()


# A shed request's detail names the limit, never the moment's count: every request shed by
# one limit gets the same words, so the web layer renders them once (gateway.web.problems).


def _caller_detail(caller: Caller, reason: str) -> str:
    if reason == "in_flight":
        limit = f"its max_in_flight of {caller.max_in_flight} disclosures are under way"
    else:
        limit = f"it is over its rate {caller.rate}"
    return (
        f"caller {caller.id!r}: {limit} on this gateway instance, so this request was shed "
        "before anything was read or logged, and nothing was sent; retry after Retry-After "
        "with the same Idempotency-Key, or ask the operators to raise the caller's limits "
        "in config.toml"
    )


def _partner_detail(partner: Partner, reason: str) -> str:
    if reason == "in_flight":
        limit = f"its max_in_flight of {partner.max_in_flight} disclosures are under way"
    else:
        limit = f"it is over its rate {partner.rate}"
    return (
        f"partner {partner.id!r}: {limit} from this gateway instance, as partners/"
        f"{partner.id}.toml allows, so this disclosure was shed before it was decided or "
        "logged, and nothing was sent; retry after Retry-After with the same Idempotency-Key"
    )
