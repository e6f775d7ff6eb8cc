"""Issue #18 item 5 through the CLI: a suspension, a lawful-request approval and a consent
recorded by `gateway …` commands are `action` entries with the credential that proved
the person (`password:<id>`, `token:<kid>`); `gateway log verify` checks the tables'
free text against the entries' hashes and fails, naming the table and the entry, when a
suspension's reason was edited in the database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.cli import run_cli
from support.credentials import PASSWORD, token_of, with_reviewer

PARTNER = "mekong-collections"
SUBJECT = "6f1c2a7e-0000-4000-8000-0000000ac711"


@pytest.fixture
def root(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return with_reviewer(project, tmp_path, monkeypatch)


run = run_cli


def exported(root: Path) -> list[dict[str, object]]:
    code, out, err = run(root, "log", "export", "--format", "json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def actions(root: Path) -> list[dict[str, object]]:
    """The action entries other than the exports' own (each export is one)."""
    return [e for e in exported(root) if e["kind"] == "action" and e["action"] != "export"]


def database(root: Path) -> Path:
    found = list(root.rglob("*.db"))
    assert len(found) == 1, found
    return found[0]


def test_cli_acts_are_action_entries_and_verify_checks_their_text(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_PASSWORD", PASSWORD)
    reason = "INC-9 TXTCANARY breach"
    code, _, err = run(
        root, "partners", "suspend", PARTNER, "--reason", reason, "--as", "reviewer-carol"
    )
    assert code == 0, err
    monkeypatch.delenv("GATEWAY_PASSWORD")
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "customer-app"))
    code, _, err = run(
        root,
        "consent",
        "grant",
        "--subject",
        SUBJECT,
        "--purpose",
        "service_provision",
        "--partner",
        "veriid",
        "--policy-version",
        "2024-09-30",
        "--as",
        "customer-app",
    )
    assert code == 0, err

    found = actions(root)
    assert [e["action"] for e in found] == ["suspend", "consent_given"]
    suspended, consent = found
    assert suspended["actor"] == "reviewer-carol"
    assert suspended["credential"] == "password:reviewer-carol"
    assert suspended["target"] == f"partner:{PARTNER}" and isinstance(suspended["index"], int)
    assert str(consent["credential"]).startswith("token:") and consent["actor"] == "customer-app"
    for entry in exported(root):
        text = json.dumps(entry)
        assert "TXTCANARY" not in text and SUBJECT not in text

    code, out, err = run(root, "log", "verify")
    assert code == 0, out + err
    assert "1 action text(s) match their entries" in err

    code, out, err = run(root, "log", "actions", "--actor", "reviewer-carol", "--format", "json")
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["action"] == "suspend" and listed["index"] == suspended["index"]
    code, out, err = run(root, "log", "actions")
    assert code == 0 and "consent_given" in out and "password:reviewer-carol" in out

    # A suspension's reason rewritten in the database (the sealed reason of another
    # event, so it still opens): verify names the table and the entry.
    monkeypatch.delenv("GATEWAY_TOKEN")
    monkeypatch.setenv("GATEWAY_PASSWORD", PASSWORD)
    code, _, err = run(
        root, "partners", "resume", PARTNER, "--reason", "fixed", "--as", "reviewer-carol"
    )
    assert code == 0, err
    with sqlite3.connect(database(root)) as db:
        rows = db.execute(
            "SELECT seq, reason FROM partner_suspension_events ORDER BY seq"
        ).fetchall()
        assert len(rows) == 2
        db.execute(
            "UPDATE partner_suspension_events SET reason=? WHERE seq=?", (rows[1][1], rows[0][0])
        )
    code, out, err = run(root, "log", "verify")
    assert code == 1, out + err
    assert f"action entry {suspended['index']}" in out and "partner_suspension_events" in out
    assert f"first bad index: {suspended['index']}" in out
    assert "TXTCANARY" not in out + err


def test_rows_written_before_action_entries_are_counted_not_failed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A suspension written by the store alone (as a 0.2.0 gateway did): no entry.
    import asyncio
    from datetime import UTC, datetime

    from gateway.config.model import load_config
    from gateway.partners.model import Suspension
    from gateway.store.protected import open_protected_store

    config = load_config(root / "config.toml")

    async def old_style() -> None:
        store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
        try:
            await store.suspend_partner(
                Suspension(PARTNER, "old", "reviewer-bob", datetime.now(UTC))
            )
        finally:
            await store.close()

    asyncio.run(old_style())
    code, out, err = run(root, "log", "verify")
    assert code == 0, out + err
    assert "1 row(s) predate action entries" in err


def test_cli_reads_of_personal_scope_are_recorded(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(root, "report", "subject", SUBJECT)
    assert code == 0, err
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "privacy-office"))
    code, _, err = run(root, "log", "search", "--subject", SUBJECT, "--as", "privacy-office")
    assert code == 0, err
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-bob"))
    code, _, err = run(root, "log", "search", "--subject", SUBJECT, "--as", "privacy-office")
    assert code == 2 and "nothing was changed" in err  # a wrong credential reads nothing

    found = exported(root)  # the log as it was when asked: this export's entry comes next
    read, searched = (e for e in found if e["kind"] == "action")
    assert read["action"] == "read_subject_report" and read["credential"] == "host-shell"
    assert str(read["actor"]).startswith("host:")
    assert searched["action"] == "search_by_subject" and searched["actor"] == "privacy-office"
    assert str(searched["credential"]).startswith("token:")
    export = exported(root)[-1]
    assert export["action"] == "export" and export["target"] == "log:"
    assert export["index"] == len(found)
    assert all(SUBJECT not in json.dumps(e) for e in found)


def test_verify_fails_on_an_edited_rejection_reason_or_restriction_reason(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 11's rejection rows and the subjects' restriction reasons are checked by
    `gateway log verify` like every other act's text: edited in the database, exit 1."""
    import asyncio
    from datetime import UTC, datetime

    from support.cli import legal_request_create

    from gateway.config.model import load_config
    from gateway.crypto.subject_keys import LogKeys
    from gateway.log.actions import ActionLog, Person, direct_append
    from gateway.store.protected import open_protected_store

    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "privacy-office"))
    code, out, err = run(root, *legal_request_create("R-1", "privacy-office", "--quiet"))
    assert code == 0, err
    request_id = out.strip()
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-bob"))
    code, _, err = run(
        root, "legal-request", "reject", request_id, "--reason", "no seal", "--as", "reviewer-bob"
    )
    assert code == 0, err

    # A restriction as PUT /v1/subjects/{id}/restriction records it: the entry, then the row.
    config = load_config(root / "config.toml")

    async def restrict() -> None:
        store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
        try:
            now = datetime.now(UTC)
            log = ActionLog(direct_append(store), LogKeys.load(config.keys_dir), lambda: now)
            person = Person("privacy-office", "token:test")
            await log.record(person, "restrict", at=now, subject=SUBJECT, text="objection")
            await store.set_restriction(SUBJECT, True, "objection", now)
        finally:
            await store.close()

    asyncio.run(restrict())
    code, out, err = run(root, "log", "verify")
    assert code == 0, out + err
    assert "3 action text(s) match their entries" in err  # registration, rejection, restriction

    with sqlite3.connect(database(root)) as db:
        db.execute("UPDATE lawful_request_rejections SET reason = 'a softer reason'")
    code, out, err = run(root, "log", "verify")
    assert code == 1, out + err
    assert "table lawful_request_rejections" in out and f"lawful_request:{request_id}" in out

    with sqlite3.connect(database(root)) as db:
        db.execute("UPDATE subjects SET restricted = 0")
    code, out, err = run(root, "log", "verify")
    assert code == 1, out + err
    assert "table subjects" in out and SUBJECT not in out + err


def test_a_person_clears_a_kept_witness_alarm_with_their_credential(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gateway witness alarm list|clear`: the alarm the store keeps (schema 11) is cleared
    only by a proven reviewer, as a `clear_witness_alarm` entry naming witness and sizes."""
    import asyncio
    from datetime import UTC, datetime

    from gateway.config.model import load_config
    from gateway.store.protected import open_protected_store
    from gateway.store.records import WitnessAlarm

    config = load_config(root / "config.toml")
    reason = "witness w1: it answered 409: it has cosigned 6; the log has 2 entries"

    async def raised() -> None:
        store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
        try:
            await store.raise_witness_alarm(WitnessAlarm("w1", 6, 2, reason, datetime.now(UTC)))
        finally:
            await store.close()

    asyncio.run(raised())
    code, out, err = run(root, "witness", "alarm", "list")
    assert code == 0 and "w1  witness at 6, log at 2" in out and reason in out, out + err
    # Like every listing, --format json|csv (for a monitoring script).
    code, out, err = run(root, "witness", "alarm", "list", "--format", "json")
    assert code == 0, out + err
    [listed] = json.loads(out)
    assert (listed["witness"], listed["witness_size"], listed["log_size"]) == ("w1", 6, 2)
    code, out, _ = run(root, "witness", "alarm", "list", "--format", "csv")
    assert out.splitlines()[0] == "witness,witness_size,log_size,raised_at,reason"

    code, out, err = run(root, "witness", "alarm", "clear", "w1", "--as", "reviewer-carol")
    assert code == 2 and "w1" in run(root, "witness", "alarm", "list")[1], out + err
    monkeypatch.setenv("GATEWAY_PASSWORD", PASSWORD)
    code, out, err = run(root, "witness", "alarm", "clear", "w1", "--as", "reviewer-carol")
    assert code == 0, out + err
    assert "cleared the rollback alarm of w1 (witness at 6, log at 2)" in out
    code, out, _ = run(root, "witness", "alarm", "list")
    assert code == 0 and out.strip() == "no rollback alarm"
    [entry] = [e for e in actions(root) if e["action"] == "clear_witness_alarm"]
    assert entry["actor"] == "reviewer-carol" and entry["credential"] == "password:reviewer-carol"
    assert entry["target"] == "witness:w1"
    assert entry["counts"] == {"witness_size": 6, "log_size": 2}

    code, out, err = run(root, "witness", "alarm", "clear", "w1", "--as", "reviewer-carol")
    assert code == 2 and "no rollback alarm is kept for witness 'w1'" in err
