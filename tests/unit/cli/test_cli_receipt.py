"""`gateway receipt verify`: three files and no config — exit 0 and one `ok:` line for a
receipt that holds; exit 1 and one `FAILED: <reason>:` line for one hash changed, a
cosignature removed below the quorum, a checkpoint of another log, the entry changed or of
another index; exit 2 for input it cannot use. With `--outcome` and `--partner-key`, the
partner's acknowledgement of the same disclosure: `acknowledged by …`, or `FAILED:
acknowledgement: …` (none recorded, recorded invalid, forged, another disclosure's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import OKPKey
from support.receipts import (
    ENTRIES,
    ORIGIN,
    OTHER_LOG,
    W1,
    b64,
    policy_text,
    receipt,
    served,
)

from gateway.cli.main import main
from gateway.crypto.acknowledgement import received_sha256, sign_acknowledgement
from gateway.log.entries import outcome_entry


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder without config.toml: the command must not need one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.txt").write_text(policy_text())
    (tmp_path / "entry.json").write_text(served(5))
    (tmp_path / "r.tlog-proof").write_text(receipt(5))
    return tmp_path


def verify(*args: str) -> int:
    return main(["receipt", "verify", *args])


def run(
    capsys: pytest.CaptureFixture[str], receipt_file: str = "r.tlog-proof", **files: str
) -> tuple[int, str, str]:
    code = verify(
        receipt_file,
        "--policy",
        files.get("policy", "policy.txt"),
        "--entry",
        files.get("entry", "entry.json"),
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_a_receipt_that_holds(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 0
    assert out == (
        f"ok: entry 5 of {ORIGIN} is in the tree of size 13, cosigned by w1, w2 (quorum both met)\n"
    )


def test_one_hash_changed(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = receipt(5).split("\n")
    lines[2] = b64(bytes(32))
    (folder / "bad.tlog-proof").write_text("\n".join(lines))
    code, out, _ = run(capsys, "bad.tlog-proof")
    assert code == 1
    assert out.startswith("FAILED: inclusion: entry 5 is not proven in the tree of size 13")
    assert out.count("\n") == 1


def test_a_cosignature_removed_below_quorum(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "one.tlog-proof").write_text(receipt(5, witnesses=(("w1.example", W1),)))
    code, out, _ = run(capsys, "one.tlog-proof")
    assert code == 1
    assert out == "FAILED: quorum not met: cosigned by w1; quorum 'both' needs 2 of [w1, w2]\n"


def test_a_checkpoint_from_another_log(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = receipt(5, origin="other.example/log", log_key=OTHER_LOG)
    (folder / "other.tlog-proof").write_text(other)
    code, out, _ = run(capsys, "other.tlog-proof")
    assert code == 1
    assert out.startswith(
        "FAILED: log signature: the checkpoint is from another log: origin 'other.example/log'"
    )


def test_the_entry_changed_or_of_another_index(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "changed.json").write_text(json.dumps(dict(ENTRIES[5], caller="x")))
    code, out, _ = run(capsys, entry="changed.json")
    assert code == 1 and out.startswith("FAILED: inclusion: ")
    (folder / "six.json").write_text(served(6))
    code, out, _ = run(capsys, entry="six.json")
    assert code == 1 and out.startswith("FAILED: entry index mismatch: ")


def test_malformed_receipt(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "junk.tlog-proof").write_text("hello\n")
    code, out, _ = run(capsys, "junk.tlog-proof")
    assert code == 1 and out.startswith("FAILED: malformed receipt: first line is 'hello'")


@pytest.mark.parametrize(
    "files, says",
    [
        ({"policy": "missing.txt"}, "missing.txt"),
        ({"entry": "missing.json"}, "cannot read the entry"),
        ({"entry": "r.tlog-proof"}, "the entry is not JSON"),
        ({"policy": "nolog.txt"}, "no 'log' line"),
    ],
)
def test_unusable_input_exits_2(
    folder: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], says: str
) -> None:
    (folder / "nolog.txt").write_text("quorum none\n")
    code, out, err = run(capsys, **files)
    assert code == 2 and out == ""
    assert says in err


# -- the partner's acknowledgement (--outcome, --partner-key) ----------------------------

PARTNER_KEY = OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
AT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def outcome(ack: tuple[str, str | None] | None, disclosure_id: str = "d-5") -> str:
    entry = outcome_entry(
        disclosure_id=disclosure_id,
        outcome="sent",
        at=AT,
        partner="p-1",
        partner_status=201,
        ack=ack,
    )
    return json.dumps({"index": 6, "leaf_hash": None, "entry": entry})


def signed(disclosure_id: str = "d-5", key: OKPKey = PARTNER_KEY) -> str:
    """An acknowledgement signed by ``key`` under the partner key's kid."""
    return sign_acknowledgement(
        key, disclosure_id=disclosure_id, received=b"the.jwe", received_at=AT, kid=PARTNER_KEY.kid
    )


def run_ack(capsys: pytest.CaptureFixture[str], outcome_text: str) -> tuple[int, str, str]:
    Path("outcome.json").write_text(outcome_text)
    Path("partner.jwk.json").write_text(json.dumps(PARTNER_KEY.as_dict(private=False)))
    code = verify(
        "r.tlog-proof",
        "--policy",
        "policy.txt",
        "--entry",
        "entry.json",
        "--outcome",
        "outcome.json",
        "--partner-key",
        "partner.jwk.json",
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_the_receipt_shows_the_partners_acknowledgement(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_ack(capsys, outcome((signed(), None)))
    assert code == 0
    first, second = out.splitlines()
    assert first.startswith("ok: entry 5 of ")
    assert second.startswith(
        f"acknowledged by p-1 (received_sha256 {received_sha256(b'the.jwe')}, "
        f"received_at 2026-12-07T15:00:00.000Z, Ed25519 key {PARTNER_KEY.kid})"
    )


@pytest.mark.parametrize(
    "ack, disclosure_id, says",
    [
        (None, "d-5", "no acknowledgement recorded: the outcome of d-5 is 'sent' with no 'ack'"),
        (("invalid", "wrong_hash"), "d-5", "not acknowledged (wrong_hash): "),
        (("missing", "missing"), "d-5", "not acknowledged (missing): "),
        ("forged", "d-5", "not acknowledged (bad_signature): "),
        ("signed", "d-6", "the outcome entry is of disclosure d-6, the receipt's entry of d-5"),
        ("other-disclosure", "d-5", "not acknowledged (wrong_disclosure): "),
    ],
)
def test_an_acknowledgement_that_does_not_hold(
    folder: Path, capsys: pytest.CaptureFixture[str], ack: Any, disclosure_id: str, says: str
) -> None:
    other_key = OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
    tokens = {
        "forged": (signed(key=other_key), None),
        "signed": (signed(disclosure_id), None),
        "other-disclosure": (signed("d-7"), None),
    }
    text = outcome(tokens.get(ack, ack) if isinstance(ack, str) else ack, disclosure_id)
    code, out, _ = run_ack(capsys, text)
    assert code == 1
    first, second = out.splitlines()
    assert first.startswith("ok: entry 5 of ")  # the receipt holds; the partner's side not
    assert second.startswith(f"FAILED: acknowledgement: {says}"), second


def test_the_acknowledgement_options_go_together_and_need_a_public_key(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["r.tlog-proof", "--policy", "policy.txt", "--entry", "entry.json"]
    assert verify(*base, "--outcome", "entry.json") == 2
    assert "--outcome and --partner-key go together" in capsys.readouterr().err
    Path("private.jwk.json").write_text(json.dumps(PARTNER_KEY.as_dict(private=True)))
    Path("outcome.json").write_text(outcome((signed(), None)))
    code = verify(*base, "--outcome", "outcome.json", "--partner-key", "private.jwk.json")
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "PRIVATE key" in err
    Path("bad.json").write_text("not json")
    code = verify(*base, "--outcome", "bad.json", "--partner-key", "private.jwk.json")
    assert code == 2 and "not JSON" in capsys.readouterr().err
