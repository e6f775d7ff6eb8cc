"""Prometheus metrics (CONTRACT §4.7). Labels are ids and closed vocabularies only —
partner ids, purposes, legal bases, outcomes, problem codes — never a personal value.

One registry per application, so several gateways in one process (tests) never
share counters. Counters are exposed with the `_total` suffix (prometheus_client adds it
to a Counter's name, and to a CounterMetricFamily's), counts that only grow are counters
even when read at scrape time, and `gateway_build_info{version="…"} 1` says which
release answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
APPEND_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BREAKER_STATES = ("closed", "half_open", "open")


class LogCounts(Protocol):
    """What the metrics read of the log writer (log/ sits above observe/, so the writer
    is described here rather than imported): the group commits made and the entries
    appended since the process started, and the entries waiting for their commit now."""

    @property
    def batches(self) -> int: ...

    @property
    def appended(self) -> int: ...

    @property
    def waiting(self) -> int: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._delivered: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        # The children a flood of refusals increments, looked up once each (see `delivered`).
        self._refused: dict[str, Any] = {}
        self._shed: dict[tuple[str, str, str], Any] = {}
        self.checkpoint_at: datetime | None = None  # kept fresh by the app's watcher
        # When the latest checkpoint that met the witness quorum was signed (the runner's).
        self.witnessed_at: datetime | None = None
        self.witness_rollback_alarms = Counter(
            "gateway_witness_rollback_alarms",
            "Rollback alarms raised by a witness's answer (each submission counts again).",
            ["witness"],
            registry=self.registry,
        )
        # Set by the notice outbox after each round (gateway.rights.outbox): pending notices
        # wait for their next attempt, failed ones for a person (`gateway notices retry`).
        self.notices = Gauge(
            "gateway_notices",
            "Partner notices in the outbox, by status (pending, failed).",
            ["status"],
            registry=self.registry,
        )
        self.witness_cosigned_size = Gauge(
            "gateway_witness_cosigned_size",
            "The log size each witness of the policy last cosigned.",
            ["witness"],
            registry=self.registry,
        )
        self.disclosures = Counter(
            "gateway_disclosures",
            "Disclosures that reached delivery, by outcome.",
            ["partner", "purpose", "legal_basis", "outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "gateway_refusals",
            "Refused requests by problem code.",
            ["problem"],
            registry=self.registry,
        )
        self.partner_seconds = Histogram(
            "gateway_partner_request_seconds",
            "Time to a partner's answer, retries included.",
            ["partner"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "gateway_partner_retries",
            "Extra attempts after a partner's first one.",
            ["partner"],
            registry=self.registry,
        )
        self.acknowledgements = Counter(
            "gateway_partner_acknowledgements",
            "Partner acknowledgements checked after delivery: result valid, missing or "
            "invalid, and the reason code of one that is not valid.",
            ["partner", "result", "reason"],
            registry=self.registry,
        )
        self.log_append_seconds = Histogram(
            "gateway_log_append_seconds",
            "Time for an intent entry to become durable.",
            buckets=APPEND_BUCKETS,
            registry=self.registry,
        )
        self.shed_requests = Counter(
            "gateway_shed_requests",
            "Requests refused at once by a load limit (gateway.disclosure.limits), by reason "
            "(log_queue, caller_in_flight, caller_rate, partner_in_flight, partner_rate), "
            "partner (empty when none was looked at) and configured caller (other: none).",
            ["reason", "partner", "caller"],
            registry=self.registry,
        )
        self.retention_pruned = Counter(
            "gateway_retention_pruned_rows",
            "Rows deleted by the retention sweep, by table (instances, idempotency_keys).",
            ["table"],
            registry=self.registry,
        )
        # An info metric: exposed as the gauge gateway_build_info{version="…"} 1.0.
        Info("gateway_build", "The gateway release serving.", registry=self.registry).info(
            {"version": __version__}
        )

    def delivered(
        self,
        partner: str,
        purpose: str,
        legal_basis: str,
        outcome: str,
        seconds: float,
        attempts: int,
    ) -> None:
        # labels() validates and locks on every call; the children are few (closed
        # vocabularies and configured partners), so each is looked up once.
        key = (partner, purpose, legal_basis, outcome)
        children = self._delivered.get(key)
        if children is None:
            children = self._delivered[key] = (
                self.disclosures.labels(partner, purpose, legal_basis, outcome),
                self.partner_seconds.labels(partner),
            )
        disclosed, seconds_of_partner = children
        disclosed.inc()
        seconds_of_partner.observe(seconds)
        if attempts > 1:
            self.retries.labels(partner).inc(attempts - 1)

    def acknowledged(self, partner: str, result: str, reason: str) -> None:
        self.acknowledgements.labels(partner, result, reason).inc()

    def refused(self, problem: str) -> None:
        child = self._refused.get(problem)
        if child is None:  # problem codes are a closed vocabulary
            child = self._refused[problem] = self.refusals.labels(problem)
        child.inc()

    def shed(self, reason: str, partner: str, caller: str) -> None:
        key = (reason, partner, caller)
        child = self._shed.get(key)
        if child is None:  # configured partners and callers only (gateway.disclosure.limits)
            child = self._shed[key] = self.shed_requests.labels(reason, partner, caller)
        child.inc()

    def pruned(self, table: str, rows: int) -> None:
        """Rows of `table` the retention sweep deleted (a sweep that found none still
        shows the series at 0)."""
        self.retention_pruned.labels(table).inc(rows)

    def watch(
        self,
        *,
        writer: LogCounts,
        partners: Iterable[str],
        breaker_state: Callable[[str], str],
        clock: Callable[[], datetime],
    ) -> None:
        """Gauges read at scrape time from the live collaborators."""
        self.registry.register(
            # `partners` is iterated at each scrape: a reload's live table shows new partners.
            _LiveState(
                writer,
                partners,
                breaker_state,
                lambda: self.checkpoint_at,
                clock,
                lambda: self.witnessed_at,
            )
        )

    def watch_in_flight(self, in_flight: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Gauges of the disclosures under way, read at scrape time (`in_flight` maps
        ("partner" | "caller", id) → count: gateway.disclosure.limits.Admission.in_flight)."""
        self.registry.register(_InFlight(in_flight))

    def watch_agreements(self, days_left: Callable[[], Mapping[str, int]]) -> None:
        """A gauge of the days each partner's agreement still runs, read at scrape time
        (`days_left` maps partner id → days; partners without an end date are left out)."""
        self.registry.register(_Agreements(days_left))

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(eq=False)  # hashed by identity: the registry keys its collectors by themselves
class _LiveState(Collector):
    """The gauges and counters read from live collaborators at each scrape."""

    writer: LogCounts
    partners: Iterable[str]
    breaker_state: Callable[[str], str]
    last_checkpoint: Callable[[], datetime | None]
    clock: Callable[[], datetime]
    last_witnessed: Callable[[], datetime | None] = lambda: None

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        breaker = GaugeMetricFamily(
            "gateway_breaker_state",
            "Circuit breaker per partner: 1 for its current state.",
            labels=["partner", "state"],
        )
        for partner in list(self.partners):
            current = self.breaker_state(partner)
            for state in BREAKER_STATES:
                breaker.add_metric([partner, state], 1.0 if state == current else 0.0)
        yield breaker
        commits = CounterMetricFamily("gateway_log_commits", "Log group commits made.")
        commits.add_metric([], float(self.writer.batches))
        yield commits
        appended = CounterMetricFamily(
            "gateway_log_entries_appended",
            "Log entries appended; divided by commits, the batch size.",
        )
        appended.add_metric([], float(self.writer.appended))
        yield appended
        waiting = GaugeMetricFamily(
            "gateway_log_pending_appends",
            "Log entries waiting for their commit now ([log] max_pending_appends bounds it).",
        )
        waiting.add_metric([], float(self.writer.waiting))
        yield waiting
        last = self.last_checkpoint()
        age = GaugeMetricFamily(
            "gateway_checkpoint_age_seconds",
            "Seconds since this instance last saw a signed checkpoint (-1: none yet).",
        )
        age.add_metric([], -1.0 if last is None else (self.clock() - last).total_seconds())
        yield age
        witnessed = self.last_witnessed()
        witnessed_age = GaugeMetricFamily(
            "gateway_checkpoint_witnessed_age_seconds",
            "Seconds since the latest checkpoint this instance got witnessed (the witness "
            "policy's quorum met) was signed (-1: none yet, or no witness policy).",
        )
        witnessed_age.add_metric(
            [], -1.0 if witnessed is None else (self.clock() - witnessed).total_seconds()
        )
        yield witnessed_age


class _Agreements(Collector):
    def __init__(self, days_left: Callable[[], Mapping[str, int]]) -> None:
        self._days_left = days_left

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "gateway_partner_agreement_days_left",
            "Days the partner's data-processing agreement still covers (0: today is its "
            "last day; negative: expired, every disclosure to it is refused).",
            labels=["partner"],
        )
        for partner, days in sorted(self._days_left().items()):
            gauge.add_metric([partner], float(days))
        yield gauge


class _InFlight(Collector):
    def __init__(self, in_flight: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._in_flight = in_flight

    def collect(self) -> Iterable[GaugeMetricFamily]:
        partners = GaugeMetricFamily(
            "gateway_partner_in_flight",
            "Disclosures to each partner under way in this instance (max_in_flight bounds it).",
            labels=["partner"],
        )
        callers = GaugeMetricFamily(
            "gateway_caller_in_flight",
            "Disclosures of each caller with a limit under way in this instance.",
            labels=["caller"],
        )
        for (scope, name), count in sorted(self._in_flight().items()):
            (partners if scope == "partner" else callers).add_metric([name], float(count))
        yield partners
        yield callers
