"""Every human act on the record (issue #18 item 5), on SQLite and on PostgreSQL: each act
over the API and the review backend is an `action` entry of the disclosure log, found by
its index (the log search by kind, then GET /v1/log/entries/{index}) with who acted and
the credential that proved it; no free text and no subject id is in any entry; a table's
text edited after the act fails `log verify`'s check, naming the table and the entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from browser.review_support import reviewers, sign_in
from e2e.conftest import granted

from gateway.canonical import timestamp
from gateway.config.model import Config
from gateway.crypto.subject_keys import LogKeys
from gateway.log.actions import check_action_texts
from gateway.log.columns import checked_search
from gateway.store import sqlite_path
from gateway.store.records import LogQuery
from gateway.store.statements import numbered
from gateway.web.app import create_app
from gateway.web.keys import ACTIONS, GATEWAY, LOG, STORE
from gateway.web.review.backend import REVIEW_BACKEND

SUBJECT = "6f1c2a7e-0000-4000-8000-0000000ac710"
OTHER_SUBJECT = "6f1c2a7e-0000-4000-8000-0000000ac712"
TEXT_NEEDLE = "TXTCANARY"
PARTNER = "mekong-collections"
REQUEST = {
    "authority": "Vientiane Capital Police",
    "reference": f"VCP/2026/{TEXT_NEEDLE}",
    "instrument": "court order 17/2026",
    "subjects": [SUBJECT],
    "partners": ["vientiane-police"],
    "received_at": "2026-11-20T09:00:00Z",
}

Auth = Callable[[str], dict[str, str]]


async def action_entries(client: TestClient) -> list[dict[str, Any]]:
    """The action entries, each read back by its index over the API."""
    store = client.server.app[STORE]
    found = await checked_search(store, LogQuery(kind="action", limit=1000))
    return [entry.data | {"index": entry.index} for entry in found]


async def by_index(client: TestClient, auth: Auth, index: int) -> dict[str, Any]:
    r = await client.get(f"/v1/log/entries/{index}", headers=auth("reviewer-alice"))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["index"] == index
    entry: dict[str, Any] = body["entry"]
    return entry


async def the_action(client: TestClient, auth: Auth, action: str, **expect: Any) -> dict[str, Any]:
    """The one action entry of `action` whose members include `expect`, via its index."""
    matching = [
        e
        for e in await action_entries(client)
        if e["action"] == action and all(e.get(k) == v for k, v in expect.items())
    ]
    assert len(matching) == 1, (action, expect, matching)
    entry = await by_index(client, auth, matching[0]["index"])
    assert entry["kind"] == "action" and entry["action"] == action
    return entry | {"index": matching[0]["index"]}


async def emergency_intent(client: TestClient, disclosure_id: str) -> None:
    """An emergency disclosure's intent in the log (what the review queue lists)."""
    await client.server.app[LOG].append(
        {
            "v": 1,
            "kind": "intent",
            "time": timestamp(datetime.now(UTC)),
            "disclosure_id": disclosure_id,
            "caller": "payments-service",
            "partner": PARTNER,
            "legal_basis": "vital_interest",
            "purpose": "service_provision",
            "needs_review": True,
        }
    )


async def test_suspend_and_resume_are_action_entries(gateway: TestClient, auth: Auth) -> None:
    reason = f"INC-7 {TEXT_NEEDLE} breach reported"
    r = await gateway.post(
        f"/v1/partners/{PARTNER}/suspend", json={"reason": reason}, headers=auth("reviewer-alice")
    )
    assert r.status == 200, await r.text()
    r = await gateway.post(f"/v1/partners/{PARTNER}/resume", headers=auth("reviewer-bob"))
    assert r.status == 200, await r.text()

    suspended = await the_action(gateway, auth, "suspend")
    assert suspended["actor"] == "reviewer-alice"
    assert suspended["credential"].startswith("token:") and len(suspended["credential"]) > 6
    assert suspended["target"] == f"partner:{PARTNER}" and suspended["partner"] == PARTNER
    assert len(suspended["text_hash"]) == 64
    resumed = await the_action(gateway, auth, "resume")
    assert resumed["actor"] == "reviewer-bob" and resumed["index"] > suspended["index"]

    # Suspending a suspended partner changes nothing and records nothing.
    await gateway.post(
        f"/v1/partners/{PARTNER}/suspend", json={"reason": "a"}, headers=auth("reviewer-alice")
    )
    await gateway.post(
        f"/v1/partners/{PARTNER}/suspend", json={"reason": "b"}, headers=auth("reviewer-bob")
    )
    assert [e["action"] for e in await action_entries(gateway)] == ["suspend", "resume", "suspend"]

    report = await check_action_texts(gateway.server.app[STORE], _keys(gateway))
    assert report.problems == [] and report.checked == 3


async def test_lawful_request_register_and_approve(
    gateway: TestClient, auth: Auth, backend: Any
) -> None:
    r = await gateway.post("/v1/legal-requests", json=REQUEST, headers=auth("privacy-office"))
    assert r.status == 201, await r.text()
    lr = (await r.json())["id"]
    for reviewer in ("reviewer-alice", "reviewer-bob"):
        r = await gateway.post(f"/v1/legal-requests/{lr}/approve", headers=auth(reviewer))
        assert r.status == 200, await r.text()
    # A refused approval (a repeat) is no act: no entry.
    again = await gateway.post(f"/v1/legal-requests/{lr}/approve", headers=auth("reviewer-bob"))
    assert again.status == 409

    registered = await the_action(gateway, auth, "register_lawful_request")
    assert registered["actor"] == "privacy-office" and registered["legal_request_id"] == lr
    assert len(registered["text_hash"]) == 64  # the authority, reference and instrument
    for reviewer in ("reviewer-alice", "reviewer-bob"):
        approved = await the_action(gateway, auth, "approve_lawful_request", actor=reviewer)
        assert approved["target"] == f"lawful_request:{lr}"
        assert approved["credential"].startswith("token:")

    store, keys = gateway.server.app[STORE], _keys(gateway)
    assert (await check_action_texts(store, keys)).problems == []
    if backend.name != "sqlite":
        return
    with sqlite3.connect(_sqlite_file(gateway)) as db:
        db.execute("UPDATE legal_requests SET reference='VCP/2026/9999' WHERE id=?", (lr,))
    [(index, message)] = (await check_action_texts(store, keys)).problems
    assert index == registered["index"] and "legal_requests" in message


async def test_lawful_request_rejection_and_its_reason_are_checked(
    gateway: TestClient, auth: Auth, backend: Any
) -> None:
    r = await gateway.post("/v1/legal-requests", json=REQUEST, headers=auth("privacy-office"))
    lr = (await r.json())["id"]
    reason = f"no court seal {TEXT_NEEDLE}"
    r = await gateway.post(
        f"/v1/legal-requests/{lr}/reject", json={"reason": reason}, headers=auth("reviewer-bob")
    )
    assert r.status == 200, await r.text()
    rejected = await the_action(gateway, auth, "reject_lawful_request")
    assert rejected["actor"] == "reviewer-bob" and rejected["legal_request_id"] == lr
    assert rejected["target"] == f"lawful_request:{lr}" and len(rejected["text_hash"]) == 64
    assert TEXT_NEEDLE not in str(rejected)

    store, keys = gateway.server.app[STORE], _keys(gateway)
    report = await check_action_texts(store, keys)
    assert report.problems == [] and report.checked == 2  # registration and rejection
    [(sealed,)] = await rows_of(
        gateway, backend, "SELECT reason FROM lawful_request_rejections WHERE request_id = ?", lr
    )
    assert sealed != reason  # sealed at rest
    await edit_row(
        gateway,
        backend,
        "UPDATE lawful_request_rejections SET reason = 'edited' WHERE request_id = ?",
        lr,
    )
    [(index, message)] = (await check_action_texts(store, keys)).problems
    assert index == rejected["index"] and "lawful_request_rejections" in message
    assert TEXT_NEEDLE not in message


async def test_a_restriction_reason_and_state_are_checked(
    gateway: TestClient, auth: Auth, backend: Any
) -> None:
    reasons = {SUBJECT: f"objection {TEXT_NEEDLE}", OTHER_SUBJECT: "a court's order"}
    for subject, reason in reasons.items():
        r = await gateway.put(
            f"/v1/subjects/{subject}/restriction",
            json={"restricted": True, "reason": reason},
            headers=auth("privacy-office"),
        )
        assert r.status == 200, await r.text()
    r = await gateway.put(
        f"/v1/subjects/{OTHER_SUBJECT}/restriction",
        json={"restricted": False, "reason": "order lifted"},
        headers=auth("privacy-office"),
    )
    assert r.status == 200, await r.text()
    store, keys = gateway.server.app[STORE], _keys(gateway)
    report = await check_action_texts(store, keys)
    # Two rows, each checked against the entry of its time; the superseded entry has none.
    assert report.problems == [] and report.checked == 2

    ref_in_log = keys.subject_ref(SUBJECT, datetime.now(UTC))
    restricted = await the_action(gateway, auth, "restrict", subject_ref=ref_in_log)
    rows = await rows_of(
        gateway, backend, "SELECT subject, restriction_reason, restricted FROM subjects"
    )
    [(ref, sealed)] = [(row[0], row[1]) for row in rows if row[2]]
    [other] = [row[1] for row in rows if not row[2]]
    # The reason of the other subject's row (sealed, so it still opens) copied over.
    await edit_row(
        gateway, backend, "UPDATE subjects SET restriction_reason = ? WHERE subject = ?", other, ref
    )
    [(index, message)] = (await check_action_texts(store, keys)).problems
    assert index == restricted["index"] and "table subjects" in message
    assert f"entr(y/ies) {restricted['index']}" in message
    assert TEXT_NEEDLE not in message and SUBJECT not in message
    # The reason put back but the restriction lifted behind the gateway's back: caught too.
    await edit_row(
        gateway,
        backend,
        "UPDATE subjects SET restriction_reason = ?, restricted = ? WHERE subject = ?",
        sealed,
        False,
        ref,
    )
    [(index, message)] = (await check_action_texts(store, keys)).problems
    assert index == restricted["index"] and "lift_restriction" in message


async def test_justification_is_an_action_entry_and_its_text_is_checked(
    gateway: TestClient, auth: Auth, backend: Any
) -> None:
    app = gateway.server.app
    for disclosure_id in ("d-act-1", "d-act-2"):
        await emergency_intent(gateway, disclosure_id)
    review = app[REVIEW_BACKEND]
    await review.justify("d-act-1", "alice", f"ambulance {TEXT_NEEDLE} one", "password:alice")
    await review.justify("d-act-2", "bob", f"ambulance {TEXT_NEEDLE} two", "password:bob")

    justified = await the_action(gateway, auth, "justify", disclosure_id="d-act-1")
    assert justified["actor"] == "alice" and justified["credential"] == "password:alice"
    assert justified["target"] == "disclosure:d-act-1" and len(justified["text_hash"]) == 64

    keys = _keys(gateway)
    assert (await check_action_texts(app[STORE], keys)).problems == []
    if backend.name != "sqlite":
        return
    # Swap the two sealed texts behind the gateway's back: each still opens, neither matches.
    path = _sqlite_file(gateway)
    with sqlite3.connect(path) as db:
        (one,) = db.execute(
            "SELECT text FROM justifications WHERE disclosure_id='d-act-1'"
        ).fetchone()
        (two,) = db.execute(
            "SELECT text FROM justifications WHERE disclosure_id='d-act-2'"
        ).fetchone()
        db.execute("UPDATE justifications SET text=? WHERE disclosure_id='d-act-1'", (two,))
    assert one != two
    report = await check_action_texts(app[STORE], keys)
    assert [index for index, _ in report.problems] == [justified["index"]]
    message = report.problems[0][1]
    assert "justifications" in message and f"entry {justified['index']}" in message
    assert TEXT_NEEDLE not in message
    # The review page's integrity status says so too, after its next audit.
    await review.audit()
    status = await review.integrity()
    assert status.ok is False and "justifications" in status.detail


async def test_subject_acts_and_reads_name_the_subject_only_by_reference(
    gateway: TestClient, auth: Auth
) -> None:
    headers = auth("customer-app")
    evidence = f"form {TEXT_NEEDLE}"
    consent_id = await granted(gateway, headers, SUBJECT, ["veriid"], evidence=evidence)
    r = await gateway.post(f"/v1/consents/{consent_id}/withdraw", headers=auth("customer-app"))
    assert r.status == 200, await r.text()
    r = await gateway.put(
        f"/v1/subjects/{SUBJECT}/restriction",
        json={"restricted": True, "reason": f"objection {TEXT_NEEDLE}"},
        headers=auth("privacy-office"),
    )
    assert r.status == 200, await r.text()
    r = await gateway.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("reviewer-alice"))
    assert r.status == 200, await r.text()
    r = await gateway.post(
        f"/v1/subjects/{SUBJECT}/erasure", json={"kind": "erasure"}, headers=auth("privacy-office")
    )
    assert r.status < 300, await r.text()

    keys = _keys(gateway)
    ref = keys.subject_ref(SUBJECT, datetime.now(UTC))
    given = await the_action(gateway, auth, "consent_given")
    assert given["actor"] == "customer-app" and given["consent_id"] == consent_id
    assert given["target"] == f"subject:{ref}" and given["subject_ref"] == ref
    withdrawn = await the_action(gateway, auth, "consent_withdrawn")
    assert withdrawn["target"] == f"consent:{consent_id}"
    restricted = await the_action(gateway, auth, "restrict")
    assert restricted["actor"] == "privacy-office" and "text_hash" in restricted
    report = await (
        await gateway.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("reviewer-bob"))
    ).json()
    # The report lists the acts concerning the subject, its own read included.
    assert [a["action"] for a in report["actions"]] == [
        "consent_given",
        "restrict",
        "read_subject_report",
        "erasure_requested",
        "read_subject_report",
    ]
    assert report["actions"][-1]["actor"] == "reviewer-bob"
    read = await the_action(gateway, auth, "read_subject_report", actor="reviewer-alice")
    assert read["actor"] == "reviewer-alice" and read["subject_ref"] == ref
    erasure = await the_action(gateway, auth, "erasure_requested")
    assert erasure["actor"] == "privacy-office" and erasure["credential"].startswith("token:")

    # The canary: no entry holds the subject id or any text a person typed.
    rows = await gateway.server.app[STORE].read_log_records(0, 1000)
    for _, raw, _ in rows:
        assert SUBJECT.encode() not in raw and TEXT_NEEDLE.encode() not in raw
        assert b"Bearer" not in raw and b"eyJ" not in raw  # no token either


async def test_an_act_whose_entry_cannot_be_written_is_not_done(
    gateway: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.errors import LogUnavailableError

    async def broken(entry: Any) -> int:
        raise LogUnavailableError("the database is unavailable")

    monkeypatch.setattr(gateway.server.app[LOG], "append", broken)
    monkeypatch.setattr(gateway.server.app[ACTIONS], "_append", broken)
    r = await gateway.post(
        f"/v1/partners/{PARTNER}/suspend", json={"reason": "x"}, headers=auth("reviewer-alice")
    )
    assert r.status == 503
    body = await r.json(content_type=None)
    assert body["type"].endswith("/log_unavailable") and "nothing was changed" in body["detail"]
    assert await gateway.server.app[STORE].partner_suspensions() == {}


def _keys(client: TestClient) -> LogKeys:
    return client.server.app[GATEWAY].log_keys


def _sqlite_file(client: TestClient) -> str:
    config = client.server.app[GATEWAY].config
    return str(sqlite_path(config.storage_url, config.root))


async def rows_of(client: TestClient, backend: Any, sql: str, *params: Any) -> list[Any]:
    """The rows `sql` (``?`` placeholders) reads behind the gateway's back, either database."""
    if backend.name == "sqlite":
        with sqlite3.connect(_sqlite_file(client)) as db:
            return db.execute(sql, params).fetchall()
    await backend.admin.execute(f'SET search_path = "{backend.schema}"')
    return [tuple(row) for row in await backend.admin.fetch(numbered(sql), *params)]


async def edit_row(client: TestClient, backend: Any, sql: str, *params: Any) -> None:
    """Run `sql` (``?`` placeholders) behind the gateway's back, on either database."""
    if backend.name == "sqlite":
        with sqlite3.connect(_sqlite_file(client)) as db:
            db.execute(sql, params)
        return
    await backend.admin.execute(f'SET search_path = "{backend.schema}"')
    await backend.admin.execute(numbered(sql), *params)


signed_in = sign_in


async def test_the_review_site_records_and_shows_acts(tmp_config: Config, auth: Auth) -> None:
    config = replace(tmp_config, reviewers=reviewers())
    client = TestClient(TestServer(create_app(config, env={})))
    await client.start_server()
    try:
        await emergency_intent(client, "d-act-page")
        csrf = await signed_in(client, "alice")
        r = await client.post(
            "/review/queue/d-act-page/justify",
            data={"csrf": csrf, "justification": f"cardiac arrest {TEXT_NEEDLE}"},
            allow_redirects=False,
        )
        assert r.status == 303, await r.text()
        justified = await the_action(client, auth, "justify", disclosure_id="d-act-page")
        assert justified["actor"] == "alice" and justified["credential"] == "password:alice"

        # A search by subject is a read of personal scope: recorded, then shown with the
        # subject's other acts (a report read over the API) below its disclosures.
        r = await client.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("reviewer-bob"))
        assert r.status == 200
        r = await client.post("/review/search", data={"csrf": csrf, "subject": SUBJECT})
        assert r.status == 200, await r.text()
        page = await r.text()
        assert "Acts and reads concerning this subject" in page
        assert "read_subject_report" in page and "search_by_subject" in page
        searched = await the_action(client, auth, "search_by_subject")
        assert searched["actor"] == "alice"

        r = await client.get("/review/actions?actor=alice")
        assert r.status == 200
        listing = await r.text()
        assert f'<td class="num">{justified["index"]}</td>' in listing
        assert 'title="justify">Justify</span>' in listing and "password:alice" in listing
        assert 'title="read_subject_report"' not in listing  # bob's, filtered out
        assert TEXT_NEEDLE not in listing and SUBJECT not in listing
        # The CSV download: the same filter, every page, newest first, codes as codes.
        r = await client.get("/review/actions.csv?actor=alice")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        text = await r.text()
        lines = text.splitlines()
        assert lines[0] == "index,time,actor,credential,action,target,text_hash"
        indexes = [int(line.split(",")[0]) for line in lines[1:]]
        assert indexes == sorted(indexes, reverse=True) and justified["index"] in indexes
        assert all(line.split(",")[2] == "alice" for line in lines[1:])
        assert TEXT_NEEDLE not in text and SUBJECT not in text
        r = await client.get("/review/actions?action=nonsense")
        assert r.status == 400
    finally:
        await client.close()
