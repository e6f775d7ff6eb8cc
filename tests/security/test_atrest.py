"""Personal data at rest and the gateway's own copy (issue "Close the trust holes an
independent attack run found", items 5 and 11), on SQLite and PostgreSQL.

5. A database dump shows no subject id, free text or date of birth: subject ids are
   keyed references (subject lookup key), free text and profiles are sealed (AES-GCM,
   key id beside each ciphertext). Every lookup still works through the HTTP API; rows
   stored by a gateway of schema 5 are converted when the store is opened; a rotation
   re-seals every row, after which the old key can be deleted; the key files are
   refused when group/world readable.
11. An erasure removes the gateway's own copy — consent evidence, the date of birth —
   and keeps what protects the subject (restriction, a child's "under 14 until" marker,
   which keeps refusing consent and marketing disclosures) and the records the law or
   accountability needs; the answer says which. A rectification changes none of it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.sandboxes import SANDBOX_SECRETS

from gateway.cli import main as cli
from gateway.config.model import Config
from gateway.crypto.at_rest import AtRestKeys, is_sealed
from gateway.crypto.generate import add_at_rest_key, generate_missing
from gateway.crypto.subject_keys import key_file as subject_key_file
from gateway.disclosure.idempotency import request_digest
from gateway.errors import ConfigErrors
from gateway.ops.preflight import exposed_secret_problems, own_key_problems
from gateway.partners.model import Suspension
from gateway.policy.facts import Consent, SubjectFacts
from gateway.rights.subjects import birthday_at_minimum_age, profile_after_erasure
from gateway.sandbox import SandboxCluster
from gateway.store import open_store, sqlite_path
from gateway.store.protected import open_protected_store, protect_stored_rows
from gateway.store.records import JustificationRecord
from gateway.store.sqlite import MIGRATIONS
from gateway.web.app import create_app

if TYPE_CHECKING:
    from conftest import Backend

SUBJECT = "s-ATRESTSUBJ-1"
TEXT = "ATRESTTEXT"  # in every free text given to the gateway
CHILD_BORN = date.today() - timedelta(days=365 * 10)
NEEDLES = ("ATRESTSUBJ", TEXT, CHILD_BORN.isoformat())
PERSON = {"name": "N", "phone": "1", "uuid": "u-1", "email": "e@x"}
CONSENT = {
    "purposes": ["service_provision", "marketing"],
    "partners": ["lanexang-insurance", "adreach"],
    "policy_version": "2024-09-30",
    "method": "app",
    "evidence": f"paper form {TEXT}",
}
QUOTE = {
    "partner": "lanexang-insurance",
    "operation": "quote",
    "purpose": "service_provision",
    "legal_basis": "consent",
    "data": PERSON,
}
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# -- fixtures: the gateway against sandbox partners, on each store ----------------------


def storage_url(backend: Backend) -> str:
    return backend.url if backend.name == "postgresql" else f"sqlite:///{backend.root}/gateway.db"


@pytest.fixture
async def live(
    config: Config, backend: Backend, sandboxes: SandboxCluster
) -> AsyncIterator[TestClient]:
    app = create_app(
        replace(config, storage_url=storage_url(backend)),
        partners=sandboxes.partners,
        env=SANDBOX_SECRETS,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def dump(backend: Backend) -> dict[str, str]:
    """Every table as text; for SQLite also the raw file and its write-ahead log."""

    def show(value: Any) -> str:
        if isinstance(value, memoryview):
            value = bytes(value)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)

    tables: dict[str, str] = {}
    if backend.name == "sqlite":
        path = Path(sqlite_path(f"sqlite:///{backend.root}/gateway.db", backend.root))
        with sqlite3.connect(path) as conn:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
                tables[name] = "\n".join(" | ".join(show(c) for c in row) for row in rows)
        conn.close()
        for raw in (path, path.with_name(path.name + "-wal")):
            if raw.exists():
                tables[f"file:{raw.name}"] = raw.read_bytes().decode("utf-8", "replace")
        return tables
    assert backend.admin is not None
    names = await backend.admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", backend.schema
    )
    for (name,) in names:
        rows = await backend.admin.fetch(f'SELECT * FROM "{backend.schema}"."{name}"')
        tables[name] = "\n".join(" | ".join(show(c) for c in row.values()) for row in rows)
    return tables


def assert_nothing_in_clear(tables: dict[str, str], needles: tuple[str, ...] = NEEDLES) -> None:
    for name, text in tables.items():
        leaked = [n for n in needles if n in text]
        assert leaked == [], f"{name} holds {leaked} in clear"


# -- 5. nothing in clear, every lookup working --------------------------------------------


async def test_a_dump_shows_no_subject_text_or_birth_date_and_lookups_work(
    live: TestClient, backend: Backend, auth: Callable[[str], dict[str, str]]
) -> None:
    officer = auth("privacy-office")
    r = await live.post(
        "/v1/consents", json={**CONSENT, "subject": SUBJECT}, headers=auth("customer-app")
    )
    assert r.status == 201, await r.text()
    consent_id = (await r.json())["id"]
    for path, body in (
        (f"/v1/subjects/{SUBJECT}/restriction", {"restricted": False, "reason": f"n {TEXT}"}),
        (f"/v1/subjects/{SUBJECT}/profile", {"date_of_birth": CHILD_BORN.isoformat()}),
    ):
        r = await live.put(path, json=body, headers=officer)
        assert r.status == 200, await r.text()
    r = await live.post(
        "/v1/legal-requests",
        headers=officer,
        json={
            "authority": "Police",
            "reference": "CASE-9",
            "instrument": f"order {TEXT}",
            "subjects": [SUBJECT, "s-ATRESTSUBJ-2"],
            "partners": ["vientiane-police"],
        },
    )
    assert r.status == 201, await r.text()
    request_id = (await r.json())["id"]

    # Lookups: a subject's consents (the id shown is the one asked about), the request
    # with its subject list for reviewers, the profile's age rule.
    r = await live.get(f"/v1/subjects/{SUBJECT}/consents", headers=officer)
    [shown] = (await r.json())["consents"]
    assert (shown["id"], shown["subject"], shown["evidence"]) == (
        consent_id,
        SUBJECT,
        CONSENT["evidence"],
    )
    r = await live.get(f"/v1/legal-requests/{request_id}", headers=auth("reviewer-bob"))
    doc = await r.json()
    assert sorted(doc["subjects"]) == [SUBJECT, "s-ATRESTSUBJ-2"]
    assert doc["instrument"] == f"order {TEXT}"
    r = await live.post(
        "/v1/decisions", json={**QUOTE, "subject": SUBJECT}, headers=auth("sales-service")
    )
    assert any("age under" in reason for reason in (await r.json())["reasons"])
    # A lawful request covers its subjects (approved by two reviewers), no one else.
    for reviewer in ("reviewer-bob", "reviewer-alice"):
        await live.post(f"/v1/legal-requests/{request_id}/approve", headers=auth(reviewer))
    lawful = {
        "partner": "vientiane-police",
        "operation": "lawful_disclosure",
        "purpose": "safety_security",
        "legal_basis": "legal_obligation",
        "legal_request": request_id,
        "data": {"name": "N"},
    }
    for subject, covered in ((SUBJECT, True), ("s-ATRESTSUBJ-3", False)):
        r = await live.post(
            "/v1/decisions", json={**lawful, "subject": subject}, headers=auth("legal-desk")
        )
        decision = await r.json()
        refused = any("does not cover this subject" in x for x in decision["reasons"])
        assert refused is not covered, decision
    # A withdrawal (named by the consent's id) shows no subject: none is stored.
    r = await live.post(f"/v1/consents/{consent_id}/withdraw", headers=auth("customer-app"))
    assert r.status == 200 and "subject" not in await r.json()

    await live.close()
    assert_nothing_in_clear(await dump(backend))


async def test_a_restriction_stays_found_when_the_log_subject_keys_are_gone(
    backend: Backend, project_copy: Path
) -> None:
    """The lookup key is not one of the log's period keys, which `gateway log
    forget-before` destroys: a restriction and a child's profile stay findable."""
    keys_dir = project_copy / "keys"
    store = await open_protected_store(storage_url(backend), backend.root, keys_dir)
    try:
        await store.set_restriction(SUBJECT, True, "objection", T0)
        await store.set_profile(SUBJECT, f"date_of_birth:{CHILD_BORN}")
    finally:
        await store.close()
    subject_key_file(keys_dir).unlink()
    store = await open_protected_store(storage_url(backend), backend.root, keys_dir)
    try:
        facts = await store.subject_facts(SUBJECT, None)
    finally:
        await store.close()
    assert facts.restricted and facts.date_of_birth == CHILD_BORN


async def test_the_facts_of_a_disclosure_leave_a_consents_evidence_sealed(
    backend: Backend, project_copy: Path
) -> None:
    """decide() reads neither a consent's evidence nor its method: the facts read for every
    disclosure do not open them (two AES-GCM opens each); consents_for_subject does."""
    store = await open_protected_store(storage_url(backend), backend.root, project_copy / "keys")
    try:
        await store.add_consent(consent_of(SUBJECT, "c-facts", "lao-credit-bureau"))
        [fact] = (await store.subject_facts(SUBJECT, None)).consents
        [full] = await store.consents_for_subject(SUBJECT)
    finally:
        await store.close()
    assert fact.id == "c-facts" and fact.subject == SUBJECT
    assert (fact.evidence, fact.method) == ("", "")
    assert (full.evidence, full.method) == (f"evidence {TEXT}", "app")


# -- 5. stored rows of schema 5 are converted ---------------------------------------------


async def schema_5_store(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at today's schema 5 holding clear rows, as a gateway before this change
    left it."""
    from gateway.store import postgres, sqlite

    for module in (sqlite, postgres):
        monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:5])
    store = await open_store(storage_url(backend), backend.root)
    await store.close()
    monkeypatch.undo()
    rows = {
        # Clear text that merely looks sealed is clear text: it gets sealed like the rest.
        "consents": ("c-old", SUBJECT, f"sealed:ar1: evidence {TEXT}"),
        "subject": (SUBJECT, f"reason {TEXT}", CHILD_BORN),
        "legal": ("LR-old", f"instrument {TEXT}", [SUBJECT]),
        "body": json.dumps({"subject": SUBJECT}).encode(),
    }
    if backend.name == "sqlite":
        path = sqlite_path(storage_url(backend), backend.root)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(
                "INSERT INTO consents VALUES (?, ?, '[\"service_provision\"]', "
                "'[\"lanexang-insurance\"]', '[]', '[]', '2024-09-30', "
                "'2026-03-01T09:00:00.000000+00:00', NULL, NULL, 'app', ?)",
                rows["consents"],
            )
            conn.execute(
                "INSERT INTO subjects VALUES (?, 1, ?, '2026-03-01T09:00:00.000000+00:00', ?)",
                (*rows["subject"][:2], rows["subject"][2].isoformat()),
            )
            conn.execute(
                "INSERT INTO legal_requests VALUES (?, 'Police', 'R', ?, ?, "
                "'[\"vientiane-police\"]', '2026-03-01T09:00:00.000000+00:00', 'alice', "
                "'pending')",
                (*rows["legal"][:2], json.dumps(rows["legal"][2])),
            )
            conn.execute(
                "INSERT INTO idempotency_keys VALUES ('privacy-office', 'k-1', 'h', "
                "'2026-03-01T09:00:00.000000+00:00', 1, 200, '{}', ?)",
                (rows["body"],),
            )
            conn.execute(
                "INSERT INTO partner_suspensions VALUES ('adreach', ?, 'ops', "
                "'2026-03-01T09:00:00.000000+00:00')",
                (f"breach {TEXT}",),
            )
            conn.execute(
                "INSERT INTO justifications VALUES ('d-1', 'alice', ?, "
                "'2026-03-01T09:00:00.000000+00:00')",
                (f"emergency {TEXT}",),
            )
        conn.close()
        return
    admin, schema = backend.admin, backend.schema
    assert admin is not None
    await admin.execute(f'SET search_path = "{schema}"')
    try:
        await admin.execute(
            "INSERT INTO consents VALUES ($1, $2, '{service_provision}', "
            "'{lanexang-insurance}', '{}', '{}', '2024-09-30', $3, NULL, NULL, 'app', $4)",
            rows["consents"][0],
            rows["consents"][1],
            T0,
            rows["consents"][2],
        )
        await admin.execute(
            "INSERT INTO subjects VALUES ($1, true, $2, $3, $4)",
            rows["subject"][0],
            rows["subject"][1],
            T0,
            rows["subject"][2],
        )
        await admin.execute(
            "INSERT INTO legal_requests VALUES ($1, 'Police', 'R', $2, $3, "
            "'{vientiane-police}', $4, 'alice', 'pending')",
            *rows["legal"],
            T0,
        )
        await admin.execute(
            "INSERT INTO idempotency_keys VALUES ('privacy-office', 'k-1', 'h', $1, true, 200, "
            "'{}', $2)",
            T0,
            rows["body"],
        )
        await admin.execute(
            "INSERT INTO partner_suspensions VALUES ('adreach', $1, 'ops', $2)",
            f"breach {TEXT}",
            T0,
        )
        await admin.execute(
            "INSERT INTO justifications VALUES ('d-1', 'alice', $1, $2)", f"emergency {TEXT}", T0
        )
    finally:
        await admin.execute("RESET search_path")


async def test_rows_stored_before_are_converted_on_upgrade_and_still_found(
    backend: Backend, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    await schema_5_store(backend, monkeypatch)
    before = await dump(backend)
    assert "ATRESTSUBJ" in before["consents"]  # the dump does see clear values

    store = await open_protected_store(storage_url(backend), backend.root, config.keys_dir)
    try:
        [consent] = await store.consents_for_subject(SUBJECT)
        facts = await store.subject_facts(SUBJECT, "LR-old")
        request = await store.get_legal_request("LR-old")
        claim = await store.claim_idempotency("privacy-office", "k-1", "h")
        suspended = await store.partner_suspensions()
        justification = await store.get_justification("d-1")
        # A second start converts nothing more (idempotent), in small batches too.
        keys = AtRestKeys.load(config.keys_dir)
        assert await protect_stored_rows(store.inner, keys, batch=1) == 0  # type: ignore[attr-defined]
    finally:
        await store.close()

    assert (consent.subject, consent.evidence) == (SUBJECT, f"sealed:ar1: evidence {TEXT}")
    assert facts.restricted and facts.date_of_birth == CHILD_BORN
    assert facts.legal_requests["LR-old"].subjects == frozenset({SUBJECT})
    assert request is not None and request.subjects == frozenset({SUBJECT})
    assert request.instrument == f"instrument {TEXT}"
    assert claim.response is not None and SUBJECT in claim.response.body.decode()
    assert suspended["adreach"].reason == f"breach {TEXT}"
    assert justification is not None and justification.text == f"emergency {TEXT}"
    assert_nothing_in_clear(await dump(backend))


def test_db_upgrade_converts_the_rows_of_a_deployment(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The deployment's store is var/gateway.db; `dump` and the schema-5 writer read
    # <root>/gateway.db, so the root handed to them is var/.
    (project_copy / "var").mkdir(exist_ok=True)
    var: Any = SimpleNamespace(name="sqlite", root=project_copy / "var", admin=None)
    asyncio.run(schema_5_store(var, monkeypatch))
    assert cli.main(["--config", str(project_copy / "config.toml"), "db", "upgrade"]) == 0
    assert f"schema version {MIGRATIONS[-1].version}" in capsys.readouterr().out
    assert_nothing_in_clear(asyncio.run(dump(var)))  # the raw file too (secure_delete)


# -- 5. rotation ---------------------------------------------------------------------------


@pytest.fixture
def project_copy(project: Path, tmp_path: Path) -> Path:
    """The shipped project with keys of its own (a rotation must not touch the shared ones)."""
    root = tmp_path / "deployment"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var", "*.db*"))
    return root


async def test_a_rotation_reseals_every_row_and_the_old_key_can_go(
    backend: Backend, project_copy: Path
) -> None:
    keys_dir = project_copy / "keys"
    store = await open_protected_store(storage_url(backend), backend.root, keys_dir)
    try:
        await store.add_consent(consent_of(SUBJECT))
        await store.set_restriction(SUBJECT, True, f"reason {TEXT}", T0)
        await store.set_profile(SUBJECT, f"date_of_birth:{CHILD_BORN}")
        await store.suspend_partner(Suspension("adreach", f"breach {TEXT}", "ops", T0))
        await store.resume_partner("adreach", "ops", f"fixed {TEXT}", T0)
        await store.add_justification(JustificationRecord("d-1", "alice", f"why {TEXT}", T0))
    finally:
        await store.close()

    old = next(keys_dir.glob("at-rest-*.key"))
    new = add_at_rest_key(keys_dir)
    keys = AtRestKeys.load(keys_dir)
    raw = await open_store(storage_url(backend), backend.root)
    try:
        assert await protect_stored_rows(raw, keys) >= 6
    finally:
        await raw.close()
    tables = await dump(backend)
    for name in ("consents", "subjects", "partner_suspension_events", "justifications"):
        assert set(re.findall(r"sealed:(ar\d+):", tables[name])) == {keys.newest}, name

    old.unlink()  # the old key is no longer needed
    store = await open_protected_store(storage_url(backend), backend.root, keys_dir)
    try:
        [consent] = await store.consents_for_subject(SUBJECT)
        facts = await store.subject_facts(SUBJECT, None)
        history = await store.suspension_history("adreach")
        justification = await store.get_justification("d-1")
    finally:
        await store.close()
    assert consent.evidence == f"evidence {TEXT}" and facts.date_of_birth == CHILD_BORN
    assert [e.reason for e in history] == [f"fixed {TEXT}", f"breach {TEXT}"]
    assert justification is not None and justification.text == f"why {TEXT}"
    assert new.stat().st_mode & 0o777 == 0o600


async def test_a_start_without_a_key_still_in_use_is_refused_naming_it(
    backend: Backend, project_copy: Path
) -> None:
    keys_dir = project_copy / "keys"
    store = await open_protected_store(storage_url(backend), backend.root, keys_dir)
    try:
        await store.add_consent(consent_of(SUBJECT))
    finally:
        await store.close()
    add_at_rest_key(keys_dir)
    (keys_dir / "at-rest-1.key").unlink()  # deleted before the rotation re-sealed the rows
    with pytest.raises(ConfigErrors) as refused:
        await open_protected_store(storage_url(backend), backend.root, keys_dir)
    message = str(refused.value.errors[0])
    assert "'ar1'" in message and "restore that key file" in message
    assert TEXT not in message and SUBJECT not in message


def test_the_rotate_command_makes_a_key_and_reseals(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(project_copy / "config.toml")
    assert cli.main(["--config", config, "keys", "rotate-at-rest"]) == 0
    out = capsys.readouterr().out
    assert "at-rest-2.key" in out and "at-rest-1.key" in out
    assert cli.main(["--config", config, "keys", "rotate-at-rest"]) == 0
    assert "at-rest-3.key" in capsys.readouterr().out


async def test_the_protected_store_offers_every_method_of_the_port(store: Any) -> None:
    from gateway.store.base import Store
    from gateway.store.protected import ProtectedStore

    wrapped = ProtectedStore(store, AtRestKeys.generate())
    # Store is the union of the narrow ports: its members are theirs.
    members = {m for port in Store.__mro__ for m in vars(port) if not m.startswith("_")}
    assert len(members) > 40
    missing = [m for m in members if not callable(getattr(wrapped, m, None))]
    assert missing == []
    await wrapped.ping()  # one the adapter answers itself


def test_a_value_moved_to_another_column_or_altered_does_not_open() -> None:
    keys = AtRestKeys.generate()
    sealed = keys.seal(f"evidence {TEXT}", "consents.evidence")
    assert is_sealed(sealed) and TEXT not in sealed
    with pytest.raises(Exception, match="does not open"):
        keys.open(sealed, "subjects.restriction_reason")
    altered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(Exception, match="does not open"):
        keys.open(altered, "consents.evidence")
    other = AtRestKeys(keys.lookup, {"ar2": bytes(32)})
    with pytest.raises(Exception, match="not in the keys directory"):
        other.open(sealed, "consents.evidence")
    # A keyed reference is stable under one key, and another key gives another one.
    assert keys.ref(SUBJECT) == keys.ref(SUBJECT) != AtRestKeys.generate().ref(SUBJECT)


# -- 5. key files: made by generate, refused when exposed or missing ----------------------


def test_at_rest_keys_are_generated_private_and_refused_when_exposed(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    created = generate_missing(keys_dir, None)
    for name in ("subject-lookup.key", "at-rest-1.key"):
        assert keys_dir / name in created
        assert (keys_dir / name).stat().st_mode & 0o777 == 0o600
    assert own_key_problems(keys_dir, "origin") == []
    for name in ("subject-lookup.key", "at-rest-1.key"):
        (keys_dir / name).chmod(0o644)
        [problem] = exposed_secret_problems(keys_dir, [])
        assert "chmod 600" in str(problem) and name in str(problem)
        (keys_dir / name).chmod(0o600)
    (keys_dir / "at-rest-1.key").unlink()
    problems = own_key_problems(keys_dir, "origin")
    assert any("gateway keys generate" in str(p) for p in problems)
    (keys_dir / "subject-lookup.key").write_text("short\n")
    assert own_key_problems(keys_dir, "origin")


# -- 11. erasure removes the gateway's own copy -------------------------------------------


def consent_of(
    subject: str, consent_id: str = "c-1", partner: str = "lanexang-insurance"
) -> Consent:
    """A consent of `subject` to service provision by `partner`, its evidence naming TEXT."""

    return Consent(
        consent_id,
        subject,
        frozenset({"service_provision"}),
        frozenset({partner}),
        frozenset(),
        frozenset(),
        "2024-09-30",
        T0,
        method="app",
        evidence=f"evidence {TEXT}",
    )


@pytest.mark.parametrize(
    "born, kept",
    [
        (CHILD_BORN, True),  # a child: "under 14 until" its birthday at 14
        (date(1990, 4, 2), False),  # an adult: the date goes, nothing is kept
    ],
)
async def test_erasure_removes_the_gateways_copy_and_keeps_what_protects(
    live: TestClient,
    backend: Backend,
    auth: Callable[[str], dict[str, str]],
    born: date,
    kept: bool,
) -> None:
    officer = auth("privacy-office")
    subject = "s-ATRESTSUBJ-erase"
    r = await live.post(
        "/v1/consents", json={**CONSENT, "subject": subject}, headers=auth("customer-app")
    )
    assert r.status == 201
    await live.put(
        f"/v1/subjects/{subject}/restriction",
        json={"restricted": True, "reason": f"objection {TEXT}"},
        headers=officer,
    )
    await live.put(
        f"/v1/subjects/{subject}/profile", json={"date_of_birth": born.isoformat()}, headers=officer
    )

    r = await live.post(
        f"/v1/subjects/{subject}/erasure", json={"kind": "rectification"}, headers=officer
    )
    assert r.status == 200 and "gateway_copy" not in await r.json()
    r = await live.get(f"/v1/subjects/{subject}/consents", headers=officer)
    assert (await r.json())["consents"][0]["evidence"] == CONSENT["evidence"]

    r = await live.post(
        f"/v1/subjects/{subject}/erasure",
        json={"kind": "erasure"},
        headers={**officer, "Idempotency-Key": "erase-1"},
    )
    body = await r.text()
    assert r.status == 200, body
    assert subject not in body and TEXT not in body and born.isoformat() not in body
    copy = json.loads(body)["gateway_copy"]
    removed = {i["item"]: i for i in copy["removed"]}
    kept_items = {i["item"]: i for i in copy["kept"]}
    assert removed["consent_evidence"]["count"] == 1 and "date_of_birth" in removed
    assert kept_items["consent_records"]["withdrawn_now"] == 1
    assert {"restriction", "disclosure_log", "lawful_requests"} <= set(kept_items)
    assert all(i["why"] for i in copy["kept"])
    if kept:
        marker = kept_items["under_age_marker"]
        assert marker["until"] == birthday_at_minimum_age(born).isoformat()
    else:
        assert "under_age_marker" not in kept_items
    # A replay answers the same (from a sealed stored answer).
    again = await live.post(
        f"/v1/subjects/{subject}/erasure",
        json={"kind": "erasure"},
        headers={**officer, "Idempotency-Key": "erase-1"},
    )
    assert await again.text() == body

    r = await live.get(f"/v1/subjects/{subject}/consents", headers=officer)
    [consent] = (await r.json())["consents"]
    assert consent["evidence"] == "" and consent["withdrawn_at"] is not None
    # The restriction stays; the marker keeps refusing consent and marketing until 14.
    quote = await live.post(
        "/v1/decisions", json={**QUOTE, "subject": subject}, headers=auth("sales-service")
    )
    reasons = (await quote.json())["reasons"]
    assert any("restricted processing" in reason for reason in reasons), reasons
    assert any("age under" in reason for reason in reasons) is kept, reasons
    await live.close()
    # Nor the request's plain hash: a SHA-256 of a body and path naming a guessable id.
    digest = request_digest({"kind": "erasure"}, scope=f"POST /v1/subjects/{subject}/erasure")
    assert_nothing_in_clear(await dump(backend), ("ATRESTSUBJ", TEXT, born.isoformat(), digest))


@pytest.mark.parametrize(
    "facts, today, expected",
    [
        (SubjectFacts(date_of_birth=date(2016, 5, 1)), date(2026, 1, 1), date(2030, 5, 1)),
        (SubjectFacts(date_of_birth=date(2012, 2, 29)), date(2025, 1, 1), date(2026, 3, 1)),
        (SubjectFacts(date_of_birth=date(2000, 1, 1)), date(2026, 1, 1), None),
        (SubjectFacts(under_age_until=date(2027, 1, 1)), date(2026, 1, 1), date(2027, 1, 1)),
        (SubjectFacts(under_age_until=date(2026, 1, 1)), date(2026, 1, 1), None),  # the day came
        (SubjectFacts(), date(2026, 1, 1), None),
    ],
)
def test_what_an_erasure_leaves_of_a_profile(
    facts: SubjectFacts, today: date, expected: date | None
) -> None:
    profile, until = profile_after_erasure(facts, today)
    assert until == expected
    assert (profile is None) is (expected is None)
    assert profile is None or "date_of_birth" not in profile
