"""The `action` entry of a person's act, built purely: who, which credential, what, to what,
when; free text only as a keyed hash, the subject only as its keyed reference; and the
recorder that refuses the act when its entry cannot be written."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.canonical import canonical_json
from gateway.crypto.subject_keys import LogKeys
from gateway.errors import LogUnavailableError
from gateway.log.actions import ActionLog, ActionNotRecorded, Person
from gateway.log.columns import columns_of, columns_of_bytes
from gateway.log.entries import ACTIONS, action_entry, row_of, target
from gateway.log.record import ENTRY_MEMBERS, EntryRecord

NOV = datetime(2026, 11, 24, 9, 30, 1, 234567, tzinfo=UTC)
DEC = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
SUBJECT = "CANARY-SUBJECT-6f1c2a7e"
TEXT = "ok"  # short and guessable: the hash must be keyed
KEYS = LogKeys(b"\x01" * 32)


def act(**over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "actor": "reviewer-alice",
        "credential": "token:kid-2026",
        "action": "suspend",
        "at": NOV,
        "keys": KEYS,
        "target": target("partner", "mekong-collections"),
        "partner": "mekong-collections",
        "text": TEXT,
    }
    return action_entry(**(values | over))


def test_an_action_entry_says_who_with_which_credential_what_on_what_when() -> None:
    entry = act()
    assert entry == {
        "v": 1,
        "kind": "action",
        "time": "2026-11-24T09:30:01.234Z",
        "disclosure_id": "",
        "actor": "reviewer-alice",
        "credential": "token:kid-2026",
        "action": "suspend",
        "target": "partner:mekong-collections",
        "partner": "mekong-collections",
        "text_hash": KEYS.text_hash(TEXT, NOV),
    }
    assert set(entry) <= set(ENTRY_MEMBERS)
    record = EntryRecord.parse(7, canonical_json(entry))
    assert (record.kind, record.actor, record.credential, record.action, record.target) == (
        "action",
        "reviewer-alice",
        "token:kid-2026",
        "suspend",
        "partner:mekong-collections",
    )
    assert record.text_hash == entry["text_hash"]


def test_the_text_is_only_a_keyed_hash_of_the_month() -> None:
    entry = act(text=TEXT)
    raw = canonical_json(entry)
    assert b'"ok"' not in raw
    # Not the plain hash anyone could compute from a guess, and not the same next month.
    assert entry["text_hash"] != hashlib.sha256(TEXT.encode()).hexdigest()
    assert entry["text_hash"] != KEYS.text_hash(TEXT, DEC)
    assert entry["text_hash"] != LogKeys(b"\x02" * 32).text_hash(TEXT, NOV)
    # No text, no hash.
    assert "text_hash" not in act(text=None)


def test_a_subject_is_written_only_as_its_keyed_reference() -> None:
    entry = act(action="read_subject_report", target=None, subject=SUBJECT, partner=None, text=None)
    ref = KEYS.subject_ref(SUBJECT, NOV)
    assert entry["target"] == f"subject:{ref}" and entry["subject_ref"] == ref
    assert SUBJECT.encode() not in canonical_json(entry)
    columns = columns_of(entry)
    assert columns.kind == "action" and columns.subject_ref == ref and columns.outcome is None


def test_the_row_of_an_action_entry_projects_to_its_search_columns() -> None:
    columns = columns_of_bytes(row_of(act()).entry)
    assert (columns.kind, columns.partner, columns.disclosure_id, columns.outcome) == (
        "action",
        "mekong-collections",
        "",
        None,
    )


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"action": "delete_everything"}, "not among"),
        ({"actor": ""}, "actor"),
        ({"credential": ""}, "credential"),
        ({"target": None}, "exactly one"),
        ({"subject": SUBJECT}, "exactly one"),
        ({"target": f"subject:{SUBJECT}"}, "not made by target()"),
        ({"target": "anything"}, "not made by target()"),
    ],
)
def test_what_an_action_entry_refuses(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        act(**over)


def test_targets_are_typed_and_never_a_subject() -> None:
    assert target("lawful_request", "LR-1") == "lawful_request:LR-1"
    assert target("log") == "log:"
    with pytest.raises(ValueError, match="target kind"):
        target("subject", SUBJECT)
    with pytest.raises(ValueError, match="target kind"):
        target("person", "x")


def test_the_vocabulary_names_the_acts_of_the_issue() -> None:
    assert {
        "suspend",
        "resume",
        "justify",
        "approve_lawful_request",
        "reject_lawful_request",
        "consent_given",
        "consent_withdrawn",
        "restrict",
        "erasure_requested",
        "read_subject_report",
        "search_by_subject",
        "export",
    } <= ACTIONS


async def test_the_recorder_waits_for_the_entry_and_refuses_the_act_without_it() -> None:
    written: list[Mapping[str, Any]] = []

    async def append(entry: Mapping[str, Any]) -> int:
        written.append(entry)
        return len(written) - 1

    actions = ActionLog(append, KEYS, lambda: NOV)
    who = Person("reviewer-bob", "password:reviewer-bob")
    assert await actions.record(who, "export", target=target("log")) == 0
    assert written[0]["actor"] == "reviewer-bob" and written[0]["time"].startswith("2026-11-24")

    async def broken(entry: Mapping[str, Any]) -> int:
        raise LogUnavailableError("database is down")

    with pytest.raises(ActionNotRecorded, match=r"the export was not done.*nothing was changed"):
        await ActionLog(broken, KEYS, lambda: NOV).record(who, "export", target=target("log"))


def test_the_credential_of_a_token_is_its_key_id_never_the_token() -> None:
    from gateway.callers.tokens import token_key_id

    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"idp-2026"}').rstrip(b"=").decode()
    assert token_key_id(f"{header}.e30.c2ln") == "idp-2026"
    for broken in ("", "garbage", "%%%.a.b", "e30.e30.e30", "W10.x.y"):  # {} and []
        assert token_key_id(broken) is None
