"""The data map (/review/data-map) in headless Chromium at 1280 px (issue 19): what a
person sees — a row per partner, declared beside sent, no horizontal overflow — saved
as docs/screenshots/data-map.png for the README's legal-team guide."""

from __future__ import annotations

from typing import Any

from browser.review_support import docs_screenshot, menu_link
from browser.test_review_browser import click_and_wait, sign_in
from selenium.webdriver.common.by import By


def test_data_map_at_1280(browser: Any, gateway_site: Any) -> None:
    browser.set_window_size(1280, 900)
    sign_in(browser, gateway_site, "alice")
    click_and_wait(browser, menu_link(browser, "Partners", "Data map"))
    assert browser.current_url == gateway_site.url("/review/data-map")
    police = browser.find_element(By.ID, "map-vientiane-police")
    assert police.find_elements(By.CSS_SELECTOR, "td.num a")[0].text == "2"
    assert browser.find_element(By.ID, "map-adreach").find_elements(
        By.CSS_SELECTOR, "del.map-never"
    )
    # Neither the page nor the table scrolls sideways at 1280 px.
    for element in ("document.documentElement", "document.querySelector('.table-wrap')"):
        width = browser.execute_script(f"return {element}.scrollWidth")
        viewport = browser.execute_script(f"return {element}.clientWidth")
        assert width <= viewport, f"{element} overflows: {width} px in {viewport} px"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height + 140, 600), 2000))
    browser.save_screenshot(str(docs_screenshot("data-map.png")))

    # The number leads to the disclosures it counts.
    click_and_wait(browser, police.find_elements(By.CSS_SELECTOR, "td.num a")[0])
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.list td.id a")) == 2
