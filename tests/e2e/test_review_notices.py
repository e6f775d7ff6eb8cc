"""The review site's notice outbox page (/review/notices, issue #19 item 3): pending and
given-up notices with partner, age, attempts and last error, and no personal value."""

from __future__ import annotations

from datetime import timedelta

from browser.review_support import NOW, HexSealing
from test_review_page import Site, site  # noqa: F401 (the fixture)

from gateway.cli.notices import NOTICE_COLUMNS
from gateway.log.columns import checked_search
from gateway.rights.outbox import Attempted, NoticeOutbox
from gateway.store.records import LogQuery
from gateway.web.keys import LOG, NOTICES

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
    assert "gateway notices retry" in html
    # Words, the code on hover.
    assert '<span class="label" title="partner_unavailable">Partner unavailable</span>' in html
    assert 'title="consent_withdrawn">Consent withdrawal</span>' in html
    # The command the page names is one that runs: --as is required (README).
    assert "gateway notices retry ID --as alice" in html
    assert "then every 12 h for 7 d" in html  # the outbox's schedule, not a fixed text
    assert SUBJECT not in html
    assert 'aria-current="page">Notices' in html
    site.client.session.cookie_jar.clear()
    r = await site.client.get("/review/notices", allow_redirects=False)
    assert r.status in (302, 303, 401)


def app_of(on: Site):
    return on.client.server.app


async def kept_by_the_app(on: Site, partner: str, reference: str):
    """A notice kept by the gateway's own outbox (its at-rest sealing), due in a minute."""
    return await app_of(on)[NOTICES].keep(
        kind="consent_withdrawn",
        partner=partner,
        operation="erasure",
        reference=reference,
        payload={"subject_ref": "ref", "claims": {"consent_id": "c-1"}, "officer": "x"},
        first=Attempted(False, "d-1", "partner_unavailable"),
    )


async def retry_acts(on: Site) -> list:
    await app_of(on)[LOG].settle()
    rows = await checked_search(on.store, LogQuery(kind="action", limit=1000))
    return [r for r in rows if r.action == "retry_notice"]


async def test_retry_buttons_send_now_as_the_signed_in_reviewer(site: Site):  # noqa: F811
    """Retry (one) and Retry all: a POST with the session's CSRF token, each notice a
    `retry_notice` act by the reviewer, the outcome shown on the page."""
    partner_back = {"lanexang-insurance": True, "lao-credit-bureau": False}
    sent: list[str] = []

    async def send(kept, payload):
        sent.append(kept.id)
        if partner_back[kept.partner]:
            return Attempted(True, f"d-{len(sent)}")
        return Attempted(False, f"d-{len(sent)}", "partner_unavailable")

    app_of(site)[NOTICES].send = send
    one = await kept_by_the_app(site, "lanexang-insurance", "CW-c-1")
    other = await kept_by_the_app(site, "lao-credit-bureau", "CW-c-2")
    csrf = await site.login("alice")
    page = await (await site.client.get("/review/notices")).text()
    assert f'action="/review/notices/{one.id}/retry"' in page and "Retry all (2)" in page

    # Without the session's token: refused, nothing sent, no act recorded.
    r = await site.client.post(f"/review/notices/{one.id}/retry", data={"csrf": "forged"})
    assert r.status == 403 and sent == [] and await retry_acts(site) == []

    r = await site.client.post(f"/review/notices/{one.id}/retry", data={"csrf": csrf})
    assert r.status == 200  # after the redirect: the page with what the retry did
    html = await r.text()
    assert f"Notice {one.id} to lanexang-insurance was accepted" in html
    assert "Retry all (1)" in html and f"/review/notices/{one.id}/retry" not in html
    assert sent == [one.id]
    [act] = await retry_acts(site)
    assert (act.actor, act.data["target"], act.partner) == (
        "alice",
        f"notice:{one.id}",
        "lanexang-insurance",
    )
    assert act.data["credential"] == "password:alice"

    r = await site.client.post("/review/notices/retry", data={"csrf": csrf})
    html = await r.text()
    said = f"Notice {other.id} to lao-credit-bureau was not accepted: Partner unavailable"
    assert f"{said} (partner_unavailable)" in html
    assert sent == [one.id, other.id]
    assert len(await retry_acts(site)) == 2
    [still] = await site.store.outbox_notices(("pending", "failed"))
    assert (still.id, still.attempts) == (other.id, 2)

    r = await site.client.post("/review/notices/n-unknown/retry", data={"csrf": csrf})
    assert r.status == 404 and "no notice n-unknown in the outbox" in await r.text()


async def test_the_csv_is_what_the_page_shows_and_an_export_act(site: Site):  # noqa: F811
    await site.login("alice")
    page = await (await site.client.get("/review/notices")).text()
    assert "notices.csv" not in page  # nothing waits: nothing to download
    pending = await keep(site, "lanexang-insurance", "CW-c-1", at=NOW - timedelta(hours=3))
    given_up = await keep(site, "adreach", "RR-abc", at=NOW - timedelta(days=8), failed=True)
    page = await (await site.client.get("/review/notices")).text()
    assert '<a class="export" href="/review/notices.csv">Download CSV</a>' in page
    r = await site.client.get("/review/notices.csv")
    assert r.status == 200 and r.content_type == "text/csv"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="notices-')
    lines = (await r.text()).splitlines()
    # The columns of `gateway notices list --format csv`, the page's order, codes as codes.
    assert lines[0] == ",".join(NOTICE_COLUMNS)
    assert [line.split(",")[0] for line in lines[1:]] == [given_up.id, pending.id]
    assert lines[2].split(",")[1:8] == [
        "consent_withdrawn", "lanexang-insurance", "erasure", "CW-c-1", "pending", "1", "10800"
    ]  # fmt: skip
    assert lines[2].endswith(",partner_unavailable") and SUBJECT not in await r.text()
    await app_of(site)[LOG].settle()
    acts = await checked_search(site.store, LogQuery(kind="action", limit=1000))
    assert [(a.actor, a.target) for a in acts if a.action == "export"] == [("alice", "notice:")]
