"""The review site's notice outbox page (/review/notices, issue #19 item 3): pending and
given-up notices with partner, age, attempts and last error, and no personal value."""

from __future__ import annotations

from datetime import timedelta

from browser.review_support import NOW, HexSealing
from test_review_page import Site, site  # noqa: F401 (the fixture)

from gateway.rights.outbox import Attempted, NoticeOutbox

SUBJECT = "6f1c2a7e-0000-4000-8000-0000000ac7aa"


async def keep(on: Site, partner: str, reference: str, *, at, failed: bool = False):
    outbox = NoticeOutbox(
        on.store,
        HexSealing(),
        lambda: at,
        max_age=timedelta(seconds=0) if failed else timedelta(days=7),
    )
    return await outbox.keep(
        kind="consent_withdrawn",
        partner=partner,
        operation="erasure",
        reference=reference,
        payload={"subject": SUBJECT, "data": {"uuid": SUBJECT}},
        first=Attempted(False, "d-1", "partner_unavailable"),
    )


async def test_the_notices_page_shows_what_waits_and_no_personal_value(site: Site):  # noqa: F811
    await site.login("alice")
    r = await site.client.get("/review/notices")
    assert r.status == 200
    assert "No notice waiting" in await r.text()
    pending = await keep(site, "lanexang-insurance", "CW-c-1", at=NOW - timedelta(hours=3))
    given_up = await keep(site, "adreach", "RR-abc", at=NOW - timedelta(days=8), failed=True)
    r = await site.client.get("/review/notices")
    html = await r.text()
    assert r.status == 200
    assert "<strong>1</strong> failed, <strong>1</strong> pending" in html
    # The given-up notice first: it waits for a person.
    assert html.index(given_up.id) < html.index(pending.id)
    assert "lanexang-insurance" in html and "adreach" in html
    assert "partner_unavailable" in html and "gateway notices retry" in html
    assert SUBJECT not in html
    assert 'aria-current="page">Notices' in html
    site.client.session.cookie_jar.clear()
    r = await site.client.get("/review/notices", allow_redirects=False)
    assert r.status in (302, 303, 401)
