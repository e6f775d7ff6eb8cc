"""Real-browser fixtures: Debian's headless Chromium driven by Selenium through chromedriver,
against the gateway (with the review page) served from a background thread's event loop.

Selenium is given the driver and the browser binary explicitly, so Selenium Manager never
looks for (or downloads) anything. Without chromium/chromedriver the tests are skipped —
except under CI=true, where that is a failure. Each test saves screenshots under
test-artifacts/ at the repository root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.review_support import (
    Gateway,
    review_config,
    served_review_site,
)

from gateway.config.model import Config
from gateway.partners.model import Partner

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

CALL_FAILED = pytest.StashKey[bool]()

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1366,900",  # a common laptop screen
)


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = (
        f"{' and '.join(missing)} not installed (Debian packages chromium and "
        "chromium-driver; `make test` installs them)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}. CI=true requires the browser tests to run.")
    pytest.skip(message)


@pytest.fixture
def gateway_site(config: Config, partners: dict[str, Partner], tmp_path: Path) -> Iterator[Gateway]:
    _require_browser()
    with served_review_site(review_config(config, str(tmp_path / "gateway.db")), partners) as site:
        yield site


@pytest.fixture(scope="module")
def profile() -> Iterator[Path]:
    """A fresh Chromium profile directory (and its downloads folder) per test module."""
    path = Path(tempfile.mkdtemp(prefix="review-chromium-"))
    (path / "downloads").mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def downloads(profile: Path) -> Path:
    return profile / "downloads"


@pytest.fixture(scope="module")
def chrome(profile: Path) -> Iterator[Any]:
    """One headless Chromium per test module; each test clears its cookies."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = profile / "downloads"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile / 'profile'}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture
def browser(
    chrome: Any, gateway_site: Gateway, downloads: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """The module's Chromium, signed out, pointed at this test's gateway. When the test
    fails, what the browser showed is kept in test-artifacts/ (PNG and HTML)."""
    chrome.get(gateway_site.url("/review/static/review.css"))
    chrome.delete_all_cookies()
    for stale in downloads.iterdir():
        stale.unlink()
    yield chrome
    if request.node.stash.get(CALL_FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        chrome.save_screenshot(str(ARTIFACTS / f"{request.node.name}-FAILED.png"))
        (ARTIFACTS / f"{request.node.name}-FAILED.html").write_text(
            f"<!-- {chrome.current_url} -->\n{chrome.page_source}", encoding="utf-8"
        )


@pytest.fixture
def screenshot(browser: Any, request: pytest.FixtureRequest) -> Any:
    """`screenshot("step")` saves test-artifacts/<test>-<step>.png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(step: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        browser.save_screenshot(str(path))
        return path

    return save
