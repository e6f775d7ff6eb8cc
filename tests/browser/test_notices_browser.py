"""The review site's notice outbox page (/review/notices, issue #19 item 3) in headless
Chromium at 1280 px: what waits for a partner, given-up notices first, no personal value,
no horizontal overflow, and a Retry button that sends one now and says what became of it.
Its screenshot is docs/screenshots/review-notices.png."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from browser.review_support import NOW, HexSealing, docs_screenshot
from selenium.webdriver.common.by import By
from test_review_browser import click_and_wait, sign_in

from gateway.rights.outbox import Attempted, NoticeOutbox
from gateway.web.keys import NOTICES

SUBJECT = "6f1c2a7e-0000-4000-8000-0000000ac7bb"


async def keep(
    store: Any,
    partner: str,
    kind: str,
    reference: str,
    age: timedelta,
    error: str,
    sealing: Any = None,
):
    outbox = NoticeOutbox(
        store,
        sealing or HexSealing(),
        lambda: NOW - age,
        max_age=timedelta(seconds=0) if age > timedelta(days=7) else timedelta(days=7),
    )
    return await outbox.keep(
        kind=kind,
        partner=partner,
        operation="erasure",
        reference=reference,
        payload={"subject": SUBJECT, "data": {"uuid": SUBJECT}},
        first=Attempted(False, "d-1", error),
    )


def test_the_notices_page_at_1280(browser, gateway_site, screenshot):
    store = gateway_site.served.store
    outbox = gateway_site.served.app[NOTICES]
    sent: list[str] = []

    async def send(notice: Any, payload: Any) -> Attempted:
        """The partners as the page meets them: lanexang-insurance is back, the rest not."""
        sent.append(notice.partner)
        if notice.partner == "lanexang-insurance":
            return Attempted(True, "d-2")
        return Attempted(False, "d-2", "partner_unavailable")

    outbox.send = send
    kept = [
        gateway_site.served.call(keep(store, *row, sealing=outbox.sealer))
        for row in (
            (
                "lanexang-insurance",
                "consent_withdrawn",
                "CW-c-8d1f",
                timedelta(hours=3),
                "partner_unavailable",
            ),
            ("adreach", "erasure", "RR-5be0c2a1d9f4", timedelta(days=8), "partner_status_422"),
            (
                "lao-credit-bureau",
                "rectification",
                "RR-0aa31c7e2b11",
                timedelta(minutes=4),
                "partner_unavailable",
            ),
        )
    ]
    browser.set_window_size(1280, 900)
    try:
        sign_in(browser, gateway_site, "alice", path="/review/notices")
        browser.get(gateway_site.url("/review/notices"))
        rows = browser.find_elements(By.CSS_SELECTOR, "table.list tr.notice")
        assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == [
            "adreach",  # given up first: it waits for a person
            "lanexang-insurance",
            "lao-credit-bureau",
        ]
        assert kept[1].status == "failed" and "failed" in rows[0].text
        assert SUBJECT not in browser.page_source
        # Retry on one row: sent now, as the signed-in reviewer; the page says what happened.
        # The retry posts and loads a new page: wait for it, or the old page is searched.
        click_and_wait(browser, rows[1].find_element(By.CSS_SELECTOR, "button[type=submit]"))
        status = browser.find_element(By.CSS_SELECTOR, "p.notice.ok")
        assert f"Notice {kept[0].id} to lanexang-insurance was accepted" in status.text
        assert sent == ["lanexang-insurance"]
        rows = browser.find_elements(By.CSS_SELECTOR, "table.list tr.notice")
        assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == [
            "adreach",
            "lao-credit-bureau",
        ]
        assert "Retry all (2)" in browser.page_source
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{overflow} px of horizontal overflow at 1280 px"
        browser.save_screenshot(str(docs_screenshot("review-notices.png")))
        screenshot("notices")
    finally:
        browser.set_window_size(1366, 900)
