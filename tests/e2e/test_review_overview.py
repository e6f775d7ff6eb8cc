"""The overview page at /review/ over HTTP (issue #19 item 4): the counts of its chart and
lists match the seeded log, every number links to the entries behind it, the labels are
words, and old links to the disclosure list (which lived at /review/) still work."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from browser.review_support import (
    DISCLOSURES,
    NOW,
    Seeded,
    add_requests,
    seeded_site,
    sign_in,
)

from gateway.config.model import Config
from gateway.partners.model import Partner
from gateway.store.base import Store
from gateway.store.records import Rejection
from gateway.web.review.overview import window_start

SEGMENT = re.compile(
    r'<a href="([^"]+)"><rect class="bar seg-(\w+)" data-outcome="\w+" data-count="(\d+)"'
    r"[^>]*><title>([^<]+)</title>"
)


@dataclass
class Site:
    client: TestClient
    store: Store
    seeded: Seeded

    async def login(self, reviewer: str) -> None:
        await sign_in(self.client, reviewer)

    async def page(self, path: str = "/review/") -> str:
        r = await self.client.get(path)
        assert r.status == 200, await r.text()
        return await r.text()


@pytest.fixture
async def site(config: Config, partners: dict[str, Partner], tmp_path: Path) -> AsyncIterator[Site]:
    # One agreement ends in 10 days: the overview warns of it.
    ending = replace(
        partners["bcel-payments"], agreement_expires_on=(NOW + timedelta(days=10)).date()
    )
    served = {**partners, "bcel-payments": ending}
    async with seeded_site(config, partners, tmp_path / "gateway.db", served) as seeded:
        await add_requests(seeded.store)
        yield Site(seeded.client, seeded.store, seeded.seeded)


def expected_outcomes() -> Counter[str]:
    """The seeded decisions of the window, by outcome (pending ones are not counted)."""
    first = window_start(NOW)
    return Counter(
        outcome
        for _, _, _, _, _, _, age, outcome in DISCLOSURES
        if outcome is not None and (NOW - age).date() >= first
    )


async def test_the_chart_counts_what_the_log_holds(site: Site) -> None:
    await site.login("alice")
    page = await site.page()
    segments = SEGMENT.findall(page)
    drawn: Counter[str] = Counter()
    for _, outcome, count, title in segments:
        drawn[outcome] += int(count)
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d: {count} [a-z ]+", title), title
    assert drawn == expected_outcomes() == Counter(sent=4, failed=1, refused=2)
    # …and what the store's GROUP BY says, day by day.
    rows = await site.store.decisions_by_day(datetime.combine(window_start(NOW), time(), UTC))
    assert sorted((r.outcome, r.count) for r in rows) == sorted(
        (outcome, int(count)) for _, outcome, count, _ in segments
    )
    assert "<strong>7</strong> decisions in 30 days</a>" in page


async def test_each_segment_links_to_exactly_its_entries(site: Site) -> None:
    await site.login("alice")
    page = await site.page()
    for href, outcome, count, _ in SEGMENT.findall(page):
        href = html.unescape(href)
        assert href.startswith("/review/disclosures?") and f"outcome={outcome}" in href
        listed = re.findall(r'href="/review/disclosures/([^"]+)"', await site.page(href))
        assert len(listed) == int(count), href


async def test_refusals_are_words_with_the_code_on_hover(site: Site) -> None:
    await site.login("alice")
    page = await site.page()
    section = page[page.index('id="refusals"') : page.index('id="partners"')]
    assert '<span title="consent_required">' in section
    assert '<span title="unknown_partner">' in section
    labels = re.findall(r'<span title="\w+">([^<]+)</span>', section)
    assert labels and all(" " in label and "_" not in label for label in labels), labels
    links = re.findall(r'<a href="([^"]+)" title="refusals[^"]*">(\d+)</a>', section)
    assert len(links) == 2
    for href, count in links:
        href = html.unescape(href)
        assert "outcome=refused&problem=" in href
        listed = re.findall(r'href="/review/disclosures/([^"]+)"', await site.page(href))
        assert len(listed) == int(count), href
    only = await site.page(html.unescape(links[0][0]))
    assert re.search(r'<option value="\w+" title="\w+" selected>[A-Z][a-z]+ [a-z ]+</option>', only)


async def test_partners_waiting_items_witnesses_and_endings(site: Site) -> None:
    await site.login("alice")
    page = await site.page()
    partners = page[page.index('id="partners"') : page.index('id="waiting"')]
    assert re.search(
        r'href="/review/disclosures\?partner=vientiane-police&amp;since=[\d-]+">2</a>', partners
    )
    waiting = page[page.index('id="waiting"') : page.index('id="witness"')]
    assert "<strong>2</strong> lawful requests awaiting approval" in waiting
    assert "LR-test-2" in waiting and 'received <span class="age">2 d 0 h ago</span>' in waiting
    assert "<strong>2</strong> emergency disclosures awaiting a justification" in waiting
    assert "overdue" in waiting  # the vital-interest one is 4 days old
    witness = page[page.index('id="witness"') : page.index('id="expiring"')]
    assert "none configured" in witness and "/review/integrity" in witness
    ending = page[page.index('id="expiring"') :]
    assert "bcel-payments" in ending and "10 days left" in ending


async def test_old_list_links_are_redirected_with_their_filters(site: Site) -> None:
    await site.login("alice")
    r = await site.client.get(
        "/review/?partner=bcel-payments&since=2026-11-01", allow_redirects=False
    )
    assert r.status == 303
    assert r.headers["Location"] == "/review/disclosures?partner=bcel-payments&since=2026-11-01"
    page = await site.page("/review/disclosures")
    assert '<a href="/review/">Overview</a>' in page
    assert '<a href="/review/disclosures" aria-current="page">Disclosures</a>' in page


async def test_the_overview_asks_for_a_session(site: Site) -> None:
    r = await site.client.get("/review/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/review/login?next=")
    assert "script-src 'none'" in r.headers["Content-Security-Policy"]


async def test_a_rejected_request_no_longer_awaits_approval(site: Site) -> None:
    await site.login("alice")
    page = await site.page()
    waiting = page[page.index('id="waiting"') : page.index('id="witness"')]
    assert "<strong>2</strong> lawful requests awaiting approval" in waiting
    rejection = Rejection("bob", "no court seal", datetime.now(UTC))
    assert await site.store.reject_legal_request("LR-test-2", rejection) is not None
    page = await site.page()
    waiting = page[page.index('id="waiting"') : page.index('id="witness"')]
    assert "<strong>1</strong> lawful request" in waiting and "LR-test-2" not in waiting
