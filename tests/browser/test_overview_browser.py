"""The overview page in headless Chromium (issue #19 items 4 and 6): what a person sees —
the chart's bars match the log's counts, each has its title, the labels are words, and the
page does not overflow sideways at 1280 px or at 390 px. Saves docs/screenshots/overview.png
(1280 px wide), the picture the README's legal-team guide shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser.review_support import (
    NOW,
    PASSWORDS,
    SUBJECT_A,
    SUBJECT_B,
    Gateway,
    _entries,
    docs_screenshot,
    review_config,
    served_review_site,
)
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gateway.config.model import Config
from gateway.log.entries import row_of
from gateway.partners.model import Partner
from gateway.web.keys import LOG
from gateway.web.review.overview import window_start


@pytest.fixture
def gateway_site(config: Config, partners: dict[str, Partner], tmp_path: Path) -> Iterator[Gateway]:
    """This module's site (the `browser` fixture's): the seeded one, less the refusal to a
    partner id that is a spreadsheet formula (the CSV tests' case), as the README shows
    this page as a legal team would see it."""
    cfg = review_config(config, str(tmp_path / "gateway.db"))
    with served_review_site(cfg, partners, leave_out=("injected",)) as site:
        yield site


def sign_in(browser: Any, site: Gateway, reviewer: str = "alice") -> None:
    browser.get(site.url("/review/"))
    assert "/review/login" in browser.current_url
    browser.find_element(By.NAME, "reviewer_id").send_keys(reviewer)
    browser.find_element(By.NAME, "password").send_keys(PASSWORDS[reviewer])
    browser.find_element(By.CSS_SELECTOR, "section.login button[type=submit]").click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda d: (
            d.current_url == site.url("/review/")
            and d.execute_script("return document.readyState") == "complete"
        )
    )


# Four weeks of ordinary traffic besides the seeded cases, so the chart looks like a month.
TRAFFIC = (
    ("lao-credit-bureau", "credit_check", "service_provision", "consent", "sent"),
    ("bcel-payments", "charge", "service_provision", "contract", "sent"),
    ("lanexang-insurance", "quote", "service_provision", "contract", "sent"),
    ("adreach", "audience_upload", "marketing", "consent", "refused"),
    ("lanexang-insurance", "quote", "service_provision", "contract", "failed"),
)


def add_traffic(site: Gateway, partners: dict[str, Partner]) -> int:
    """Append a month of decisions (a few a day, more on weekdays); how many were appended."""
    rows = []
    decisions = 0
    for day in range(1, 29):
        weekday = (NOW - timedelta(days=day)).weekday() < 5
        for n in range((day * 7) % 5 + (3 if weekday else 1)):
            partner, operation, purpose, basis, outcome = TRAFFIC[(day + n) % len(TRAFFIC)]
            if outcome == "failed" and day % 6:
                outcome = "sent"
            spec = (
                f"traffic-{day}-{n}",
                partner,
                operation,
                purpose,
                basis,
                SUBJECT_A if n % 2 else SUBJECT_B,
                timedelta(days=day, hours=n),
                outcome,
            )
            rows.extend(row_of(e) for e in _entries(spec[0], partners, site.fake.keys, spec))
            decisions += 1
    site.served.call(site.served.store.append_log_entries(rows))
    return decisions


def viewport(browser: Any, width: int, height: int = 900) -> None:
    """Make the page's viewport `width` × `height` CSS pixels."""
    browser.set_window_size(width, height)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:  # the window's frame takes some: grow the window by that
        browser.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    assert browser.execute_script("return window.innerWidth") == width


def overflows(browser: Any) -> bool:
    return bool(
        browser.execute_script("return document.scrollingElement.scrollWidth > window.innerWidth")
    )


def test_overview_bars_match_the_log_and_fit_the_screen(
    browser, gateway_site, partners, screenshot
):
    added = add_traffic(gateway_site, partners)
    # Signed over the month's traffic, as the gateway does a second after appends (the
    # seed appends to the store directly).
    signed = gateway_site.served.call(gateway_site.served.app[LOG].checkpoint())
    sign_in(browser, gateway_site)
    viewport(browser, 1280)
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    drawn: Counter[str] = Counter()
    for bar in bars:
        count = int(bar.get_attribute("data-count"))
        outcome = bar.get_attribute("data-outcome")
        drawn[outcome] += count
        title = bar.find_element(By.TAG_NAME, "title").get_attribute("textContent")
        day = bar.find_element(By.XPATH, "../..").get_attribute("data-day")
        assert title.startswith(f"{day}: {count} ") and outcome.split()[0] in title, title
        assert float(bar.get_attribute("height")) > 0
    since = datetime.combine(window_start(NOW), time(), UTC)
    stored = gateway_site.served.call(gateway_site.served.store.decisions_by_day(since))
    from_store: Counter[str] = Counter()
    for row in stored:
        from_store[row.outcome] += row.count
    assert drawn == from_store
    assert sum(drawn.values()) == 6 + added and len(bars) == len(stored)
    # The legend's totals are the bars' sums.
    for outcome, total in drawn.items():
        shown = browser.find_element(By.CSS_SELECTOR, f'p.legend span[data-outcome="{outcome}"]')
        assert int(shown.text) == total

    # Labels are words: problem titles (their code on hover), no snake_case.
    reasons = browser.find_elements(By.CSS_SELECTOR, "#refusals ~ table.bars th span")
    assert reasons
    for reason in reasons:
        assert "_" not in reason.text and " " in reason.text, reason.text
        assert reason.get_attribute("title") == "consent_required"
    assert (
        f"{signed.size} entries, 0 min ago"
        in browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=witness]").text
    )

    assert not overflows(browser)
    for _ in range(3):  # the whole page, without a scrollbar (its height may change once)
        height = int(browser.execute_script("return document.scrollingElement.scrollHeight"))
        if height <= browser.execute_script("return window.innerHeight"):
            break
        viewport(browser, 1280, min(height, 2400))
    browser.save_screenshot(str(docs_screenshot("overview.png")))

    viewport(browser, 390, 844)  # a phone
    assert not overflows(browser)
    screenshot("phone")


def test_a_bar_leads_to_its_disclosures(browser, gateway_site):
    sign_in(browser, gateway_site)
    viewport(browser, 1280)
    bar = browser.find_element(By.CSS_SELECTOR, 'svg.chart rect.bar[data-outcome="refused"]')
    count = int(bar.get_attribute("data-count"))
    link = bar.find_element(By.XPATH, "..")
    href = browser.execute_script("return arguments[0].getAttribute('href')", link)
    browser.get(gateway_site.url(href))
    assert "/review/disclosures?" in browser.current_url
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.list td.id a")) == count
