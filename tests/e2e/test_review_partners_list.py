"""The review site's partners list as a list (issue #19): status tabs with totals,
filters and order in the URL, pages, and the CSV of exactly what is shown — its download
an `export` act of the reviewer."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path

import pytest
from browser.review_support import SeededSite, seeded_site, sign_in

import gateway.web.review.partners_page
from gateway.config.model import Config
from gateway.log.actions import find_actions
from gateway.partners.model import Partner


@pytest.fixture
async def site(
    config: Config, partners: dict[str, Partner], tmp_path: Path
) -> AsyncIterator[SeededSite]:
    async with seeded_site(config, partners, tmp_path / "gateway.db") as seeded:
        await sign_in(seeded.client, "alice")
        yield seeded


def listed(page: str) -> list[str]:
    return re.findall(r'<tr id="partner-([^"]+)">', page)


def tab_total(page: str, label: str) -> int:
    found = re.search(rf">{label} <span class=\"count\">(\d+)</span>", page)
    assert found is not None, f"no tab {label}"
    return int(found[1])


async def page_of(site: SeededSite, url: str) -> str:
    r = await site.client.get(url)
    text = await r.text()
    assert r.status == 200, text
    return text


async def test_filters_order_and_totals_live_in_the_url(
    site: SeededSite, partners: dict[str, Partner]
) -> None:
    page = await page_of(site, "/review/partners")
    assert listed(page) == sorted(partners)
    assert tab_total(page, "All") == len(partners) == tab_total(page, "Active")
    assert f"of <strong>{len(partners)}</strong> partners, alphabetical" in page

    page = await page_of(site, "/review/partners?q=INSUR")  # id or name, any case
    assert listed(page) == ["lanexang-insurance"]
    assert tab_total(page, "All") == 1
    page = await page_of(site, "/review/partners?category=credit_bureau")
    assert listed(page) == ["lao-credit-bureau"]
    assert '<option value="credit_bureau" selected>' in page

    # Agreement ending first: the one with a last day first, open-ended ones by id.
    page = await page_of(site, "/review/partners?sort=ending")
    dated = sorted(
        (p for p in partners.values() if p.agreement_expires_on),
        key=lambda p: (p.agreement_expires_on, p.id),
    )
    assert listed(page)[: len(dated)] == [p.id for p in dated]
    assert "agreement ending first" in page


async def test_a_suspended_partner_has_its_tab(site: SeededSite) -> None:
    page = await page_of(site, "/review/partners")
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    r = await site.client.post(
        "/review/partners/veriid/suspend",
        data={"csrf": token[1], "reason": "INC-12 under review"},
        allow_redirects=False,
    )
    assert r.status == 303
    page = await page_of(site, "/review/partners?status=suspended")
    assert listed(page) == ["veriid"]
    assert tab_total(page, "Suspended") == 1
    assert 'aria-current="page">Suspended' in page
    page = await page_of(site, "/review/partners?status=active&q=veriid")
    assert listed(page) == [] and "No partner matches these filters." in page


async def test_pages_keep_the_filters(site: SeededSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.web.review.partners_page, "PAGE_SIZE", 3)
    page = await page_of(site, "/review/partners")
    first = listed(page)
    assert len(first) == 3 and "Page 1 of 3" in page
    following = re.search(r'<a href="([^"]+)" rel="next">', page)
    assert following is not None
    page = await page_of(site, unescape(following[1]))
    assert len(listed(page)) == 3 and not set(listed(page)) & set(first)
    page = await page_of(site, "/review/partners?sort=ending&page=3")
    assert "Page 3 of 3" in page and len(listed(page)) == 2
    previous = re.search(r'<a href="([^"]+)" rel="prev">', page)
    assert previous is not None and "sort=ending" in unescape(previous[1])
    page = await page_of(site, "/review/partners?page=99")  # past the end: the last page
    assert "Page 3 of 3" in page


async def test_the_csv_is_what_the_filter_shows_and_an_export_act(
    site: SeededSite, partners: dict[str, Partner]
) -> None:
    page = await page_of(site, "/review/partners?category=credit_bureau")
    link = re.search(r'<a class="export" href="([^"]+)">', page)
    assert link is not None and unescape(link[1]) == "/review/partners.csv?category=credit_bureau"
    r = await site.client.get(unescape(link[1]))
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].startswith('attachment; filename="partners-')
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [row["id"] for row in rows] == ["lao-credit-bureau"]
    assert rows[0]["category"] == "credit_bureau" and rows[0]["status"] == "active"
    assert rows[0]["retention_days"] == str(partners["lao-credit-bureau"].retention_days)
    exports = [e async for e in find_actions(site.store, action="export")]
    assert [(e.actor, e.target) for e in exports] == [("alice", "partner:")]

    everything = await site.client.get("/review/partners.csv")
    assert len(list(csv.DictReader(io.StringIO(await everything.text())))) == len(partners)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=gone", "'status' must be one of: all, active, suspended, ending"),
        ("sort=newest", "'sort' must be one of: name, ending"),
        ("page=0", "'page' must be a page number"),
        ("category=pirates", "'category' must be one of: all, "),
        ("q=" + "x" * 101, "'q' has at most 100 characters"),
    ],
)
async def test_a_bad_filter_is_refused_saying_what_it_may_be(
    site: SeededSite, query: str, says: str
) -> None:
    for path in ("/review/partners", "/review/partners.csv"):
        r = await site.client.get(f"{path}?{query}", headers={"Accept": "application/json"})
        assert r.status == 400
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert says in (await r.json())["detail"]
