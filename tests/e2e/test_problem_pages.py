"""GET /problems/ and /problems/<code>: every problem `type` resolves on the gateway itself.

The real create_app() app: the index lists every code, each code's page says what it
means, its causes, its fix, its status and its retry rule (HTML by default, JSON on
Accept: application/json), without authentication; an unknown code is a not_found
problem; and the `type` of a real refusal leads to its page.
"""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient
from markupsafe import escape

from gateway.problem_catalog import CATALOGUE
from gateway.web.problem_pages import kind_document, prefers_json

JSON = {"Accept": "application/json"}
# The pages read no store: one backend is enough.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@sqlite_only
@pytest.mark.parametrize("path", ["/problems/", "/problems"])
async def test_the_index_lists_every_code(gateway: TestClient, path: str) -> None:
    page = await gateway.get(path)
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    for code, kind in CATALOGUE.items():
        assert f'href="/problems/{code}"' in html, code
        assert str(escape(kind.title)) in html
    listing = await (await gateway.get(path, headers=JSON)).json()
    assert [p["code"] for p in listing["problems"]] == list(CATALOGUE)
    assert all(p["type"] == f"/problems/{p['code']}" for p in listing["problems"])


@sqlite_only
async def test_every_code_has_a_page_that_explains_it(gateway: TestClient) -> None:
    for code, kind in CATALOGUE.items():
        page = await gateway.get(f"/problems/{code}")  # no Authorization: no data here
        assert page.status == 200, code
        assert page.content_type == "text/html"
        assert "script-src" not in page.headers["Content-Security-Policy"]
        html = await page.text()
        for text in (kind.title, kind.meaning, kind.fix, kind.retry, *kind.causes):
            # `names` in the catalogue become <code>names</code>; the words are all there.
            for piece in text.split("`"):
                assert str(escape(piece)) in html, (code, piece[:40])
        assert "`" not in html, code
        assert f"({kind.status})" in html

        answer = await gateway.get(f"/problems/{code}", headers=JSON)
        assert answer.status == 200 and answer.content_type == "application/json"
        assert await answer.json() == kind_document(kind)


@sqlite_only
async def test_an_unknown_code_is_a_not_found_problem(gateway: TestClient) -> None:
    for accept in ({}, JSON):
        answer = await gateway.get("/problems/no_such_code", headers=accept)
        assert answer.status == 404
        assert answer.content_type == "application/problem+json"
        doc = json.loads(await answer.read())
        assert doc["type"] == "/problems/not_found"
        assert "no_such_code" not in doc["detail"]  # the path is not echoed


@sqlite_only
async def test_a_refusals_type_leads_to_its_page(gateway: TestClient) -> None:
    refused = await gateway.post("/v1/decisions", json={})
    assert refused.status == 401
    doc = json.loads(await refused.read())
    assert doc["type"] == "/problems/unauthenticated"
    page = await gateway.get(doc["type"], headers=JSON)
    assert (await page.json())["status"] == 401

    wrong_method = await gateway.post("/problems/consent_required")
    assert wrong_method.status == 405 and "GET" in wrong_method.headers["Allow"]
    doc = json.loads(await wrong_method.read())
    assert doc["type"] == "/problems/method_not_allowed"
    assert (await gateway.get(doc["type"])).status == 200


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("text/html", False),
        ("application/json", True),
        ("application/json, text/html", False),  # a tie: HTML
        ("text/html;q=0.5, application/json", True),
        ("application/*", True),
        ("text/html, application/json;q=0.9", False),
        ("application/json;q=0", False),
        ("application/json;q=oops", False),
    ],
)
def test_content_negotiation(accept: str | None, json_wanted: bool) -> None:
    assert prefers_json(accept) is json_wanted


@sqlite_only
async def test_the_review_site_answers_a_wrong_method_with_405(gateway: TestClient) -> None:
    answer = await gateway.delete("/review/login", headers=JSON)
    assert answer.status == 405
    assert json.loads(await answer.read())["type"] == "/problems/method_not_allowed"
