"""gateway.files.write_atomically: whole files, the promised mode, no temporary left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.files import write_atomically


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_written_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"  # the folder is created too
    assert write_atomically(path, b"k1\n") is True
    assert path.read_bytes() == b"k1\n"
    assert mode_of(path) == 0o600
    assert os.listdir(path.parent) == ["secret.key"]


def test_replacing_keeps_the_requested_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    path.chmod(0o644)
    write_atomically(path, b"new\n", mode=0o644)
    assert path.read_bytes() == b"new\n"
    assert mode_of(path) == 0o644
    assert os.listdir(tmp_path) == ["config.toml"]


def test_exclusive_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "period.key"
    assert write_atomically(path, b"first", exclusive=True, sync_directory=True) is True
    assert write_atomically(path, b"second", exclusive=True, sync_directory=True) is False
    assert path.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["period.key"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"old")

    def no_rename(src: str, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keys.json"]
