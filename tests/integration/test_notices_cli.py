"""`gateway notices list|retry` (issue #19 item 3): the outbox as a privacy team sees it
on the CLI — no personal value in the listing; a retry proven by the person's credential,
recorded as an action entry, sent and waited for."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from support.cli import run_cli
from support.credentials import PASSWORD, token_of, with_reviewer
from support.processes import free_port

from gateway.clock import utc_now
from gateway.config.model import load_config
from gateway.rights.outbox import Attempted, NoticeOutbox
from gateway.store.protected import open_protected_store, payload_sealing

SUBJECT = "6f1c2a7e-0000-4000-8000-0000000ac719"


@pytest.fixture
def root(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = with_reviewer(project, tmp_path, monkeypatch)
    # The partner is down: its file names a port nothing listens on (the shipped port may
    # have a sandbox of `make run` on it, on a developer's machine).
    partner = root / "partners" / "lanexang-insurance.toml"
    text = partner.read_text(encoding="utf-8")
    partner.write_text(
        text.replace("http://127.0.0.1:9103", f"http://127.0.0.1:{free_port()}"), "utf-8"
    )
    return root


run = run_cli


async def keep_one(root: Path) -> str:
    """A withdrawal notice whose first attempt failed, kept as the gateway keeps it."""
    config = load_config(root / "config.toml")
    store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
    try:
        outbox = NoticeOutbox(store, payload_sealing(store), utc_now)
        kept = await outbox.keep(
            kind="consent_withdrawn",
            partner="lanexang-insurance",
            operation="erasure",
            reference="CW-c-cli",
            payload={"subject": SUBJECT, "data": {"uuid": SUBJECT}, "officer": "customer-app"},
            first=Attempted(False, "d-first", "partner_unavailable"),
        )
        return kept.id
    finally:
        await store.close()


def test_list_shows_the_kept_notice_without_personal_data(root: Path) -> None:
    code, out, _ = run(root, "notices", "list")
    assert code == 0 and "no notice waiting" in out
    notice_id = asyncio.run(keep_one(root))
    code, out, err = run(root, "notices", "list", "--format", "json")
    assert code == 0, err
    [shown] = json.loads(out)
    assert shown["id"] == notice_id and shown["status"] == "pending"
    assert (shown["partner"], shown["kind"], shown["attempts"]) == (
        "lanexang-insurance",
        "consent_withdrawn",
        1,
    )
    assert shown["last_error"] == "partner_unavailable"
    code, text, _ = run(root, "notices", "list")
    code, table, _ = run(root, "notices", "list", "--format", "csv")
    assert [r["id"] for r in csv.DictReader(io.StringIO(table))] == [notice_id]
    for printed in (out, text, table):
        assert SUBJECT not in printed
    assert notice_id in text and "lanexang-insurance" in text


def test_retry_needs_a_credential_is_recorded_and_waits(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notice_id = asyncio.run(keep_one(root))
    code, _, err = run(root, "notices", "retry", "--as", "reviewer-carol")
    assert code != 0 and "--all" in err  # neither ids nor --all
    code, _, err = run(root, "notices", "retry", notice_id, "--as", "reviewer-carol")
    assert code != 0  # no password given
    monkeypatch.setenv("GATEWAY_PASSWORD", PASSWORD)
    # The shipped partner files point at sandboxes that are not running: still down.
    code, out, err = run(
        root, "notices", "retry", notice_id, "--as", "reviewer-carol", "--format", "json"
    )
    assert code == 1, err
    [tried] = json.loads(out)
    assert (tried["id"], tried["status"], tried["attempts"]) == (notice_id, "pending", 2)
    code, out, err = run(root, "log", "export", "--format", "json")
    entries = [json.loads(line) for line in out.splitlines()]
    [act] = [e for e in entries if e.get("action") == "retry_notice"]
    assert act["actor"] == "reviewer-carol" and act["target"] == f"notice:{notice_id}"
    assert act["credential"].startswith("password:")
    # The attempt was a disclosure of its own: intent and failed outcome, same reference.
    [intent] = [e for e in entries if e.get("legal_request_id") == "CW-c-cli"]
    assert intent["disclosure_id"] == tried["disclosure_id"] and intent["caller"] == "customer-app"
    [outcome] = [
        e
        for e in entries
        if e["kind"] == "outcome" and e["disclosure_id"] == intent["disclosure_id"]
    ]
    assert outcome["outcome"] == "failed" and outcome["problem"] == "partner_unavailable"


def test_consent_withdraw_with_the_subject_answers_the_notices(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "customer-app"))
    grant = ["--purpose", "service_provision", "--partner", "veriid"]
    code, out, err = run(
        root,
        "consent",
        "grant",
        "--subject",
        SUBJECT,
        *grant,
        "--policy-version",
        "2024-09-30",
        "--as",
        "customer-app",
    )
    assert code == 0, err
    consent_id = json.loads(out)["id"]
    code, out, err = run(
        root, "consent", "withdraw", consent_id, "--subject", "someone-else", "--as", "customer-app"
    )
    assert code != 0 and "is one of this subject's" in err
    code, out, err = run(
        root, "consent", "withdraw", consent_id, "--subject", SUBJECT, "--as", "customer-app"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["withdrawn_at"] is not None and answer["subject"] == SUBJECT
    # No disclosure under the consent yet: nobody to tell.
    assert answer["notices"]["reference"] == f"CW-{consent_id}"
    assert answer["notices"]["notices"] == [] == answer["notices"]["manual_follow_up"]
    code, out, err = run(root, "log", "export", "--format", "json")
    entries = [json.loads(line) for line in out.splitlines()]
    [act] = [e for e in entries if e.get("action") == "consent_withdrawn"]
    assert act["consent_id"] == consent_id and act["target"].startswith("subject:")
    # Without --subject: the same notices (the log names the partners), the act against
    # the consent; an unknown consent says so and exits 2.
    code, out, err = run(root, "consent", "withdraw", consent_id, "--as", "customer-app")
    assert code == 0, err
    assert "subject" not in json.loads(out) and json.loads(out)["notices"]["notices"] == []
    code, out, err = run(root, "consent", "withdraw", "c-unknown", "--as", "customer-app")
    assert code == 2 and "consent 'c-unknown': no consent with this id" in err


def test_a_rotation_of_the_at_rest_key_reseals_the_waiting_notices(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notice_id = asyncio.run(keep_one(root))
    code, out, err = run(root, "keys", "rotate-at-rest")
    assert code == 0, err
    (root / "keys" / "at-rest-1.key").unlink()  # as the rotation's message says one may
    monkeypatch.setenv("GATEWAY_PASSWORD", PASSWORD)
    code, out, err = run(
        root, "notices", "retry", notice_id, "--as", "reviewer-carol", "--format", "json"
    )
    [tried] = json.loads(out)
    # The payload opened under the new key: the attempt reached the (absent) partner.
    assert tried["last_error"] == "partner_unavailable" and tried["attempts"] == 2
