"""`gateway ack verify`: offline, no config; exit 0 valid, 1 not acknowledged, 2 usage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from joserfc.jwk import ECKey

from gateway.cli.main import main
from gateway.crypto.acknowledgement import received_sha256, sign_acknowledgement
from gateway.log.entries import outcome_entry

SENT = b"header.key.iv.ciphertext.tag"
AT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def _files(tmp_path: Path, ack: tuple[str, str | None]) -> tuple[str, str]:
    entry = outcome_entry(
        disclosure_id="d-1", outcome="sent", at=AT, partner="p-1", partner_status=201, ack=ack
    )
    entry_file, key_file = tmp_path / "outcome.json", tmp_path / "partner.jwk.json"
    entry_file.write_text(json.dumps({"index": 3, **entry}), encoding="utf-8")
    return str(entry_file), str(key_file)


def test_valid_recorded_and_unreadable(tmp_path: Path, capsys) -> None:
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    token = sign_acknowledgement(
        key, disclosure_id="d-1", received=SENT, received_at=AT, kid=key.kid
    )
    entry, key_file = _files(tmp_path, (token, None))
    Path(key_file).write_text(json.dumps(key.as_dict(private=False)), encoding="utf-8")
    assert main(["ack", "verify", entry, "--partner-key", key_file]) == 0
    assert capsys.readouterr().out.startswith("ok: p-1 acknowledged disclosure d-1")
    sent = received_sha256(SENT)
    assert main(["ack", "verify", entry, "--partner-key", key_file, "--sent-hash", sent]) == 0

    entry, _ = _files(tmp_path, ("invalid", "bad_signature"))
    capsys.readouterr()
    assert main(["ack", "verify", entry, "--partner-key", key_file]) == 1
    assert "not acknowledged (bad_signature)" in capsys.readouterr().out

    assert main(["ack", "verify", str(tmp_path / "absent.json"), "--partner-key", key_file]) == 2
    Path(key_file).write_text("not json", encoding="utf-8")
    assert main(["ack", "verify", entry, "--partner-key", key_file]) == 2
