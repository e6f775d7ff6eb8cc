"""The review site's navigation in headless Chromium (issue #19): eleven pages in one row
— Overview and four menus that open without script — at 1280 px and on a phone (390 px),
no page scrolling sideways, every opened menu inside the screen, and a menu's link leading
to its page with the menu marked as where the person is."""

from __future__ import annotations

from typing import Any

from browser.review_support import Gateway, menu_link
from browser.test_overview_browser import overflows, viewport
from browser.test_review_browser import click_and_wait, sign_in
from selenium.webdriver.common.by import By

WIDTHS = ((1280, 900), (390, 844))
PAGES = ("/review/", "/review/disclosures", "/review/legal-requests", "/review/data-map")
MENUS = {
    "Disclosures": ["Disclosures", "Emergency queue"],
    "Requests": ["Lawful requests", "Notices"],
    "Partners": ["Partners", "Exposure", "Data map"],
    "Log": ["Acts", "Integrity", "Your API tokens"],
}
ENTRIES = "nav.site > a, nav.site > details > summary"


def entry_rows(browser: Any) -> list[int]:
    """The top of each entry of the navigation, in CSS pixels (one value: one row)."""
    return list(
        browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(e => Math.round(e.getBoundingClientRect().top))",
            ENTRIES,
        )
    )


def test_the_navigation_is_one_row_at_1280_and_390(
    browser: Any, gateway_site: Gateway, screenshot: Any
) -> None:
    sign_in(browser, gateway_site, "alice")
    for width, height in WIDTHS:
        viewport(browser, width, height)
        for path in PAGES:
            browser.get(gateway_site.url(path))
            tops = entry_rows(browser)
            assert len(tops) == 1 + len(MENUS) and len(set(tops)) == 1, (width, path, tops)
            assert not overflows(browser), (width, path)
        for summary in browser.find_elements(By.CSS_SELECTOR, "nav.site summary"):
            summary.click()
            menu = summary.find_element(By.XPATH, "..")
            links = menu.find_elements(By.CSS_SELECTOR, "ul a")
            assert [a.text for a in links] == MENUS[summary.text.rstrip("▾ ").strip()]
            left, right = browser.execute_script(
                "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right]",
                menu.find_element(By.TAG_NAME, "ul"),
            )
            assert 0 <= left and right <= width, (width, summary.text, left, right)
            assert not overflows(browser), (width, summary.text)
            # One menu open at a time (`name`): opening one closed the one before.
            assert len(browser.find_elements(By.CSS_SELECTOR, "nav.site details[open]")) == 1
        screenshot(f"menu-open-{width}")


def test_a_menu_link_leads_to_its_page_and_marks_the_menu(
    browser: Any, gateway_site: Gateway
) -> None:
    sign_in(browser, gateway_site, "alice")
    viewport(browser, 390, 844)
    click_and_wait(browser, menu_link(browser, "Partners", "Exposure"))
    assert browser.current_url == gateway_site.url("/review/exposure")
    current = browser.find_element(By.CSS_SELECTOR, "nav.site summary.current")
    assert current.text.rstrip("▾ ").strip() == "Partners"
    link = menu_link(browser, "Partners", "Exposure")
    assert link.get_attribute("aria-current") == "page"
