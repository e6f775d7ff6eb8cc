"""The pure side of a log key rotation: notes with several signatures, the signer that knows
its retired keys, the audit's key rule and the key list GET /v1/log/keys serves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import LogUnavailableError
from gateway.log import merkle
from gateway.log.audit import Auditor
from gateway.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    add_signature,
    open_checkpoint,
    open_checkpoint_by_any,
    sign_checkpoint,
    signers_of,
    verifier_key,
)
from gateway.log.key_history import (
    RetiredLogKey,
    SwitchRecord,
    ensure_next_key,
    key_validity,
    retire_key,
    retired_keys,
)
from gateway.log.service import LogSigner
from gateway.store.records import StoredCheckpoint

ORIGIN = "gateway.test/log"
AT = datetime(2026, 12, 7, tzinfo=UTC)
OLD, NEW, NEWER = (Ed25519PrivateKey.generate() for _ in range(3))
V_OLD, V_NEW, V_NEWER = (verifier_key(ORIGIN, k.public_key()) for k in (OLD, NEW, NEWER))
LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(10)]


def note(size: int, *keys: Ed25519PrivateKey) -> str:
    cp = Checkpoint(ORIGIN, size, merkle.root_from_leaf_hashes(LEAVES[:size]))
    text = sign_checkpoint(cp, ORIGIN, keys[0])
    for key in keys[1:]:
        text = add_signature(text, ORIGIN, key)
    return text


def switch(seq: int, size: int, successor: str) -> SwitchRecord:
    return SwitchRecord(successor, seq, size, note(size, OLD, NEW), AT)


def test_a_note_signed_by_two_keys_opens_with_either() -> None:
    both = note(4, OLD, NEW)
    assert open_checkpoint(both, V_OLD) == open_checkpoint(both, V_NEW)
    assert signers_of(both, [V_NEWER, V_NEW, V_OLD])[1] == [V_NEW, V_OLD]
    cp, signed = open_checkpoint_by_any(note(4, NEW), [V_NEW, V_OLD], expected_origin=ORIGIN)
    assert (cp.size, signed) == (4, [V_NEW])
    with pytest.raises(CheckpointError, match=r"no signature by .*expected at least one"):
        open_checkpoint_by_any(note(4, NEWER), [V_NEW, V_OLD])
    forged = note(4, OLD).replace(note(4, OLD).split("\n")[-2][-8:], "AAAAAAA=")
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint_by_any(forged, [V_NEW, V_OLD])


def signer(*, retired_switch_seq: int | None = 2) -> LogSigner:
    record = None if retired_switch_seq is None else switch(retired_switch_seq, 4, V_NEW)
    return LogSigner(ORIGIN, NEW, retired=[RetiredLogKey(1, V_OLD, record)])


def test_the_signer_opens_either_key_but_extends_only_the_current_one() -> None:
    s = signer()
    assert s.verifier_keys == [V_NEW, V_OLD]
    assert s.open(note(3, OLD)).size == 3
    assert s.open_to_extend(note(4, OLD, NEW), 2).size == 4
    assert s.open_to_extend(note(5, NEW), 3).size == 5
    with pytest.raises(CheckpointError, match=r"#4 is signed only by retired log key"):
        s.open_to_extend(note(5, OLD), 4)


def test_an_instance_holding_only_the_old_key_stops_at_the_switch() -> None:
    old_instance = LogSigner(ORIGIN, OLD)
    assert old_instance.open_to_extend(note(3, OLD), 1).size == 3
    for seq, text in ((2, note(4, OLD, NEW)), (3, note(5, NEW))):
        with pytest.raises(LogUnavailableError, match="the log key was rotated"):
            old_instance.open_to_extend(text, seq)


def test_the_switching_signer_signs_with_both_keys() -> None:
    switching = LogSigner(ORIGIN, OLD).switching(NEW)
    assert switching.verifier_keys == [V_NEW, V_OLD]
    signed = switching.sign(Checkpoint(ORIGIN, 4, merkle.root_from_leaf_hashes(LEAVES[:4])))
    assert signers_of(signed, [V_NEW, V_OLD])[1] == [V_NEW, V_OLD]


def audit(*notes: str, keys: list[str] | None = None) -> list[str]:
    stored = [StoredCheckpoint(int(n.split("\n")[1]), n, AT, seq) for seq, n in enumerate(notes, 1)]
    auditor = Auditor(stored, keys or [V_NEW, V_OLD], ORIGIN)
    auditor.feed([(i, b"entry %d" % i, LEAVES[i]) for i in range(10)])
    return [p.message for p in auditor.finish(10).problems]


def test_audit_accepts_the_old_key_then_the_switch_then_the_new_key() -> None:
    assert audit(note(2, OLD), note(4, OLD, NEW), note(7, NEW), note(10, NEW)) == []
    # A log that was never rotated, with one key as before.
    assert audit(note(2, OLD), note(10, OLD), keys=[V_OLD]) == []


def test_audit_names_a_checkpoint_signed_only_by_the_retired_key_after_the_switch() -> None:
    (problem,) = audit(note(2, OLD), note(4, OLD, NEW), note(7, NEW), note(10, OLD))
    assert problem.startswith("checkpoint #4 (size 10) is signed only by the retired log key")
    assert "signs since checkpoint #2" in problem


def test_audit_names_a_key_change_that_is_not_cross_signed() -> None:
    (problem,) = audit(note(2, OLD), note(7, NEW), note(10, NEW))
    assert problem.startswith("checkpoint #2 (size 7) is the first signed by log key")
    assert "must be cross-signed" in problem


def test_audit_follows_two_rotations() -> None:
    keys = [V_NEWER, V_NEW, V_OLD]
    chain = (note(2, OLD), note(4, OLD, NEW), note(6, NEW, NEWER), note(10, NEWER))
    assert audit(*chain, keys=keys) == []
    (problem,) = audit(*chain[:3], note(10, NEW), keys=keys)
    assert "checkpoint #4 (size 10) is signed only by the retired log key" in problem


def test_key_files_and_the_validity_list(tmp_path: Path) -> None:
    next_key, created = ensure_next_key(tmp_path)
    assert created and ensure_next_key(tmp_path)[1] is False
    assert (tmp_path / "log-signing.next.pem").stat().st_mode & 0o777 == 0o600
    retire_key(tmp_path, ORIGIN, OLD, switch(2, 4, V_NEW))
    retire_key(tmp_path, ORIGIN, OLD, switch(2, 4, V_NEW))  # run again: kept once
    retire_key(tmp_path, ORIGIN, NEW, switch(5, 9, V_NEWER))
    kept = retired_keys(tmp_path, ORIGIN)
    assert [(k.number, k.vkey) for k in kept] == [(2, V_NEW), (1, V_OLD)]
    assert next_key.public_key() != OLD.public_key()

    listed = key_validity(V_NEWER, kept)
    assert [(k["vkey"], k["status"]) for k in listed] == [
        (V_NEWER, "current"),
        (V_NEW, "retired"),
        (V_OLD, "retired"),
    ]
    assert listed[0]["from"] == {"checkpoint": 5, "size": 9} and listed[0]["until"] is None
    assert listed[1]["from"] == {"checkpoint": 2, "size": 4}
    assert listed[1]["until"]["checkpoint"] == 5
    assert listed[2]["from"] is None and listed[2]["until"]["size"] == 4
    assert key_validity(V_OLD, []) == [
        {"vkey": V_OLD, "status": "current", "from": None, "until": None}
    ]
