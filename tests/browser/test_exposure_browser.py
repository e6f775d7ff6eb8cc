"""The exposure page in headless Chromium (issue #19 item 2): a reviewer picks a partner and
a window and sees the counts of what it received, the special categories flagged, the
maybe-received disclosures apart; the read is an action entry. Saves
docs/screenshots/exposure.png (1280 px wide)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from browser.review_support import NOW, Gateway, docs_screenshot
from browser.test_review_browser import sign_in
from selenium.webdriver.common.by import By

from gateway.canonical import timestamp
from gateway.crypto.subject_keys import LogKeys
from gateway.log.columns import checked_search
from gateway.log.entries import outcome_entry, row_of
from gateway.store.records import LogQuery

PARTNER = "mekong-collections"

# (customer, days before NOW, fields, outcome, maybe_received)
TRAFFIC = [
    ("cust-101", 2, ("name", "phone", "email"), "sent", None),
    ("cust-102", 3, ("name", "phone"), "sent", None),
    ("cust-103", 4, ("name", "phone", "health_status"), "sent", None),
    ("cust-104", 5, ("name", "phone"), "failed", True),
    ("cust-105", 6, ("name",), "failed", False),
    ("cust-106", 45, ("name",), "sent", None),  # before the window
]


def record(site: Gateway, keys: LogKeys) -> None:
    rows = []
    for n, (customer, days, fields, outcome, maybe) in enumerate(TRAFFIC):
        at = NOW - timedelta(days=days)
        disclosure_id = f"d-exposure-page-{n}"
        rows.append(
            row_of(
                {
                    "v": 1,
                    "kind": "intent",
                    "time": timestamp(at),
                    "disclosure_id": disclosure_id,
                    "caller": "crm-service",
                    "partner": PARTNER,
                    "operation": "collect",
                    "purpose": "service_provision",
                    "legal_basis": "contract",
                    "subject_ref": keys.subject_ref(customer, at),
                    "fields": dict.fromkeys(fields, "plain"),
                }
            )
        )
        rows.append(
            row_of(
                outcome_entry(
                    disclosure_id=disclosure_id,
                    outcome=outcome,
                    at=at,
                    partner=PARTNER,
                    maybe_received=maybe,
                )
            )
        )
    site.served.call(site.served.store.append_log_entries(rows))


def text(browser: Any, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def test_exposure_page(browser: Any, gateway_site: Gateway, config: Any) -> None:
    record(gateway_site, LogKeys.load(config.keys_dir))
    since = (NOW - timedelta(days=30)).date().isoformat()
    until = NOW.date().isoformat()
    path = f"/review/exposure?partner={PARTNER}&since={since}&until={until}"
    sign_in(browser, gateway_site, "alice", path=path)
    assert "/review/exposure" in browser.current_url
    # cust-101..104 (104 only maybe received); 105 never reached it, 106 is before the window.
    assert text(browser, "#disclosures") == "4"
    assert text(browser, "#maybe") == "1"
    assert text(browser, "#subjects") == "4"
    assert "YES" in text(browser, "#special")
    assert "SPECIAL" in text(browser, "#field-health_status")
    assert "SPECIAL" not in text(browser, "#field-name")
    # Categories in words, the code on hover.
    assert "Identity" in text(browser, "#field-name")
    assert text(browser, "#category-special").startswith("Special category")
    name = browser.find_elements(By.CSS_SELECTOR, "#field-name td.num")
    assert [c.text for c in name] == ["4", "1", "4"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "ul.refs li")) == 4
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    found = gateway_site.served.call(
        checked_search(gateway_site.served.store, LogQuery(kind="action", limit=100))
    )
    reads = [e.data for e in found if e.data.get("action") == "read_exposure"]
    assert len(reads) == 1 and reads[0]["actor"] == "alice"
    assert reads[0]["counts"] == {"disclosures": 4, "subjects": 4}

    assert "both days included" in text(browser, "#totals")
    browser.set_window_size(1280, 1250)
    try:
        browser.save_screenshot(str(docs_screenshot("exposure.png")))
    finally:
        browser.set_window_size(1366, 900)
