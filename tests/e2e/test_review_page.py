"""The review page over HTTP (CONTRACT §4.8): the real gateway app with /review/ mounted,
a seeded SQLite log, and a hand-written fake of the ReviewBackend port."""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import (
    CSRF,
    HASHES,
    INJECTED_PARTNER,
    NOW,
    PASSWORDS,
    SUBJECT_A,
    SUBJECT_B,
    SUBJECTS,
    FakeReviewBackend,
    Seeded,
    add_requests,
    csrf_of,
    review_app,
    review_config,
    seeded_site,
    sign_in,
)

from gateway.config.model import Config, Reviewer, load_config
from gateway.crypto.subject_keys import LogKeys
from gateway.errors import ConfigError
from gateway.partners.model import Partner
from gateway.store.base import Store
from gateway.web.review.backend import IntegrityStatus
from gateway.web.review.handlers import add_review_routes
from gateway.web.review.listing import Filters, csv_cell, search_page
from gateway.web.review.passwords import (
    DEFAULT_LN,
    PasswordHashError,
    hash_password,
    parse_password_hash,
)
from gateway.web.review.session import LoginThrottle, Sealer, SessionSigner

HTML = {"Accept": "text/html"}


@dataclass
class Site:
    client: TestClient
    store: Store
    fake: FakeReviewBackend
    seeded: Seeded
    config: Config

    async def login(self, reviewer: str, password: str | None = None) -> str:
        """Sign in through the form (a fresh session); return the session's CSRF token."""
        self.client.session.cookie_jar.clear()
        return await sign_in(self.client, reviewer, password)

    async def csrf(self) -> str:
        return await csrf_of(self.client)

    async def rows(self, path: str) -> list[str]:
        """The disclosure ids a list page shows, in order."""
        r = await self.client.get(path)
        assert r.status == 200, await r.text()
        return re.findall(r'href="/review/disclosures/([^"]+)"', await r.text())


@pytest.fixture
async def site(config: Config, partners: dict[str, Partner], tmp_path: Path) -> AsyncIterator[Site]:
    async with seeded_site(config, partners, tmp_path / "gateway.db") as seeded:
        await add_requests(seeded.store)
        yield Site(seeded.client, seeded.store, seeded.fake, seeded.seeded, seeded.config)


def ids(site: Site, *names: str) -> list[str]:
    return [site.seeded[n] for n in names]


# -- who may see the page ---------------------------------------------------------------


async def test_logged_out_browser_and_bearer_token_get_no_review_data(site, config):
    from gateway.crypto.dev_tokens import issue_dev_token

    bearer = {
        "Authorization": "Bearer "
        + issue_dev_token(config.keys_dir, config.auth, "reviewer-alice", ttl_s=600)
    }
    for path in (
        "/review/",
        "/review/queue",
        "/review/legal-requests",
        "/review/integrity",
        "/review/export.csv",
        f"/review/disclosures/{site.seeded['credit']}",
    ):
        for headers in ({}, bearer):
            r = await site.client.get(path, headers=headers, allow_redirects=False)
            assert r.status == 303, path
            location = r.headers["Location"]
            assert location.startswith("/review/login?next=")
            assert parse_qs(urlsplit(location).query)["next"] == [path]
            assert site.seeded["credit"] not in await r.text()
    r = await site.client.post(
        "/review/legal-requests/LR-test-1/approve", headers=bearer, data={"csrf": "x"}
    )
    assert r.status == 403
    assert (await r.json(content_type=None))["type"].endswith("/forbidden")
    assert (await site.store.get_legal_request("LR-test-1")).approvals == ()
    r = await site.client.get("/review", allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (303, "/review/")


async def test_login_sets_strict_session_cookie_and_security_headers(site):
    await site.login("alice")
    cookie = site.client.session.cookie_jar.filter_cookies(site.client.make_url("/review/"))
    assert "gateway_review" in cookie
    form = await site.client.get("/review/login")  # signed in: straight on
    assert str(form.url).endswith("/review/")

    site.client.session.cookie_jar.clear()
    form = await site.client.get("/review/login")
    token = CSRF.search(await form.text())[1]
    r = await site.client.post(
        "/review/login",
        allow_redirects=False,
        data={
            "csrf": token,
            "reviewer_id": "bob",
            "password": PASSWORDS["bob"],
            "next": "https://evil.example/",
        },
    )
    assert r.headers["Location"] == "/review/"  # no open redirect
    set_cookie = next(h for h in r.headers.getall("Set-Cookie") if h.startswith("gateway_review="))
    attributes = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in set_cookie and "Path=/review" in set_cookie
    assert "secure" not in attributes  # plain HTTP here; request.secure adds it under TLS

    for path in ("/review/", "/review/static/review.css", "/review/login", "/review/nope"):
        r = await site.client.get(path, headers=HTML)
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-store"
    page = await (await site.client.get("/review/")).text()
    assert "<script" not in page and "style=" not in page and "onclick" not in page


async def test_failed_logins_are_generic_then_throttled(site):
    async def attempt(reviewer: str, password: str) -> tuple[int, str]:
        site.client.session.cookie_jar.clear()
        form = await site.client.get("/review/login")
        token = CSRF.search(await form.text())[1]
        r = await site.client.post(
            "/review/login",
            allow_redirects=False,
            data={"csrf": token, "reviewer_id": reviewer, "password": password},
        )
        return r.status, await r.text()

    wrong = await attempt("alice", "not-her-password")
    unknown = await attempt("mallory", "whatever-password")
    assert wrong[0] == unknown[0] == 401
    generic = "Sign-in failed: unknown reviewer id or wrong password."
    assert generic in wrong[1] and generic in unknown[1]
    for _ in range(4):
        await attempt("alice", "still-wrong-password")
    status, text = await attempt("alice", PASSWORDS["alice"])  # right, but locked now
    assert status == 429 and "Too many failed sign-ins" in text
    assert (await attempt("bob", PASSWORDS["bob"]))[0] == 303  # others are not affected


async def test_login_form_needs_its_own_csrf_token(site):
    r = await site.client.post(
        "/review/login",
        data={"reviewer_id": "alice", "password": PASSWORDS["alice"], "csrf": "forged"},
    )
    assert r.status == 403
    r = await site.client.post(
        "/review/login", headers=HTML, data={"reviewer_id": "alice", "password": PASSWORDS["alice"]}
    )
    assert r.status == 403 and "sign-in form expired" in await r.text()


async def test_forged_forms_are_refused_without_a_trace(site):
    bob_token = await site.login("bob")
    alice_token = await site.login("alice")
    url = "/review/legal-requests/LR-test-1/approve"
    for data, headers in (
        ({}, {}),  # no token: problem+json for a non-browser
        ({}, HTML),  # no token: an error page for a browser
        ({"csrf": bob_token}, {}),  # a token of another session
        ({"csrf": alice_token}, {"Origin": "https://evil.example"}),  # right token, other site
    ):
        r = await site.client.post(url, data=data, headers=headers)
        assert r.status == 403, (data, headers)
        if headers == HTML:
            assert r.content_type == "text/html" and "CSRF token" in await r.text()
        elif not headers:
            problem = await r.json(content_type=None)
            assert r.content_type == "application/problem+json"
            assert problem["type"].endswith("/forbidden") and "CSRF" in problem["detail"]
    r = await site.client.post(
        f"/review/queue/{site.seeded['vital']}/justify", data={"justification": "forged"}
    )
    assert r.status == 403
    assert (await site.store.get_legal_request("LR-test-1")).approvals == ()
    assert site.fake.justifications == {}
    # The real form, with the session's own token, passes.
    r = await site.client.post(url, data={"csrf": alice_token}, allow_redirects=False)
    assert r.status == 303


async def test_logout_ends_the_session(site):
    token = await site.login("alice")
    r = await site.client.post("/review/logout", data={"csrf": token}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/review/login"
    assert any(
        h.startswith("gateway_review=") and "Max-Age=0" in h for h in r.headers.getall("Set-Cookie")
    )
    r = await site.client.get("/review/", allow_redirects=False)
    assert r.status == 303


def test_session_cookies_expire_resist_forgery_and_end_with_the_password():
    signer = SessionSigner(b"k" * 32)
    cookie, session = signer.issue("alice", HASHES["alice"], NOW)
    assert signer.open(cookie, NOW) == session
    assert signer.open(cookie, NOW + timedelta(hours=9)) is None  # expired
    assert signer.open(cookie[:-2] + "AA", NOW) is None  # forged
    assert SessionSigner(b"x" * 32).open(cookie, NOW) is None  # another key
    assert session.fingerprint != signer.fingerprint(hash_password("new-long-password", ln=14))


# -- the list ---------------------------------------------------------------------------


OLDEST_FIRST = (
    "october",
    "credit",
    "charge",
    "vital",
    "adreach",
    "quote",
    "injected",
    "public",
    "veriid",
)


async def test_list_shows_decisions_newest_first_without_outcome_rows(site):
    await site.login("alice")
    shown = await site.rows("/review/disclosures")
    assert shown == ids(site, *reversed(OLDEST_FIRST))
    assert await site.rows("/review/disclosures?oldest=1") == ids(site, *OLDEST_FIRST)
    page = await (await site.client.get("/review/disclosures")).text()
    assert "<strong>9</strong> decisions match these filters" in page  # the total
    # Words, with the code on hover.
    assert "Sent</span> (201)" in page
    assert '<span class="label" title="consent_required">' in page
    assert '<span class="label" title="partner_unavailable">' in page
    assert '<span class="label" title="legal_obligation">' not in page
    assert '<span class="label" title="vital_interest">Vital interest</span>' in page
    assert ">consent_required<" not in page and ">vital_interest<" not in page
    assert "needs review" in page
    for subject in SUBJECTS:
        assert subject not in page


async def test_subject_search_never_puts_the_subject_in_a_url(site):
    token = await site.login("alice")
    r = await site.client.post(
        "/review/search", allow_redirects=False, data={"csrf": token, "subject": SUBJECT_A}
    )
    assert r.status == 303
    location = r.headers["Location"]
    assert SUBJECT_A not in location and "s=" in location
    # The October entry was written under another month's key: found all the same.
    assert await site.rows(location) == ids(
        site, "veriid", "public", "adreach", "credit", "october"
    )
    page = await (await site.client.get(location)).text()
    assert f'value="{SUBJECT_A}"' in page  # the form shows what was typed, the URL does not
    assert re.search(r"searched by its \d+ log reference\(s\)", page)

    r = await site.client.post(
        "/review/search",
        allow_redirects=False,
        data={"csrf": token, "subject": SUBJECT_B, "partner": "bcel-payments"},
    )
    assert await site.rows(r.headers["Location"]) == ids(site, "charge")

    tampered = location.replace("s=", "s=AAAA")
    r = await site.client.get(tampered)
    assert r.status == 400


@pytest.mark.parametrize(
    "query,expected",
    [
        ("partner=lao-credit-bureau", ["october", "credit"]),
        ("category=government_authority", ["vital", "public"]),
        ("purpose=safety_security", ["vital", "public", "veriid"]),
        ("basis=contract", ["charge", "quote", "injected"]),
        ("outcome=refused", ["adreach", "injected"]),
        ("outcome=failed", ["quote"]),
        ("outcome=pending", ["veriid"]),
        ("outcome=sent&basis=vital_interest", ["vital"]),
        ("since=2026-11-21&until=2026-11-23", ["adreach", "quote", "injected"]),
        ("until=2026-10-31", ["october"]),
        ("since=2026-11-24", ["public", "veriid"]),
    ],
)
async def test_filters(site, query, expected):
    await site.login("alice")
    assert await site.rows(f"/review/?{query}") == ids(site, *reversed(expected))
    assert await site.rows(f"/review/?{query}&oldest=1") == ids(site, *expected)


async def test_filters_refuse_bad_values(site):
    await site.login("alice")
    for query in (
        "purpose=gossip",
        "since=yesterday",
        "since=2026-11-24&until=2026-11-01",
        "after=-3",
        "after=%C2%B2",
        "after=" + "9" * 30,
        "partner=a%20b",
        "outcome=lost",
    ):
        r = await site.client.get(f"/review/?{query}", headers=HTML)
        assert r.status == 400, query
        assert "Invalid request" in await r.text()


async def test_keyset_pagination_over_many_entries(site, partners):
    from browser.review_support import DISCLOSURES, _entries

    from gateway.log.entries import row_of

    keys = site.fake.keys
    bulk = []
    for n in range(120):
        spec = ("bulk", *DISCLOSURES[2][1:])  # bcel-payments charges
        entries = _entries(f"bulk-{n}", partners, keys, spec)
        bulk.extend(row_of(e) for e in entries)
    await site.store.append_log_entries(bulk)
    await site.login("alice")
    seen: list[str] = []
    url: str | None = "/review/?partner=bcel-payments"
    pages = 0
    while url is not None:
        r = await site.client.get(url)
        text = await r.text()
        rows = re.findall(r'href="/review/disclosures/([^"]+)"', text)
        seen.extend(rows)
        pages += 1
        found = re.search(r'<a rel="next" href="([^"]+)"', text)
        url = found[1].replace("&amp;", "&") if found else None
        if url:
            assert "after=" in url and "partner=bcel-payments" in url
    assert pages == 3  # 121 rows, 50 a page
    assert len(seen) == len(set(seen)) == 121


async def test_row_filters_read_a_bounded_number_of_entries(site):
    # The category is checked on the rows read: a page stops at its budget and says where.
    filters = Filters(category="government_authority")
    first = await search_page(site.store, filters, after=None, size=50, budget=4)
    assert [r.disclosure_id for r in first.rows] == ids(site, "public")  # newest first
    assert first.scanned == 4 and first.next_after is not None
    rest = await search_page(site.store, filters, after=first.next_after, size=50, budget=100)
    assert [r.disclosure_id for r in rest.rows] == ids(site, "vital")
    assert rest.next_after is None


# -- one disclosure ---------------------------------------------------------------------


async def test_disclosure_detail_with_fields_and_proof_results(site):
    await site.login("bob")
    intent_index, outcome_index = site.seeded.indexes["credit"]
    site.fake.failed_proofs.add(outcome_index)
    r = await site.client.get(f"/review/disclosures/{site.seeded['credit']}")
    page = await r.text()
    assert r.status == 200
    assert "Intent" in page and "Outcome" in page
    assert "<td>date_of_birth</td><td>identity</td><td>year</td>" in page
    assert "<td>uuid</td><td>account</td><td>pseudonym</td>" in page
    assert "verified" in page and "FAILED" in page
    assert "the audit path gives root AAAA" in page
    assert site.fake.proofs_checked == [intent_index, outcome_index]
    assert SUBJECT_A not in page
    r = await site.client.get(f"/review/disclosures/{site.seeded['veriid']}")
    assert "not yet in a checkpoint" in await r.text()
    r = await site.client.get("/review/disclosures/d-nope", headers=HTML)
    assert r.status == 404


async def test_emergency_disclosure_detail_shows_its_justification(site):
    await site.login("bob")
    page = await (await site.client.get(f"/review/disclosures/{site.seeded['vital']}")).text()
    assert "Needs review" in page
    token = await site.csrf()
    await site.client.post(
        f"/review/queue/{site.seeded['vital']}/justify",
        data={"csrf": token, "justification": "caller reported a crash"},
    )
    page = await (await site.client.get(f"/review/disclosures/{site.seeded['vital']}")).text()
    assert "justified by <strong>bob</strong>" in page and "caller reported a crash" in page


# -- CSV export -------------------------------------------------------------------------


async def test_csv_export_of_the_filtered_list(site):
    token = await site.login("alice")
    r = await site.client.get("/review/export.csv?basis=contract")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert (
        r.headers["Content-Disposition"]
        == 'attachment; filename="disclosures-20261124T120000Z.csv"'
    )
    assert r.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    # The list's order (newest first), with the codes: a file is read by programs too.
    assert [row["disclosure_id"] for row in rows] == ids(site, "injected", "quote", "charge")
    assert rows[2]["outcome"] == "sent" and rows[2]["partner_status"] == "201"
    assert rows[1]["outcome"] == "failed"
    # A partner name a caller made up cannot become a formula in a spreadsheet.
    assert rows[0]["partner"] == "'" + INJECTED_PARTNER
    r = await site.client.post(
        "/review/search", data={"csrf": token, "subject": SUBJECT_B}, allow_redirects=False
    )
    token_query = urlsplit(r.headers["Location"]).query
    text = await (await site.client.get(f"/review/export.csv?{token_query}")).text()
    assert SUBJECT_B not in text
    assert [row["disclosure_id"] for row in csv.DictReader(io.StringIO(text))] == ids(
        site, "injected", "quote", "charge"
    )


def test_csv_cells_that_look_like_formulas_are_quoted():
    for text in ("=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("plain") == "plain" and csv_cell(None) == "" and csv_cell(True) == "true"


# -- integrity --------------------------------------------------------------------------


async def test_integrity_status(site):
    await site.login("alice")
    page = await (await site.client.get("/review/integrity")).text()
    assert "has not been verified yet" in page
    site.fake.status = IntegrityStatus(
        log_size=16,
        checkpoint_size=15,
        checkpoint_at=NOW - timedelta(minutes=1),
        root_hash="q1w2e3==",
        checkpoint_note="gateway.kokkok.example/disclosures\n15\nq1w2e3==\n",
        verified_at=NOW - timedelta(minutes=5),
        ok=True,
        detail="recomputed 15 leaves",
    )
    page = await (await site.client.get("/review/integrity")).text()
    assert "Verified" in page and "tree size 15" in page and "q1w2e3==" in page
    assert "2026-11-24 11:55:00 UTC" in page
    site.fake.status = replace(site.fake.status, ok=False, detail="leaf 7 does not match")
    page = await (await site.client.get("/review/integrity")).text()
    assert "Verification FAILED" in page and "leaf 7 does not match" in page


# -- emergency queue --------------------------------------------------------------------


async def test_emergency_queue_overdue_and_justification(site):
    token = await site.login("alice")
    page = await (await site.client.get("/review/queue")).text()
    vital, public = site.seeded["vital"], site.seeded["public"]
    assert page.index(vital) < page.index(public)  # oldest first
    assert re.search(rf'class="queue-item overdue" id="q-{vital}"', page)
    assert re.search(rf'class="queue-item" id="q-{public}"', page)
    assert page.count("OVERDUE") == 1 and "1 overdue" in page
    # Words, the code on hover (issue #19 item 5), in the text and in each item.
    assert "<code>vital_interest</code>" not in page
    assert page.count('<span class="label" title="vital_interest">Vital interest</span>') == 2
    assert '<span class="label" title="safety_security">Safety and security</span>' in page

    r = await site.client.post(
        f"/review/queue/{vital}/justify", headers=HTML, data={"csrf": token, "justification": "   "}
    )
    assert r.status == 400 and "write a justification" in await r.text()
    r = await site.client.post(
        f"/review/queue/{vital}/justify",
        allow_redirects=False,
        data={"csrf": token, "justification": "ambulance request 42"},
    )
    assert r.status == 303
    page = await (await site.client.get(r.headers["Location"])).text()
    assert f"Justification recorded for <code>{vital}</code>" in page
    assert f'id="q-{vital}"' not in page and f'id="q-{public}"' in page
    recorded = site.fake.justifications[vital]
    assert (recorded.reviewer_id, recorded.text) == ("alice", "ambulance request 42")

    r = await site.client.post(
        f"/review/queue/{vital}/justify",
        headers=HTML,
        data={"csrf": token, "justification": "again"},
    )
    assert r.status == 409 and "justified already" in await r.text()


# -- lawful requests --------------------------------------------------------------------


async def test_lawful_request_needs_two_reviewers_other_than_the_registrant(site):
    url = "/review/legal-requests/LR-test-1/approve"
    token = await site.login("carol")
    page = await (await site.client.get("/review/legal-requests")).text()
    assert "you registered this request" in page
    r = await site.client.post(url, data={"csrf": token}, headers=HTML)
    assert r.status == 403 and "cannot also approve it" in await r.text()

    token = await site.login("alice")
    r = await site.client.post(url, data={"csrf": token})
    page = await r.text()
    assert (
        'Status: <strong><span class="label" title="pending">Awaiting approval</span></strong>'
        in page
    )
    assert "(1 of 2 approvals)" in page
    assert "you approved it" in page
    r = await site.client.post(url, data={"csrf": token}, headers=HTML)
    assert r.status == 409 and "already approved" in await r.text()

    token = await site.login("bob")
    r = await site.client.post(url, data={"csrf": token})
    page = await r.text()
    assert 'title="approved">Approved</span></strong> (2 of 2 approvals)' in page
    record = await site.store.get_legal_request("LR-test-1")
    assert record.status == "approved"
    assert [a.reviewer_id for a in record.approvals] == ["alice", "bob"]
    r = await site.client.post(
        "/review/legal-requests/LR-nope/approve", data={"csrf": token}, headers=HTML
    )
    assert r.status == 404


async def test_lawful_request_csv_is_the_filtered_list_without_subjects(site):
    await site.login("alice")
    r = await site.client.get("/review/legal-requests.csv?status=pending")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].startswith('attachment; filename="lawful-requests-')
    text = await r.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["id"], row["status"]) for row in rows] == [
        ("LR-test-1", "pending"),
        ("LR-test-2", "pending"),
    ]
    assert rows[0]["subject_count"] == "1" and rows[0]["registered_by"] == "carol"
    for subject in SUBJECTS:
        assert subject not in text
    r = await site.client.get("/review/legal-requests.csv?status=rejected")
    assert list(csv.DictReader(io.StringIO(await r.text()))) == []
    r = await site.client.get("/review/legal-requests?status=nonsense", headers=HTML)
    assert r.status == 400


async def test_a_refused_registration_keeps_what_was_typed_but_not_the_subjects(site):
    token = await site.login("alice")
    r = await site.client.post(
        "/review/legal-requests",
        headers=HTML,
        data={
            "csrf": token,
            "authority": "Vientiane Capital Police",
            "reference": "VCP/2026/5",
            "instrument": "court order",
            "subjects": SUBJECTS[0],
        },  # no partner ticked
    )
    page = await r.text()
    assert r.status == 400 and "&#39;partners&#39; must be a non-empty list" in page
    assert 'value="VCP/2026/5"' in page and SUBJECTS[0] not in page
    registered = await site.store.list_legal_requests()
    assert all(record.reference != "VCP/2026/5" for record in registered)


# -- passwords, configuration, CLI ------------------------------------------------------


def test_scrypt_hash_format_and_verification():
    text = hash_password("correct horse battery", ln=14)
    assert re.fullmatch(r"\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}", text)
    verifier = parse_password_hash(text)
    assert verifier.matches("correct horse battery")
    assert not verifier.matches("correct horse batterY")
    assert not verifier.decoy().matches("correct horse battery")
    assert DEFAULT_LN >= 17
    for bad in (
        "$scrypt$ln=8,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$x",
        "plaintext",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    ):
        with pytest.raises(PasswordHashError):
            parse_password_hash(bad)


async def test_an_unusable_hash_stops_the_start_with_its_reviewer_named(config, partners):
    app = web.Application()
    argon = {"dan": Reviewer("dan", "Dan", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")}
    with pytest.raises(ConfigError, match=r"reviewer 'dan'.*argon2-cffi is not installed"):
        add_review_routes(app, reviewers=argon, session_key=b"k" * 32, partners=partners)


def test_throttle_locks_then_doubles_then_forgets():
    throttle = LoginThrottle(free=2)
    for _ in range(2):
        throttle.failed("alice", NOW)
    assert throttle.locked_for("alice", NOW) == timedelta(seconds=30)
    throttle.failed("alice", NOW)
    assert throttle.locked_for("alice", NOW) == timedelta(seconds=60)
    assert throttle.locked_for("alice", NOW + timedelta(seconds=61)) is None
    throttle.succeeded("alice")
    assert throttle.locked_for("alice", NOW) is None


def test_sealed_subject_tokens():
    sealer = Sealer(b"s" * 32)
    token = sealer.seal(SUBJECT_A)
    assert SUBJECT_A not in token and sealer.open(token) == SUBJECT_A
    assert sealer.seal(SUBJECT_A) != token  # fresh nonce each time
    assert Sealer(b"t" * 32).open(token) is None
    assert sealer.open(token[:-3] + "AAA") is None and sealer.open("%%%") is None


def test_cli_reviewers_add_appends_a_table_that_loads(project, tmp_path, monkeypatch, capsys):
    from gateway.cli.main import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(
        (project / "config.toml")
        .read_text()
        .replace('dir = "keys"', f'dir = "{project / "keys"}"')
        .replace('dir = "partners"', f'dir = "{project / "partners"}"')
    )

    def run(*args: str, stdin: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["--config", str(cfg), "reviewers", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = run(
        "add",
        "dana",
        "--name",
        'Dana "D" Phommachanh',
        "--password-stdin",
        stdin="a-long-enough-password\n",
    )
    assert code == 0, err
    added = load_config(cfg).reviewers["dana"]
    assert added.name == 'Dana "D" Phommachanh'
    assert added.password_hash.startswith(f"$scrypt$ln={DEFAULT_LN},r=8,p=1$")
    assert parse_password_hash(added.password_hash).matches("a-long-enough-password")
    assert "a-long-enough-password" not in cfg.read_text()

    before = cfg.read_text()
    again = run("add", "dana", "--name", "Other", "--password-stdin", stdin="another-password-x\n")
    short = run("add", "eve", "--name", "Eve", "--password-stdin", stdin="short\n")
    bad_id = run("add", "e v e", "--name", "Eve", "--password-stdin", stdin="long-enough-pass\n")
    assert (again[0], short[0], bad_id[0]) == (2, 2, 2)
    assert "already" in again[2] and "at least 12" in short[2]
    assert cfg.read_text() == before
    code, out, _ = run("list", stdin="")
    assert code == 0 and "dana\tDana" in out and "$scrypt$" not in out


def test_return_paths_after_login_stay_on_the_review_page():
    from gateway.web.review.site import safe_next

    for bad in (
        None,
        "https://evil.example/",
        "//evil.example/review/",
        "/review/../v1/consents",
        "/v1/disclosures",
        "/review\\evil",
        "/review/\r\nSet-Cookie: x=1",
    ):
        assert safe_next(bad) == "/review/", bad
    assert safe_next("/review/queue?justified=d-1") == "/review/queue?justified=d-1"


async def test_unprintable_ids_and_text_never_reach_the_store(site):
    token = await site.login("alice")
    # Refused here (404) or by the gateway's own guard against NUL in paths (400).
    r = await site.client.get("/review/disclosures/d-1%00x", headers=HTML)
    assert r.status in (400, 404)
    r = await site.client.post("/review/legal-requests/LR-1%00/approve", data={"csrf": token})
    assert r.status in (400, 404)
    r = await site.client.get("/review/disclosures/d-1%07x", headers=HTML)
    assert r.status in (400, 404)
    vital = site.seeded["vital"]
    r = await site.client.post(
        f"/review/queue/{vital}/justify", data={"csrf": token, "justification": "a\x00b"}
    )
    assert r.status == 400 and vital not in site.fake.justifications


async def test_session_cookie_is_secure_over_tls(config, partners, tmp_path):
    import ssl

    import aiohttp
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    cfg = review_config(config, str(tmp_path / "gateway.db"))
    server = TestServer(review_app(cfg, partners, FakeReviewBackend(LogKeys.load(cfg.keys_dir))))
    await server.start_server(ssl=server_ctx)
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        connector = aiohttp.TCPConnector(ssl=client_ctx)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
            form = await session.get(server.make_url("/review/login"))
            assert "Secure" in form.headers["Set-Cookie"]
            token = CSRF.search(await form.text())[1]
            r = await session.post(
                server.make_url("/review/login"),
                data={"csrf": token, "reviewer_id": "alice", "password": PASSWORDS["alice"]},
                allow_redirects=False,
            )
            assert r.status == 303
            cookie = next(
                h for h in r.headers.getall("Set-Cookie") if h.startswith("gateway_review=")
            )
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        await server.close()
