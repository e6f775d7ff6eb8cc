"""`gateway receipt verify`: three files and no config — exit 0 and one `ok:` line for a
receipt that holds; exit 1 and one `FAILED: <reason>:` line for one hash changed, a
cosignature removed below the quorum, a checkpoint of another log, the entry changed or of
another index; exit 2 for input it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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
