"""The review page in a real headless Chromium (issue 5, "Must show"): sign in, filter, open a
disclosure, approve a lawful request as two reviewers, justify an emergency disclosure,
export CSV; and refusals for a non-reviewer, a logged-out browser and a forged form."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from browser.review_support import (
    NOW,
    PASSWORDS,
    SUBJECT_A,
    SUBJECT_B,
    Gateway,
    ServedGateway,
    menu_link,
)
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from gateway.web.review.backend import IntegrityStatus


def click_and_wait(browser: Any, element: Any) -> None:
    """Click something that loads a new page; return once the new page has loaded."""
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(driver: Any) -> bool:
        try:
            _ = old.tag_name
        except WebDriverException:  # stale, or chromedriver's "node not in document"
            return bool(driver.execute_script("return document.readyState") == "complete")
        return False

    # Mid-navigation, chromedriver answers some commands with errors: try again.
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(replaced)


def sign_in(
    browser: Any, site: Gateway, reviewer: str, password: str | None = None, path: str = "/review/"
) -> None:
    browser.get(site.url(path))
    assert "/review/login" in browser.current_url
    browser.find_element(By.NAME, "reviewer_id").send_keys(reviewer)
    browser.find_element(By.NAME, "password").send_keys(
        PASSWORDS[reviewer] if password is None else password
    )
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "section.login button[type=submit]")
    )


def sign_out(browser: Any) -> None:
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.signout button"))
    assert browser.current_url.endswith("/review/login")


def listed(browser: Any) -> list[str]:
    links = browser.find_elements(By.CSS_SELECTOR, "table.list td.id a")
    return [a.text for a in links]


def test_sign_in_and_filter(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "alice")
    assert browser.current_url == gateway_site.url("/review/")
    assert "Alice Vongsa" in browser.find_element(By.CSS_SELECTOR, "form.signout").text
    # The overview first; the list is one click away in the navigation.
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Overview")
    click_and_wait(browser, menu_link(browser, "Disclosures", "Disclosures"))
    assert browser.current_url == gateway_site.url("/review/disclosures")
    assert len(listed(browser)) == 9

    Select(browser.find_element(By.NAME, "partner")).select_by_value("lao-credit-bureau")
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]")
    )
    # Newest first.
    assert listed(browser) == [gateway_site.seeded["credit"], gateway_site.seeded["october"]]

    Select(browser.find_element(By.NAME, "partner")).select_by_value("")
    subject = browser.find_element(By.NAME, "subject")
    subject.send_keys(SUBJECT_A)
    Select(browser.find_element(By.NAME, "purpose")).select_by_value("safety_security")
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]")
    )
    assert listed(browser) == [gateway_site.seeded["veriid"], gateway_site.seeded["public"]]
    assert SUBJECT_A not in browser.current_url
    assert "Filtering by one subject" in browser.page_source
    screenshot("filtered")


def test_open_a_disclosure_with_its_proof(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "bob", path="/review/disclosures")
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, gateway_site.seeded["vital"]))
    assert browser.find_element(By.TAG_NAME, "h1").text == (
        f"Disclosure {gateway_site.seeded['vital']}"
    )
    proofs = browser.find_elements(By.CSS_SELECTOR, "p.proof")
    assert len(proofs) == 2 and all("verified" in p.text for p in proofs)
    fields = browser.find_element(By.CSS_SELECTOR, "table.fields-table").text
    assert "date_of_birth identity keep" in fields
    assert "Needs review" in browser.page_source
    screenshot("detail")


def test_two_reviewers_approve_a_lawful_request(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "alice", path="/review/legal-requests")
    assert browser.current_url == gateway_site.url("/review/legal-requests")
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "#lr-LR-test-1 button[type=submit]")
    )
    notice = browser.find_element(By.CSS_SELECTOR, "p.notice.ok").text
    assert "Status: Awaiting approval (1 of 2 approvals)" in notice
    assert "you approved it" in browser.find_element(By.ID, "lr-LR-test-1").text
    sign_out(browser)

    sign_in(browser, gateway_site, "bob", path="/review/legal-requests")
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "#lr-LR-test-1 button[type=submit]")
    )
    notice = browser.find_element(By.CSS_SELECTOR, "p.notice.ok").text
    assert "Status: Approved (2 of 2 approvals)" in notice
    record = gateway_site.served.call(gateway_site.served.store.get_legal_request("LR-test-1"))
    assert record.status == "approved"
    assert [a.reviewer_id for a in record.approvals] == ["alice", "bob"]
    screenshot("approved")


def test_registrant_cannot_approve(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "carol", path="/review/legal-requests")
    row = browser.find_element(By.ID, "lr-LR-test-2")
    assert "you registered this request" in row.text
    assert not row.find_elements(By.CSS_SELECTOR, "button")
    screenshot("registrant")


def test_justify_an_emergency_disclosure(browser, gateway_site, screenshot):
    vital, public = gateway_site.seeded["vital"], gateway_site.seeded["public"]
    sign_in(browser, gateway_site, "alice", path="/review/queue")
    overdue = browser.find_element(By.ID, f"q-{vital}")
    assert "overdue" in overdue.get_attribute("class") and "OVERDUE" in overdue.text
    fresh = browser.find_element(By.ID, f"q-{public}")
    assert "overdue" not in fresh.get_attribute("class")
    screenshot("queue")

    overdue.find_element(By.NAME, "justification").send_keys(
        "Ambulance service request 2026-1187: caller unconscious, location needed"
    )
    click_and_wait(browser, overdue.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert (
        f"Justification recorded for {vital}"
        in browser.find_element(By.CSS_SELECTOR, "p.notice.ok").text
    )
    assert not browser.find_elements(By.ID, f"q-{vital}")
    assert gateway_site.fake.justifications[vital].reviewer_id == "alice"
    screenshot("justified")


def test_export_csv(browser, gateway_site, downloads: Path, screenshot):
    sign_in(browser, gateway_site, "bob", path="/review/disclosures")
    Select(browser.find_element(By.NAME, "basis")).select_by_value("contract")
    browser.find_element(By.NAME, "subject").send_keys(SUBJECT_B)
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]")
    )
    screenshot("before-export")
    browser.find_element(By.CSS_SELECTOR, "a.export").click()  # a download: the page stays
    deadline = time.monotonic() + 10
    files: list[Path] = []
    sizes: list[int] = []
    while time.monotonic() < deadline:
        files = [f for f in downloads.iterdir() if f.suffix == ".csv"]
        # Done when Chromium has nothing in progress and the file stopped growing: under
        # load the export's rows follow its header by more than one look (a flake seen).
        busy = any(f.suffix == ".crdownload" for f in downloads.iterdir())
        sizes = [*sizes[-1:], sum(f.stat().st_size for f in files)]
        if files and not busy and len(sizes) == 2 and sizes[0] == sizes[1]:
            break
        time.sleep(0.2)
    assert [f.name for f in files] == ["disclosures-20261124T120000Z.csv"]
    rows = list(csv.DictReader(io.StringIO(files[0].read_text(encoding="utf-8"))))
    assert [r["disclosure_id"] for r in rows] == [
        gateway_site.seeded[n] for n in ("injected", "quote", "charge")
    ]
    assert rows[0]["partner"].startswith("'=")  # no formula reaches a spreadsheet
    assert SUBJECT_B not in files[0].read_text(encoding="utf-8")


def test_non_reviewer_is_refused(browser, gateway_site, screenshot):
    sign_in(browser, gateway_site, "mallory", password="guessing-a-password")
    assert "/review/login" in browser.current_url
    alert = browser.find_element(By.CSS_SELECTOR, "p.notice.error").text
    assert alert == "Sign-in failed: unknown reviewer id or wrong password."
    assert not browser.find_elements(By.CSS_SELECTOR, "table.list")
    sign_in(browser, gateway_site, "alice", password="not-alices-password")
    assert browser.find_element(By.CSS_SELECTOR, "p.notice.error").text == alert
    screenshot("refused")


def test_logged_out_browser_is_sent_to_sign_in(browser, gateway_site, screenshot):
    for path in (
        "/review/",
        "/review/queue",
        f"/review/disclosures/{gateway_site.seeded['vital']}",
        "/review/export.csv",
    ):
        browser.get(gateway_site.url(path))
        assert "/review/login" in browser.current_url, path
        shown = "table.list, section.entry, article.queue-item, p.summary"
        assert not browser.find_elements(By.CSS_SELECTOR, shown), path
    screenshot("login")
    gateway_site.fake.status = IntegrityStatus(
        log_size=15,
        checkpoint_size=14,
        checkpoint_at=NOW - timedelta(minutes=1),
        root_hash="n0Sx3ZbO9N5y7v6mG2dQ1Yk3cG8yJw0xYQ2mX1fZP4E=",
        checkpoint_note="gateway.kokkok.example/disclosures\n14\n"
        "n0Sx3ZbO9N5y7v6mG2dQ1Yk3cG8yJw0xYQ2mX1fZP4E=\n\n"
        "\u2014 gateway.kokkok.example/disclosures Az3grlgt…\n",
        verified_at=NOW - timedelta(minutes=5),
        ok=True,
        detail="recomputed 14 leaves and 3 checkpoints",
    )
    sign_in(browser, gateway_site, "alice", path="/review/integrity")
    assert browser.current_url == gateway_site.url("/review/integrity")
    assert "Verified" in browser.find_element(By.CSS_SELECTOR, "p.notice.ok").text
    screenshot("integrity")
    sign_out(browser)
    browser.get(gateway_site.url("/review/queue"))
    assert "/review/login" in browser.current_url


EVIL_FORM = """<!doctype html><title>Win a prize</title>
<form method="post" action="{target}"><button type="submit">Claim</button></form>"""


def test_forged_form_without_csrf_token_is_refused(browser, gateway_site, screenshot):
    target = gateway_site.url("/review/legal-requests/LR-test-1/approve")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=EVIL_FORM.format(target=target), content_type="text/html")

    evil_app = web.Application()
    evil_app.router.add_get("/", page)
    # Another origin on the same site (127.0.0.1, another port): SameSite=Strict still
    # sends the session cookie, so the CSRF token and the Origin check must stop it.
    evil = ServedGateway(evil_app)
    evil.start()
    try:
        sign_in(browser, gateway_site, "alice")
        browser.get(f"{evil.base}/")
        click_and_wait(browser, browser.find_element(By.TAG_NAME, "button"))
        assert "Not allowed" in browser.find_element(By.TAG_NAME, "h1").text
        assert "CSRF token" in browser.find_element(By.CSS_SELECTOR, "p.notice.error").text
        screenshot("forged")
    finally:
        evil.stop()
    record = gateway_site.served.call(gateway_site.served.store.get_legal_request("LR-test-1"))
    assert record.approvals == ()
