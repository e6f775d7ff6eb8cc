"""The review site's data map (/review/data-map, issue 19): partners × data categories,
declared beside sent, each number linking to the disclosures behind it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from browser.review_support import (
    seeded_site,
    sign_in,
)

from gateway.config.model import Config
from gateway.partners.model import Partner


@pytest.fixture
async def client(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> AsyncIterator[TestClient]:
    async with seeded_site(config, partners, tmp_path / "gateway.db") as site:
        yield site.client


async def login(client: TestClient, reviewer: str) -> None:
    await sign_in(client, reviewer)


def row_of(page: str, partner: str) -> str:
    found = re.search(rf'<tr id="map-{re.escape(partner)}">(.*?)</tr>', page, re.S)
    assert found is not None, f"no row for {partner}"
    return found[1]


async def test_the_map_shows_declared_beside_sent_and_links_to_the_entries(
    client: TestClient,
) -> None:
    r = await client.get("/review/data-map", allow_redirects=False)
    assert r.status in (302, 303)  # signed out: to the sign-in page
    await login(client, "alice")
    r = await client.get("/review/data-map")
    page = await r.text()
    assert r.status == 200, page
    assert 'aria-current="page">Data map' in page
    assert "<script" not in page
    police = row_of(page, "vientiane-police")
    # Two sent (vital and public interest), each carrying every declared field.
    links = re.findall(r'<a href="([^"]+)">(\d+)</a>', police)
    total_url, total = links[0]
    assert total == "2"
    assert "partner=vientiane-police" in total_url and "outcome=sent" in total_url
    assert "identity" in page and "usage" in page
    # Words, the code on hover (issue #19 item 5): data and partner categories.
    assert '<span class="label" title="identity">Identity</span>' in page
    assert '<span class="label" title="government_authority">Government authority</span>' in page
    # The number leads to exactly the disclosures it counts.
    listed = await client.get(unescape(total_url))
    assert listed.status == 200
    shown = set(re.findall(r'href="/review/disclosures/([^"]+)"', await listed.text()))
    assert len(shown) == 2
    # A partner with nothing sent: its declared fields are all "never sent".
    adreach = row_of(page, "adreach")
    assert '<del class="field map-never"' in adreach and "map-drift" in adreach


async def test_a_bad_date_is_a_clear_refusal(client: TestClient) -> None:
    await login(client, "bob")
    r = await client.get("/review/data-map?since=31-12-2026")
    assert r.status == 400
    assert "YYYY-MM-DD" in await r.text()
