"""Attacks on who a subject is, what a consent says, and how often a notice goes out
(issue "Close the trust holes an independent attack run found", items 3, 7 and 9), on
SQLite and PostgreSQL.

3. One person, many spellings: an objection set on one subject id must not be bypassed
   by another spelling of it (spaces, invisible characters, Unicode forms, full width,
   homoglyphs). Every entry point that takes a subject — HTTP API, review page form,
   CLI — refuses any id outside the one grammar (gateway/subject_id.py) with a 400 (exit
   2) that states the grammar and never repeats the id.
7. Consents with impossible values: an unknown partner, a policy version later than the
   one in force, an expiry before the time obtained, a time obtained in the future —
   refused at registration (HTTP and CLI), and so never honoured.
9. Erasure is idempotent: the same Idempotency-Key replays the first answer and sends no
   notice again; another body (or subject, or a disclosure's key) under it is a 409; every
   answer names the partners earlier requests already notified.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import reviewers, sign_in
from support.sandboxes import SANDBOX_SECRETS

from gateway.cli import main as cli
from gateway.config.model import Caller, Config
from gateway.sandbox import SandboxCluster
from gateway.subject_id import GRAMMAR
from gateway.web.app import create_app

if TYPE_CHECKING:
    from conftest import Backend

NEEDLE = "RIANT"  # in every variant: an answer that repeated one would show it
VARIANTS = {
    "leading space": " s-VARIANT-1",
    "trailing space": "s-VARIANT-1 ",
    "trailing newline": "s-VARIANT-1\n",
    "no-break space": "s-VARIANT-1\u00a0",
    "zero-width space": "s-VARIANT\u200b-1",
    "byte order mark": "\ufeffs-VARIANT-1",
    "soft hyphen": "s-VARIANT\u00ad-1",
    "full width": "ｓ-VARIANT-１",
    "decomposed é (NFD)": "s-VARIANTe\u0301-1",
    "composed é (NFC)": "s-VARIANT\u00e9-1",
    "Cyrillic A": "s-V\u0410RIANT-1",
    "too long": "s-VARIANT-" + "1" * 200,
}
# The restricted subject, and the spellings of it an attacker would try.
RESTRICTED = "s-restricted-1"
SPELLINGS = (
    " s-restricted-1",
    "s-restricted-1 ",
    "s-restricted-1\t",
    "s-restricted-1\u00a0",
    "s-restricted\u200b-1",
    "\u2060s-restricted-1",
    "ｓ-restricted-1",
    "s\u2010restricted-1",
)
PERSON = {
    "name": "N",
    "date_of_birth": "1990-04-02",
    "phone": "1",
    "uuid": "u-1",
    "amount": 5,
    "currency": "LAK",
    "email": "e@x",
}
CREDIT = {
    "partner": "lao-credit-bureau",
    "operation": "credit_check",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "data": PERSON,
}
CHARGE = {
    "partner": "bcel-payments",
    "operation": "charge",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "data": PERSON,
}
CONSENT = {
    "purposes": ["service_provision"],
    "partners": ["lanexang-insurance"],
    "policy_version": "2024-09-30",
    "method": "app",
}
BOTH = "rights-and-sales"
QUOTE = {
    "partner": "lanexang-insurance",
    "operation": "quote",
    "purpose": "service_provision",
    "legal_basis": "consent",
    "data": PERSON,
}


# -- the gateway against sandbox partners, on each store -------------------------------


@pytest.fixture
async def live(
    config: Config, backend: Backend, sandboxes: SandboxCluster
) -> AsyncIterator[TestClient]:
    url = backend.url if backend.name == "postgresql" else f"sqlite:///{backend.root}/gateway.db"
    # A caller that both discloses and sends rights notices: its Idempotency-Keys are one
    # namespace for both kinds of request.
    both = Caller(
        BOTH,
        frozenset({"discloser", "rights_officer"}),
        frozenset({"lao-credit-bureau"}),
        frozenset({"service_provision"}),
    )
    app = create_app(
        replace(
            config, storage_url=url, reviewers=reviewers(), callers={**config.callers, BOTH: both}
        ),
        partners=sandboxes.partners,
        env=SANDBOX_SECRETS,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def refused_as_invalid(response: Any, where: str) -> dict[str, Any]:
    """A 400 invalid_request problem that states the grammar and repeats no id."""
    body = await response.text()
    assert response.status == 400, f"{where}: {response.status} {body[:300]}"
    assert response.headers["Content-Type"].startswith("application/problem+json"), where
    assert NEEDLE not in body and "restricted-1" not in body, f"{where} echoed the id: {body}"
    doc = json.loads(body)
    assert doc["type"].endswith("/invalid_request"), where
    return doc


def path_of(subject: str) -> str:
    return quote(subject, safe="")


# -- 3. one person, many spellings -------------------------------------------------------


async def test_an_objection_is_not_bypassed_by_another_spelling(live, auth) -> None:
    r = await live.put(
        f"/v1/subjects/{RESTRICTED}/restriction",
        json={"restricted": True, "reason": "objection"},
        headers=auth("privacy-office"),
    )
    assert r.status == 200, await r.text()
    exact = await live.post(
        "/v1/decisions", json={**CREDIT, "subject": RESTRICTED}, headers=auth("sales-service")
    )
    assert (await exact.json())["problem"] == "subject_restricted"
    for spelling in SPELLINGS:
        for path in ("/v1/decisions", "/v1/disclosures"):
            r = await live.post(
                path, json={**CREDIT, "subject": spelling}, headers=auth("sales-service")
            )
            doc = await refused_as_invalid(r, f"{path} {spelling!r}")
            assert GRAMMAR in doc["detail"]


async def test_every_entry_point_refuses_every_other_spelling(live, auth) -> None:
    legal = {
        "authority": "A",
        "reference": "R",
        "instrument": "I",
        "partners": ["vientiane-police"],
    }
    for name, variant in VARIANTS.items():
        segment = path_of(variant)
        calls: list[tuple[str, str, Any, str]] = [
            ("POST", "/v1/decisions", {**CREDIT, "subject": variant}, "sales-service"),
            ("POST", "/v1/disclosures", {**CREDIT, "subject": variant}, "sales-service"),
            ("POST", "/v1/consents", {**CONSENT, "subject": variant}, "customer-app"),
            (
                "POST",
                "/v1/legal-requests",
                {**legal, "subjects": ["s-1", variant]},
                "reviewer-alice",
            ),
            ("GET", f"/v1/subjects/{segment}/consents", None, "privacy-office"),
            ("PUT", f"/v1/subjects/{segment}/restriction", {"restricted": True}, "privacy-office"),
            (
                "PUT",
                f"/v1/subjects/{segment}/profile",
                {"date_of_birth": "2015-01-01"},
                "privacy-office",
            ),
            ("GET", f"/v1/subjects/{segment}/disclosures", None, "privacy-office"),
            ("GET", f"/v1/subjects/{segment}/disclosures?format=csv", None, "reviewer-alice"),
            ("POST", f"/v1/subjects/{segment}/erasure", {"kind": "erasure"}, "privacy-office"),
            (
                "POST",
                f"/v1/subjects/{segment}/erasure",
                {"kind": "rectification"},
                "privacy-office",
            ),
        ]
        for method, path, body, caller in calls:
            r = await live.request(method, path, json=body, headers=auth(caller))
            doc = await refused_as_invalid(r, f"{name}: {method} {path}")
            assert GRAMMAR in doc["detail"], doc["detail"]
    # Nothing was recorded under any spelling.
    r = await live.get("/v1/legal-requests", headers=auth("reviewer-alice"))
    assert (await r.json())["legal_requests"] == []


async def test_ids_in_use_today_pass_every_entry_point(live, auth) -> None:
    for subject in (
        "6f1c2a7e-0000-4000-8000-00000000dddd",
        "customer@example.com",
        "urn:company:42",
        "A_b.C-d",
        "x" * 200,
    ):
        segment = path_of(subject)
        r = await live.post(
            "/v1/consents", json={**CONSENT, "subject": subject}, headers=auth("customer-app")
        )
        assert r.status == 201, await r.text()
        r = await live.get(f"/v1/subjects/{segment}/consents", headers=auth("privacy-office"))
        assert [c["subject"] for c in (await r.json())["consents"]] == [subject]
        r = await live.post(
            "/v1/decisions", json={**QUOTE, "subject": subject}, headers=auth("sales-service")
        )
        assert (await r.json())["allowed"] is True
        r = await live.put(
            f"/v1/subjects/{segment}/restriction",
            json={"restricted": True},
            headers=auth("privacy-office"),
        )
        assert r.status == 200
        r = await live.post(
            "/v1/decisions", json={**QUOTE, "subject": subject}, headers=auth("sales-service")
        )
        assert (await r.json())["problem"] == "subject_restricted"
        for path in ("disclosures", "profile"):
            method = "GET" if path == "disclosures" else "PUT"
            body = None if method == "GET" else {"date_of_birth": "1990-01-01"}
            r = await live.request(
                method, f"/v1/subjects/{segment}/{path}", json=body, headers=auth("privacy-office")
            )
            assert r.status == 200, (path, await r.text())


async def test_the_review_search_form_refuses_other_spellings(live) -> None:
    csrf = await sign_in(live, "alice")
    r = await live.post(
        "/review/search", allow_redirects=False, data={"csrf": csrf, "subject": "s-1"}
    )
    assert r.status == 303  # a valid id: the filtered list
    for name, variant in VARIANTS.items():
        r = await live.post(
            "/review/search", allow_redirects=False, data={"csrf": csrf, "subject": variant}
        )
        text = await r.text()
        assert r.status == 400, f"{name}: {r.status}"
        assert NEEDLE not in text and "subject id" in text, name


def run_cli(project: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli.main(["--config", str(project / "config.toml"), *argv])
    except SystemExit as exit_:  # argparse refuses the argument itself
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_cli_refuses_other_spellings_at_every_subject_argument(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, variant in VARIANTS.items():
        body = tmp_path / "body.json"
        body.write_text(json.dumps({**CREDIT, "subject": variant}), encoding="utf-8")
        facts = tmp_path / "facts.json"
        facts.write_text(
            json.dumps(
                {
                    **CREDIT,
                    "subject": "s-1",
                    "facts": {
                        "consents": [
                            {**CONSENT, "subject": variant, "obtained_at": "2026-01-01T00:00:00Z"}
                        ]
                    },
                }
            ),
            encoding="utf-8",
        )
        commands = [
            (
                "consent",
                "grant",
                "--subject",
                variant,
                "--purpose",
                "service_provision",
                "--partner",
                "lao-credit-bureau",
                "--policy-version",
                "2024-09-30",
                "--as",
                "customer-app",
            ),
            ("consent", "list", variant),
            ("log", "search", "--subject", variant),
            ("report", "subject", variant),
            ("report", "subject", variant, "--format", "csv"),
            (
                "legal-request",
                "create",
                "--authority",
                "A",
                "--reference",
                "R",
                "--instrument",
                "I",
                "--subject",
                "s-1",
                "--subject",
                variant,
                "--partner",
                "vientiane-police",
                "--as",
                "reviewer-alice",
            ),
            ("decide", str(body)),
            ("decide", str(facts)),
        ]
        for argv in commands:
            code, output = run_cli(project, *argv, capsys=capsys)
            assert code == 2, f"{name}: gateway {' '.join(argv[:2])} exited {code}: {output}"
            assert GRAMMAR in output, f"{name}: {argv[:2]}: {output}"
            assert NEEDLE not in output, f"{name}: {argv[:2]} echoed the id: {output}"


# -- 7. consents with impossible values ------------------------------------------------


async def test_consents_with_impossible_values_are_refused_and_never_honoured(live, auth) -> None:
    subject = "s-impossible-1"
    impossible = {
        "unknown partner": {"partners": ["no-such-partner"]},
        "unknown partner beside a known one": {"partners": ["lanexang-insurance", "nope-x"]},
        "partner in another case": {"partners": ["LANEXANG-INSURANCE"]},
        "unknown category": {"partners": [], "partner_categories": ["no-such-category"]},
        "future policy version": {"policy_version": "2099-01-01"},
        "next day's policy version": {"policy_version": "2024-10-01"},
        "policy version no date": {"policy_version": "2024-02-30"},
        "expiry before obtained": {
            "obtained_at": "2026-01-02T00:00:00Z",
            "expires_at": "2026-01-01T00:00:00Z",
        },
        "expiry equal to obtained": {
            "obtained_at": "2026-01-02T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z",
        },
        "expiry before now's default": {"expires_at": "2020-01-01T00:00:00Z"},
        "obtained in the future": {"obtained_at": "2099-01-01T00:00:00Z"},
    }
    for name, change in impossible.items():
        r = await live.post(
            "/v1/consents",
            json={**CONSENT, "subject": subject, **change},
            headers=auth("customer-app"),
        )
        body = await r.text()
        assert r.status == 400, f"{name}: {r.status} {body}"
        detail = json.loads(body)["detail"]
        assert "no-such" not in detail and "nope-x" not in detail and "2099" not in detail, name
        if "partner" in name:
            assert "lanexang-insurance" in detail  # what would pass
    r = await live.get(f"/v1/subjects/{subject}/consents", headers=auth("privacy-office"))
    assert (await r.json())["consents"] == []
    r = await live.post(
        "/v1/decisions", json={**QUOTE, "subject": subject}, headers=auth("sales-service")
    )
    assert (await r.json())["problem"] == "consent_required"
    # The version in force passes, and an older one is recorded and refused when deciding.
    for version, problem in (("2024-09-30", None), ("2023-01-01", "policy_not_in_force")):
        other = f"{subject}-{version}"
        r = await live.post(
            "/v1/consents",
            json={**CONSENT, "subject": other, "policy_version": version},
            headers=auth("customer-app"),
        )
        assert r.status == 201, await r.text()
        r = await live.post(
            "/v1/decisions", json={**QUOTE, "subject": other}, headers=auth("sales-service")
        )
        assert (await r.json())["problem"] == problem


def test_the_cli_refuses_consents_with_impossible_values(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.credentials import token_of

    monkeypatch.setenv("GATEWAY_TOKEN", token_of(project, "customer-app"))
    base = (
        "consent",
        "grant",
        "--subject",
        "s-cli-1",
        "--purpose",
        "service_provision",
        "--as",
        "customer-app",
    )
    for extra in (
        ("--partner", "no-such-partner", "--policy-version", "2024-09-30"),
        ("--partner", "veriid", "--policy-version", "2099-01-01"),
        (
            "--partner",
            "veriid",
            "--policy-version",
            "2024-09-30",
            "--expires-at",
            "2000-01-01T00:00:00Z",
        ),
    ):
        code, output = run_cli(project, *base, *extra, capsys=capsys)
        assert code == 2 and "invalid_request" in output, output
        assert "no-such" not in output and "2099" not in output, output
    code, output = run_cli(project, "consent", "list", "s-cli-1", capsys=capsys)
    assert code == 0 and json.loads(output) == []


# -- 9. erasure is idempotent ------------------------------------------------------------


async def disclose_to_two(live: TestClient, auth: Callable, subject: str) -> None:
    for caller, body in (("sales-service", CREDIT), ("payments-service", CHARGE)):
        r = await live.post(
            "/v1/disclosures", json={**body, "subject": subject}, headers=auth(caller)
        )
        assert r.status < 300, await r.text()


def notices_received(sandboxes: SandboxCluster) -> int:
    return sum(
        1 for p in sandboxes.partners for x in sandboxes.received(p) if x.operation == "erasure"
    )


async def test_erasure_with_the_same_key_sends_every_notice_once(live, sandboxes, auth) -> None:
    subject = "s-erase-1"
    await disclose_to_two(live, auth, subject)
    officer = {**auth("privacy-office"), "Idempotency-Key": "erase-s-erase-1"}
    path = f"/v1/subjects/{subject}/erasure"
    first = await live.post(path, json={"kind": "erasure"}, headers=officer)
    assert first.status == 200, await first.text()
    answer = await first.read()
    doc = json.loads(answer)
    assert {n["partner"] for n in doc["notices"]} == {"lao-credit-bureau", "bcel-payments"}
    assert "Idempotency-Replayed" not in first.headers
    assert notices_received(sandboxes) == 2

    # The same key and body, again and concurrently: the first answer, no new notice.
    repeats = [await live.post(path, json={"kind": "erasure"}, headers=officer)]
    repeats += await asyncio.gather(
        *(live.post(path, json={"kind": "erasure"}, headers=officer) for _ in range(3))
    )
    for again in repeats:
        assert again.status == 200
        assert again.headers.get("Idempotency-Replayed") == "true"
        assert await again.read() == answer
    assert notices_received(sandboxes) == 2
    assert doc["notified_before"] == []

    # The same key for something else: another kind, other data, another subject, and a
    # disclosure — each a 409, nothing sent.
    await disclose_to_two(live, auth, "s-erase-2")
    sent_before = sum(len(sandboxes.received(p)) for p in sandboxes.partners)
    others: list[tuple[str, Any]] = [
        (path, {"kind": "rectification"}),
        (path, {"kind": "erasure", "data": {"uuid": "u-1"}}),
        (path, {}),
        ("/v1/subjects/s-erase-2/erasure", {"kind": "erasure"}),
    ]
    for other_path, body in others:
        r = await live.post(other_path, json=body, headers=officer)
        assert r.status == 409, (other_path, body, await r.text())
        assert (await r.json())["type"].endswith("/conflict")
    assert sum(len(sandboxes.received(p)) for p in sandboxes.partners) == sent_before
    # A new key is a new request.
    r = await live.post(
        "/v1/subjects/s-erase-2/erasure",
        json={"kind": "erasure"},
        headers={**auth("privacy-office"), "Idempotency-Key": "other-key"},
    )
    assert r.status == 200
    assert notices_received(sandboxes) == 4


async def test_one_key_never_replays_across_disclosures_and_erasures(live, sandboxes, auth) -> None:
    subject = "s-erase-3"
    await disclose_to_two(live, auth, subject)
    key = {**auth(BOTH), "Idempotency-Key": "shared-key-1"}
    r = await live.post("/v1/disclosures", json={**CREDIT, "subject": subject}, headers=key)
    assert r.status < 300, await r.text()
    received = sum(len(sandboxes.received(p)) for p in sandboxes.partners)
    for body in ({"kind": "erasure"}, {**CREDIT, "subject": subject}):
        r = await live.post(f"/v1/subjects/{subject}/erasure", json=body, headers=key)
        assert r.status == 409, (body, await r.text())
    # ...and the other way round.
    key = {**auth(BOTH), "Idempotency-Key": "shared-key-2"}
    r = await live.post(f"/v1/subjects/{subject}/erasure", json={}, headers=key)
    assert r.status == 200, await r.text()
    assert notices_received(sandboxes) == 2
    r = await live.post("/v1/disclosures", json={**CREDIT, "subject": subject}, headers=key)
    assert r.status == 409
    after = sum(len(sandboxes.received(p)) for p in sandboxes.partners)
    assert after == received + 2  # the two notices, nothing else


async def test_every_erasure_answer_names_the_partners_notified_before(
    live, sandboxes, auth
) -> None:
    subject = "s-erase-4"
    await disclose_to_two(live, auth, subject)
    path = f"/v1/subjects/{subject}/erasure"
    first = await (
        await live.post(path, json={"kind": "erasure"}, headers=auth("privacy-office"))
    ).json()
    assert first["notified_before"] == []
    sent = {n["partner"]: n["disclosure_id"] for n in first["notices"]}
    # Without a key a second request is a new request: it is sent, and says who had one.
    second = await (
        await live.post(path, json={"kind": "rectification"}, headers=auth("privacy-office"))
    ).json()
    assert {n["partner"] for n in second["notices"]} == set(sent)
    before = {n["partner"]: n for n in second["notified_before"]}
    assert {p: n["disclosure_id"] for p, n in before.items()} == sent
    assert {n["reference"] for n in before.values()} == {first["reference"]}
    assert all(n["outcome"] == "sent" and n["time"] for n in before.values())
    third = await (await live.post(path, json={}, headers=auth("privacy-office"))).json()
    assert len(third["notified_before"]) == 4
    assert [n["reference"] for n in third["notified_before"]].count(second["reference"]) == 2
    # Another subject's notices are not this subject's.
    await disclose_to_two(live, auth, "s-erase-5")
    other = await (
        await live.post("/v1/subjects/s-erase-5/erasure", json={}, headers=auth("privacy-office"))
    ).json()
    assert other["notified_before"] == []
