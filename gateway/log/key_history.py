"""The log signing key's history on disk: the next key, and the retired keys with their switch.

A log key rotation (``gateway log rotate-key``, gateway.log.rotation) keeps every key that
ever signed the log, so the checkpoints it signed stay verifiable and ``gateway log
verify`` can tell which key may sign where. Under the keys directory:

- ``log-signing.private.pem``: the current key, the one that signs new checkpoints;
- ``log-signing.next.pem`` (0600): the key the next rotation switches to, made first
  (``rotate-key --prepare``) so its vkey can be given to the witnesses before the switch;
- ``log-signing.previous/<n>-<key id>.pem`` (0600, ``n`` = 1 for the first key retired):
  a retired key, kept, never deleted; beside it ``<n>-<key id>.json`` (public), its switch
  record: the vkey, the key that replaced it, and the switch checkpoint (store seq, tree
  size, the note signed by both keys).

Copy the whole keys directory to every instance: each one signs with the current key and
accepts checkpoints signed by the retired ones up to their switch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.crypto.key_files import create_key_file, pem_private
from gateway.crypto.keyring import KeyPaths
from gateway.log.checkpoint import key_id, verifier_key

__all__ = [
    "RetiredLogKey",
    "SwitchRecord",
    "ensure_next_key",
    "key_validity",
    "read_log_key",
    "read_next_key",
    "retire_key",
    "retired_keys",
]

_RETIRED_FILE: Final = re.compile(r"([1-9][0-9]*)-([0-9a-f]{8})\.pem")


@dataclass(frozen=True)
class SwitchRecord:
    """The checkpoint at which a key was replaced: signed by it and by its successor."""

    successor: str  # the vkey that signs from here on
    seq: int  # the switch checkpoint's store seq: a later one needs the successor's signature
    size: int
    note: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "successor": self.successor,
            "switch_seq": self.seq,
            "switch_size": self.size,
            "switch_note": self.note,
            "switched_at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class RetiredLogKey:
    """A key that signed the log before a rotation; ``number`` 1 is the first retired."""

    number: int
    vkey: str
    switch: SwitchRecord | None  # None: the record file is missing (copied without it)


def key_validity(current: str, retired: Sequence[RetiredLogKey]) -> list[dict[str, Any]]:
    """Every key of the log, newest first (``retired`` is), with the checkpoints it signs
    (GET /v1/log/keys): ``from`` the switch that made it current (None for the first key)
    ``until`` the switch that retired it (None for the current key). Both ends are a
    switch checkpoint, signed by both keys; ``until`` carries its note."""
    keys: list[dict[str, Any]] = [{"vkey": current, "status": "current", "until": None}]
    for key in retired:
        switch = key.switch
        keys[-1]["from"] = (
            None if switch is None else {"checkpoint": switch.seq, "size": switch.size}
        )
        until = (
            None
            if switch is None
            else {
                "checkpoint": switch.seq,
                "size": switch.size,
                "at": switch.at.isoformat(),
                "note": switch.note,
            }
        )
        keys.append({"vkey": key.vkey, "status": "retired", "until": until})
    keys[-1]["from"] = None
    return [{k: key[k] for k in ("vkey", "status", "from", "until")} for key in keys]


def read_log_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key file (PKCS#8 PEM); ValueError if it is another kind of key."""
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: expected an Ed25519 private key (PKCS#8 PEM)")
    return key


def read_next_key(keys_dir: Path) -> Ed25519PrivateKey | None:
    path = KeyPaths(keys_dir).log_signing_next
    return read_log_key(path) if path.exists() else None


def ensure_next_key(keys_dir: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The next key, created (0600) if there is none; and whether it was created now.

    Written before the switch uses it, so a switch interrupted after storing its
    checkpoint can be run again with the same key."""
    existing = read_next_key(keys_dir)
    if existing is not None:
        return existing, False
    key = Ed25519PrivateKey.generate()
    create_key_file(KeyPaths(keys_dir).log_signing_next, pem_private(key))
    return key, True


def retired_keys(keys_dir: Path, name: str) -> list[RetiredLogKey]:
    """The retired keys of the log ``name``, newest first (the order of GET /v1/log/key)."""
    folder = KeyPaths(keys_dir).log_signing_previous
    found: list[RetiredLogKey] = []
    for path in folder.glob("*.pem") if folder.is_dir() else ():
        match = _RETIRED_FILE.fullmatch(path.name)
        if match is None:
            continue
        vkey = verifier_key(name, read_log_key(path).public_key())
        record = path.with_suffix(".json")
        switch = _read_switch(record) if record.exists() else None
        found.append(RetiredLogKey(int(match.group(1)), vkey, switch))
    return sorted(found, key=lambda k: k.number, reverse=True)


def _read_switch(path: Path) -> SwitchRecord:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return SwitchRecord(
            successor=str(raw["successor"]),
            seq=int(raw["switch_seq"]),
            size=int(raw["switch_size"]),
            note=str(raw["switch_note"]),
            at=datetime.fromisoformat(raw["switched_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a log key switch record ({type(exc).__name__})") from None


def retire_key(
    keys_dir: Path, name: str, key: Ed25519PrivateKey, switch: SwitchRecord
) -> RetiredLogKey:
    """Keep ``key`` under ``log-signing.previous/`` with its switch record (idempotent for
    a key already kept: a switch run again after an interruption)."""
    folder = KeyPaths(keys_dir).log_signing_previous
    folder.mkdir(mode=0o700, exist_ok=True)
    vkey = verifier_key(name, key.public_key())
    for kept in retired_keys(keys_dir, name):
        if kept.vkey == vkey:
            return kept
    number = max((k.number for k in retired_keys(keys_dir, name)), default=0) + 1
    stem = f"{number}-{key_id(name, key.public_key()).hex()}"
    create_key_file(folder / f"{stem}.pem", pem_private(key))
    record = json.dumps(switch.as_json(), indent=2).encode() + b"\n"
    create_key_file(folder / f"{stem}.json", record, private=False)
    return RetiredLogKey(number, vkey, switch)
