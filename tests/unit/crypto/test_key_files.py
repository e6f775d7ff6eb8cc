"""The one JSON key reader and the one way a key file is created (gateway.crypto.key_files)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OKPKey

from gateway.crypto.key_files import (
    NewFiles,
    create_key_file,
    import_private_key_file,
    jwk_bytes,
    read_json_key,
)
from gateway.errors import ConfigError

MISSING = "key not found: run 'gateway keys generate'"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, MISSING),
        ("{not json", "not a JSON JWKS (JSONDecodeError)"),
        ("\udcff", "not a JSON JWKS (UnicodeDecodeError)"),
        ('["a", "list"]', "not a JSON JWKS object"),
    ],
)
def test_read_json_key_names_the_file_and_the_fix(
    tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "k.json"
    if text is not None:
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError) as caught:
        read_json_key(path, missing=MISSING, what="JWKS")
    assert caught.value.path == str(path)
    assert caught.value.message == message


def test_read_json_key_returns_the_object(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('{"kty": "OKP"}', encoding="utf-8")
    assert read_json_key(path, missing=MISSING) == {"kty": "OKP"}


def test_create_key_file_modes_and_no_temp_left(tmp_path: Path) -> None:
    private, public = tmp_path / "sub" / "a.key", tmp_path / "sub" / "a.pub"
    create_key_file(private, b"secret\n")
    create_key_file(public, b"public\n", private=False)
    assert private.read_bytes() == b"secret\n" and _mode(private) == 0o600
    assert public.read_bytes() == b"public\n" and _mode(public) == 0o644
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.key", "a.pub"]


def test_create_key_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    create_key_file(path, b"first\n")
    with pytest.raises(FileExistsError):
        create_key_file(path, b"second\n")
    assert path.read_bytes() == b"first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.key"]


def test_new_files_creates_only_what_is_missing(tmp_path: Path) -> None:
    present = tmp_path / "present.key"
    present.write_bytes(b"kept\n")
    made: list[str] = []

    def make(name: str) -> bytes:
        made.append(name)
        return name.encode() + b"\n"

    out = NewFiles()
    assert out.ensure(present, lambda: make("present")) is False
    assert out.ensure(tmp_path / "new.key", lambda: make("new")) is True
    assert out.paths == [tmp_path / "new.key"]
    assert made == ["new"]  # nothing is generated for a file already there
    assert present.read_bytes() == b"kept\n"


def test_import_private_key_file_reads_jwk_and_pem(tmp_path: Path) -> None:
    okp = OKPKey.generate_key("X25519", private=True)
    jwk_path = tmp_path / "p.private.jwk.json"
    jwk_path.write_bytes(jwk_bytes(okp, use="enc"))
    assert import_private_key_file(jwk_path).thumbprint() == okp.thumbprint()

    ec = ECKey.generate_key("P-256", private=True)
    pem_path = tmp_path / "client.pem"
    pem_path.write_bytes(ec.as_pem(private=True))
    loaded = import_private_key_file(pem_path)
    assert loaded.kid == ec.thumbprint()


def test_import_private_key_file_refuses_an_unknown_key_type(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('{"kty": "oct", "k": "AAAA"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="unsupported key type 'oct'"):
        import_private_key_file(path)
