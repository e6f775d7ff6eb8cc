"""gateway.observe.metrics: Prometheus names (counters end in `_total`) and the build info."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

import gateway
from gateway.observe.metrics import Metrics


@dataclass
class WriterCounts:
    """A fake of what Metrics reads of the log writer (its LogCounts port)."""

    batches: int
    appended: int
    waiting: int = 0


def scrape() -> str:
    metrics = Metrics()
    metrics.delivered("adreach", "marketing", "consent", "sent", 0.2, attempts=2)
    metrics.refused("consent_required")
    metrics.watch(
        writer=WriterCounts(batches=3, appended=7, waiting=4),
        partners=["adreach"],
        breaker_state=lambda _: "closed",
        clock=lambda: datetime.now(UTC),
    )
    metrics.watch_agreements(lambda: {"adreach": 12})
    metrics.shed("partner_in_flight", "adreach", "sales-service")
    metrics.watch_in_flight(lambda: {("partner", "adreach"): 2, ("caller", "sales-service"): 1})
    return metrics.render().decode()


def test_every_counter_sample_ends_in_total():
    families = list(text_string_to_metric_families(scrape()))
    counters = {f.name: f for f in families if f.type == "counter"}
    assert {
        "gateway_disclosures",
        "gateway_refusals",
        "gateway_partner_retries",
        "gateway_log_commits",
        "gateway_log_entries_appended",
    } <= set(counters)
    for family in counters.values():
        for sample in family.samples:
            assert sample.name.endswith(("_total", "_created")), sample.name
    # Nothing that only grows is exposed as a gauge.
    gauges = [f.name for f in families if f.type == "gauge"]
    assert "gateway_log_commits" not in gauges and "gateway_log_entries_appended" not in gauges


def test_counts_read_at_scrape_time():
    text = scrape()
    assert "gateway_log_commits_total 3.0" in text
    assert "gateway_log_entries_appended_total 7.0" in text
    assert 'gateway_partner_retries_total{partner="adreach"} 1.0' in text


def test_load_shedding_is_counted_and_in_flight_read_at_scrape_time():
    text = scrape()
    assert "gateway_log_pending_appends 4.0" in text
    assert 'gateway_partner_in_flight{partner="adreach"} 2.0' in text
    assert 'gateway_caller_in_flight{caller="sales-service"} 1.0' in text
    shed = 'caller="sales-service",partner="adreach",reason="partner_in_flight"'
    assert f"gateway_shed_requests_total{{{shed}}} 1.0" in text


def test_build_info_names_the_version():
    text = scrape()
    assert f'gateway_build_info{{version="{gateway.__version__}"}} 1.0' in text
    assert "# TYPE gateway_build_info gauge" in text


def test_the_notice_outbox_gauge_counts_pending_and_failed():
    from gateway.web.app import report_notice_counts

    metrics = Metrics()
    report_notice_counts(metrics, {"pending": 2, "failed": 1, "sent": 40})
    samples = {
        s.labels["status"]: s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "gateway_notices"
        for s in family.samples
    }
    assert samples == {"pending": 2.0, "failed": 1.0}  # sent notices wait for nobody
