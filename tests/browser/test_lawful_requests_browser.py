"""The lawful-request page as a new user meets it (issue #19 items 5 and 6): no sideways
scrolling at 1280 px or on a phone (390 px), newest first, words instead of codes, totals;
a request registered on the site and approved by two other reviewers; another rejected
with a reason; each act an `action` entry of the log, the reason's hash checked by
`log verify`'s check. Saves docs/screenshots/lawful-requests.png (1280 px)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from browser.review_support import NOW, SUBJECT_A, SUBJECT_B, Gateway, docs_screenshot
from browser.test_review_browser import click_and_wait, sign_in, sign_out
from selenium.webdriver.common.by import By

from gateway.log.actions import check_action_texts, find_actions
from gateway.store.records import LegalRequestRecord, Rejection

LONG_REFERENCE = "MPS-ECONOMIC-CRIMES-DIVISION/2026/INVESTIGATION-FILE-000000000000000000000042"


def set_width(browser: Any, width: int, height: int = 900) -> None:
    """The page's viewport exactly `width` CSS pixels wide, as on that screen."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700},
    )


@pytest.fixture
def viewport(browser: Any) -> Iterator[Any]:
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def overflow(browser: Any) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    return int(
        browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


async def more_requests(store: Any) -> None:
    """Besides carol's two pending ones: an approved, a rejected, and one with a long
    unbroken reference (the kind that pushed the old table off the page)."""
    made = [
        LegalRequestRecord(
            id="LR-test-old",
            authority="Bank of the Lao PDR",
            reference="BOL/AML/2026/117",
            instrument="AML Law art. 21",
            subjects=frozenset({SUBJECT_A, SUBJECT_B}),
            partners=frozenset({"vientiane-police"}),
            received_at=NOW - timedelta(days=9),
            registered_by="bob",
        ),
        LegalRequestRecord(
            id="LR-test-refused",
            authority="Provincial Court of Luang Prabang",
            reference="LP/CIV/2026/08",
            instrument="letter without a court seal",
            subjects=frozenset({SUBJECT_A}),
            partners=frozenset({"vientiane-police"}),
            received_at=NOW - timedelta(days=6),
            registered_by="bob",
        ),
        LegalRequestRecord(
            id="LR-test-long",
            authority="Ministry of Public Security",
            reference=LONG_REFERENCE,
            instrument="production order under the Criminal Procedure Law",
            subjects=frozenset({SUBJECT_B}),
            partners=frozenset({"vientiane-police", "bcel-payments"}),
            received_at=NOW - timedelta(hours=3),
            registered_by="alice",
        ),
    ]
    for record in made:
        await store.add_legal_request(record)
    for reviewer in ("alice", "carol"):
        await store.approve_legal_request("LR-test-old", reviewer, NOW - timedelta(days=8))
    await store.reject_legal_request(
        "LR-test-refused",
        Rejection("alice", "No court seal; asked the court for the order.", NOW),
    )


def _ids(browser: Any) -> list[str]:
    return [
        row.get_attribute("id")[3:]
        for row in browser.find_elements(By.CSS_SELECTOR, "table.requests tbody tr[id]")
    ]


def test_the_list_fits_the_screen_newest_first_in_words_with_totals(
    viewport, gateway_site: Gateway, screenshot
):
    browser = viewport
    gateway_site.served.call(more_requests(gateway_site.served.store))
    set_width(browser, 1280)
    sign_in(browser, gateway_site, "alice", path="/review/legal-requests")
    assert _ids(browser) == [
        "LR-test-long",
        "LR-test-1",
        "LR-test-2",
        "LR-test-refused",
        "LR-test-old",
    ]
    assert overflow(browser) == 0
    tabs = browser.find_element(By.CSS_SELECTOR, "nav.tabs").text.split("\n")
    assert [" ".join(t.split()) for t in tabs] == [
        "All 5",
        "Awaiting approval 3",
        "Approved 1",
        "Rejected 1",
    ]
    summary = browser.find_element(By.CSS_SELECTOR, "p.summary").text
    assert "Showing 1–5 of 5 requests, newest received first." in summary
    statuses = {
        rid: browser.find_element(By.CSS_SELECTOR, f"#lr-{rid} td.status .label")
        for rid in _ids(browser)
    }
    assert {rid: s.text for rid, s in statuses.items()} == {
        "LR-test-long": "Awaiting approval",
        "LR-test-1": "Awaiting approval",
        "LR-test-2": "Awaiting approval",
        "LR-test-refused": "Rejected",
        "LR-test-old": "Approved",
    }
    assert statuses["LR-test-old"].get_attribute("title") == "approved"  # the code on hover
    text = browser.find_element(By.TAG_NAME, "main").text
    for code in ("legal_obligation", "pending", "rejected", "approved "):
        assert code not in text
    reason = browser.find_element(By.CSS_SELECTOR, "#lr-LR-test-refused p.reason").text
    assert reason == "No court seal; asked the court for the order."
    browser.save_screenshot(str(docs_screenshot("lawful-requests.png")))

    set_width(browser, 390, 844)
    browser.refresh()
    assert overflow(browser) == 0
    screenshot("phone")

    click_and_wait(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Rejected"))
    assert browser.current_url.endswith("/review/legal-requests?status=rejected")
    assert _ids(browser) == ["LR-test-refused"]
    assert (
        "Showing 1–1 of 1 request (Rejected)"
        in browser.find_element(By.CSS_SELECTOR, "p.summary").text
    )
    assert overflow(browser) == 0


def register(browser: Any, reference: str) -> str:
    """Fill in and send the registration form; the new request's id."""
    browser.find_element(By.NAME, "authority").send_keys("Vientiane Capital Police")
    browser.find_element(By.NAME, "reference").send_keys(reference)
    browser.find_element(By.NAME, "instrument").send_keys("court order 77/2026")
    browser.find_element(By.CSS_SELECTOR, "input[name=partners][value=vientiane-police]").click()
    browser.find_element(By.NAME, "subjects").send_keys(f"{SUBJECT_A}\n{SUBJECT_B}\n")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.register button"))
    notice = browser.find_element(By.CSS_SELECTOR, "p.notice.ok")
    request_id = notice.find_element(By.TAG_NAME, "code").text
    assert "is registered" in notice.text
    assert SUBJECT_A not in browser.page_source  # the subjects are never shown again
    return request_id


def acts(site: Gateway, action: str) -> list[Any]:
    async def found() -> list[Any]:
        return [e async for e in find_actions(site.served.store, action=action)]

    return site.served.call(found())


def test_register_on_the_site_then_two_other_reviewers_approve(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "carol", path="/review/legal-requests")
    request_id = register(browser, "VCP/2026/077")
    assert _ids(browser)[0] == request_id  # newest first
    row = browser.find_element(By.ID, f"lr-{request_id}")
    assert "you registered this request" in row.text
    assert not row.find_elements(By.CSS_SELECTOR, "button")
    record = gateway_site.served.call(gateway_site.served.store.get_legal_request(request_id))
    assert record.registered_by == "carol" and len(record.subjects) == 2
    assert "2" in row.find_element(By.CSS_SELECTOR, "td.num").text
    sign_out(browser)

    for reviewer, status in (("alice", "Awaiting approval"), ("bob", "Approved")):
        sign_in(browser, gateway_site, reviewer, path="/review/legal-requests")
        click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, f"#lr-{request_id} button"))
        assert f"Status: {status}" in browser.find_element(By.CSS_SELECTOR, "p.notice.ok").text
        sign_out(browser)
    record = gateway_site.served.call(gateway_site.served.store.get_legal_request(request_id))
    assert record.status == "approved"
    assert [a.reviewer_id for a in record.approvals] == ["alice", "bob"]
    registered = acts(gateway_site, "register_lawful_request")
    assert [(e.actor, e.legal_request_id) for e in registered] == [("carol", request_id)]
    assert registered[0].credential == "password:carol"
    approvals = acts(gateway_site, "approve_lawful_request")
    assert [(e.actor, e.legal_request_id) for e in approvals] == [
        ("alice", request_id),
        ("bob", request_id),
    ]


def test_register_then_another_reviewer_rejects_with_a_reason(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "alice", path="/review/legal-requests")
    request_id = register(browser, "VCP/2026/078")
    sign_out(browser)

    sign_in(browser, gateway_site, "bob", path="/review/legal-requests")
    row = browser.find_element(By.ID, f"lr-{request_id}")
    row.find_element(By.CSS_SELECTOR, "details.reject summary").click()
    reason = "The order names no time window; asked the police for a corrected order."
    row.find_element(By.NAME, "reason").send_keys(reason)
    click_and_wait(browser, row.find_element(By.CSS_SELECTOR, "details.reject button"))
    assert "is rejected" in browser.find_element(By.CSS_SELECTOR, "p.notice.ok").text
    row = browser.find_element(By.ID, f"lr-{request_id}")
    assert row.find_element(By.CSS_SELECTOR, "td.status .label").text == "Rejected"
    assert row.find_element(By.CSS_SELECTOR, "p.reason").text == reason
    assert not row.find_elements(By.CSS_SELECTOR, "button")  # nobody approves it now
    screenshot("rejected")

    store = gateway_site.served.store
    rejected = acts(gateway_site, "reject_lawful_request")
    assert [(e.actor, e.legal_request_id) for e in rejected] == [("bob", request_id)]
    report = gateway_site.served.call(check_action_texts(store, gateway_site.fake.keys))
    assert report.problems == []
    assert report.checked >= 2  # the registration's text and the rejection's reason
    record = gateway_site.served.call(store.get_legal_request(request_id))
    assert record is not None and record.status == "rejected"
    assert record.rejection is not None and record.rejection.reason == reason
    assert gateway_site.fake.keys.text_hash(reason, rejected[0].at) == rejected[0].text_hash


@pytest.mark.parametrize(
    "path",
    [
        "/review/disclosures",
        "/review/queue",
        "/review/actions",
        "/review/partners",
        "/review/notices",
        "/review/exposure?partner=vientiane-police&since=2026-01-01&until=2026-12-31",
        "/review/integrity",
    ],
    ids=["disclosures", "queue", "acts", "partners", "notices", "exposure", "integrity"],
)
def test_the_other_lists_fit_a_laptop_and_a_phone(viewport, gateway_site, screenshot, path):
    browser = viewport
    set_width(browser, 1280)
    sign_in(browser, gateway_site, "alice", path=path)
    assert overflow(browser) == 0
    text = browser.find_element(By.TAG_NAME, "main").text
    for code in ("vital_interest", "service_provision", "consent_required"):
        assert code not in text  # words, the code on hover
    set_width(browser, 390, 844)
    browser.refresh()
    assert overflow(browser) == 0
    screenshot("phone")
