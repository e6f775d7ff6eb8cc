"""Tests for gateway.log.checkpoint: C2SP signed notes and tlog checkpoints with Ed25519."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.log.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    key_id,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)
from gateway.log.merkle import leaf_hash, root_from_leaf_hashes

EM_DASH = "\u2014"
NAME = "gateway.example/disclosures"
ROOT = root_from_leaf_hashes([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])

# golang.org/x/mod/sumdb/note: the package documentation's example, an independent
# implementation of the same format. Ed25519 is deterministic (RFC 8032), so signing the
# same text with the same key must reproduce the published note byte for byte.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
GO_NOTE = GO_TEXT + "\n" + EM_DASH + " PeterNeumann " + GO_SIGNATURE + "\n"
# Another verifier key from the same Go test suite.
GO_ENOCH_VERIFIER_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def vkey(key: Ed25519PrivateKey) -> str:
    return verifier_key(NAME, key.public_key())


@pytest.fixture
def cp() -> Checkpoint:
    return Checkpoint(origin=NAME, size=3, root=ROOT)


@pytest.fixture
def note(cp: Checkpoint, key: Ed25519PrivateKey) -> str:
    return sign_checkpoint(cp, NAME, key)


def _go_private_key() -> Ed25519PrivateKey:
    # "PRIVATE+KEY+<name>+<id>+<base64(0x01 || 32-byte seed)>"; the base64 may contain '+'.
    typed_seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])
    assert typed_seed[0] == 0x01
    return Ed25519PrivateKey.from_private_bytes(typed_seed[1:])


def _signature_blob(note_text: str) -> bytes:
    last_line = note_text.rstrip("\n").rsplit("\n", 1)[1]
    return base64.b64decode(last_line.rsplit(" ", 1)[1])


def _replace_signature_blob(note_text: str, blob: bytes) -> str:
    head, last_line = note_text.rstrip("\n").rsplit("\n", 1)
    prefix = last_line.rsplit(" ", 1)[0]
    return f"{head}\n{prefix} {base64.b64encode(blob).decode()}\n"


# --------------------------------------------------------------------------- known answers


def test_go_sumdb_note_known_answer() -> None:
    private_key = _go_private_key()
    assert verifier_key("PeterNeumann", private_key.public_key()) == GO_VERIFIER_KEY
    assert sign_note(GO_TEXT, "PeterNeumann", private_key) == GO_NOTE
    assert open_note(GO_NOTE, GO_VERIFIER_KEY) == GO_TEXT
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_VERIFIER_KEY)


def test_go_verifier_keys_parse() -> None:
    for text, name in ((GO_VERIFIER_KEY, "PeterNeumann"), (GO_ENOCH_VERIFIER_KEY, "EnochRoot")):
        parsed_name, public_key = parse_verifier_key(text)
        assert parsed_name == name
        assert verifier_key(parsed_name, public_key) == text


def test_key_id_computed_by_hand(key: Ed25519PrivateKey) -> None:
    raw = _raw(key)
    want = hashlib.sha256(NAME.encode() + b"\n" + b"\x01" + raw).digest()[:4]
    assert key_id(NAME, key.public_key()) == want
    typed_key = base64.b64encode(b"\x01" + raw).decode()
    assert verifier_key(NAME, key.public_key()) == f"{NAME}+{want.hex()}+{typed_key}"
    go_raw = base64.b64decode(GO_VERIFIER_KEY.split("+", 2)[2])[1:]
    go_id = hashlib.sha256(b"PeterNeumann\n\x01" + go_raw).digest()[:4]
    assert go_id.hex() == "c74f20a3"
    assert key_id("PeterNeumann", _go_private_key().public_key()) == go_id


def test_note_layout_by_hand(cp: Checkpoint, key: Ed25519PrivateKey, note: str) -> None:
    body = f"{NAME}\n3\n{base64.b64encode(ROOT).decode()}\n"
    assert cp.body() == body
    assert note.startswith(body + "\n" + EM_DASH + " " + NAME + " ")
    assert note.endswith("\n")
    assert note.count("\n") == 5
    blob = _signature_blob(note)
    assert len(blob) == 4 + 64
    assert blob[:4] == hashlib.sha256(NAME.encode() + b"\n\x01" + _raw(key)).digest()[:4]
    key.public_key().verify(blob[4:], body.encode("utf-8"))  # raises if wrong


# --------------------------------------------------------------------------- round trips


def test_checkpoint_round_trip(cp: Checkpoint, note: str, vkey: str) -> None:
    assert open_checkpoint(note, vkey) == cp
    assert open_checkpoint(note, vkey, expected_origin=NAME) == cp


def test_empty_and_large_trees_round_trip(key: Ed25519PrivateKey, vkey: str) -> None:
    for size in (0, 1, 10, MAX_TREE_SIZE):
        checkpoint = Checkpoint(NAME, size, ROOT)
        assert open_checkpoint(sign_checkpoint(checkpoint, NAME, key), vkey) == checkpoint


def test_verifier_key_round_trip(key: Ed25519PrivateKey) -> None:
    text = verifier_key(NAME, key.public_key())
    assert re.fullmatch(rf"{re.escape(NAME)}\+[0-9a-f]{{8}}\+[A-Za-z0-9+/]{{44}}", text)
    name, public_key = parse_verifier_key(text)
    assert name == NAME
    assert public_key.public_bytes(Encoding.Raw, PublicFormat.Raw) == _raw(key)
    assert parse_verifier_key(text + "\n")[0] == NAME  # as read from a key file


def test_extension_lines_are_ignored(key: Ed25519PrivateKey, vkey: str, cp: Checkpoint) -> None:
    note_text = sign_note(cp.body() + "Timestamp: 1700000000\nanother line\n", NAME, key)
    assert open_checkpoint(note_text, vkey) == cp


def test_unknown_signatures_are_ignored(
    note: str, vkey: str, cp: Checkpoint, other_key: Ed25519PrivateKey
) -> None:
    witness = sign_checkpoint(cp, "witness.example", other_key).rstrip("\n").rsplit("\n", 1)[1]
    same_name_other_key = sign_checkpoint(cp, NAME, other_key).rstrip("\n").rsplit("\n", 1)[1]
    body, signature_line = note.rstrip("\n").rsplit("\n", 1)
    cosigned = f"{body}\n{witness}\n{same_name_other_key}\n{signature_line}\n"
    assert open_checkpoint(cosigned, vkey) == cp
    assert open_checkpoint(note + witness + "\n", vkey) == cp


# --------------------------------------------------------------------------- tampering


def test_tampered_size_is_detected(note: str, vkey: str) -> None:
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note.replace(f"{NAME}\n3\n", f"{NAME}\n4\n", 1), vkey)


def test_tampered_root_is_detected(note: str, vkey: str) -> None:
    other_root = base64.b64encode(bytes(32)).decode()
    tampered = note.replace(base64.b64encode(ROOT).decode(), other_root, 1)
    assert tampered != note
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(tampered, vkey)


def test_tampered_origin_is_detected(note: str, vkey: str) -> None:
    tampered = "evil.example/log" + note[len(NAME) :]
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(tampered, vkey)


def test_tampered_signature_is_detected(note: str, vkey: str) -> None:
    blob = bytearray(_signature_blob(note))
    blob[10] ^= 0x01
    with pytest.raises(CheckpointError, match=r"signature line 1 by .* does not verify"):
        open_checkpoint(_replace_signature_blob(note, bytes(blob)), vkey)


def test_tampered_key_id_is_detected(note: str, vkey: str, key: Ed25519PrivateKey) -> None:
    blob = bytearray(_signature_blob(note))
    blob[0] ^= 0x80
    kid = key_id(NAME, key.public_key()).hex()
    with pytest.raises(CheckpointError, match=rf"no signature by .*\+{kid}, expected at least one"):
        open_checkpoint(_replace_signature_blob(note, bytes(blob)), vkey)


def test_note_signed_by_another_key_is_refused(
    cp: Checkpoint, vkey: str, other_key: Ed25519PrivateKey
) -> None:
    for name in (NAME, "someone.else/log"):
        with pytest.raises(CheckpointError, match="no signature by"):
            open_checkpoint(sign_checkpoint(cp, name, other_key), vkey)


def test_bad_signature_from_trusted_key_rejects_whole_note(note: str, vkey: str) -> None:
    # A good signature line does not excuse a bad one from the same trusted key.
    blob = bytearray(_signature_blob(note))
    blob[-1] ^= 0x01
    bad_line = _replace_signature_blob(note, bytes(blob)).rstrip("\n").rsplit("\n", 1)[1]
    with pytest.raises(CheckpointError, match=r"signature line 2 .* does not verify"):
        open_checkpoint(note + bad_line + "\n", vkey)


def test_expected_origin_mismatch(note: str, vkey: str) -> None:
    with pytest.raises(CheckpointError, match=r"origin is .*, expected 'other\.example/log'"):
        open_checkpoint(note, vkey, expected_origin="other.example/log")


# --------------------------------------------------------------------------- malformed notes


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("origin\n03\n{root}\n", "without leading zeros"),
        ("origin\n-1\n{root}\n", "without leading zeros"),
        ("origin\n+3\n{root}\n", "without leading zeros"),
        ("origin\n3 \n{root}\n", "without leading zeros"),
        ("origin\n\u0663\n{root}\n", "without leading zeros"),  # Arabic-Indic digit three
        ("origin\n18446744073709551616\n{root}\n", "larger than"),
        ("origin\n3\n", "expected at least 3"),
        ("origin\n3\nAAAA\n", "has 3 bytes, expected 32"),
        ("origin\n3\n{root_no_pad}\n", "not canonical base64"),
        ("origin\n3\n{root_urlsafe}\n", "not canonical base64"),
        ("origin\n3\n" + "A" * 42 + "B=\n", "not canonical base64"),  # padding bits set
        ("origin\n3\n{root}\n\nextension\n", "line 4 is empty"),
        ("\n3\n{root}\n", "line 1 is empty"),
    ],
)
def test_malformed_checkpoint_bodies(
    body: str, message: str, key: Ed25519PrivateKey, vkey: str
) -> None:
    weird_root = bytes([0xFB] * 32)  # base64 with '+' and '/' characters
    text = body.format(
        root=base64.b64encode(weird_root).decode(),
        root_no_pad=base64.b64encode(weird_root).decode().rstrip("="),
        root_urlsafe=base64.urlsafe_b64encode(weird_root).decode(),
    )
    with pytest.raises(CheckpointError, match=message):
        open_checkpoint(sign_note(text, NAME, key), vkey)


def test_zero_size_is_accepted(key: Ed25519PrivateKey, vkey: str) -> None:
    text = f"origin\n0\n{base64.b64encode(ROOT).decode()}\n"
    assert open_checkpoint(sign_note(text, NAME, key), vkey).size == 0


def test_malformed_notes(note: str, vkey: str) -> None:
    body, signature_line = note.rstrip("\n").rsplit("\n", 1)
    cases = {
        "no blank line": note.replace("\n\n", "\n"),
        "does not end with a newline": note.rstrip("\n"),
        "no signature lines": body + "\n",
        "em dash": body + "\n" + signature_line.replace(EM_DASH, "-", 1) + "\n",
        "has no space": body + "\n" + EM_DASH + " " + NAME + "\n",
        "not canonical base64": body + "\n" + signature_line + "!\n",
        "control character": note.replace("\n", "\r\n", 1),
        "expected a 4-byte key id": body + "\n" + EM_DASH + f" {NAME} AAAAAA==\n",
        "contains '\\+'": body + "\n" + signature_line.replace(NAME, NAME + "+x", 1) + "\n",
        "at most 100": body + "\n" + (signature_line + "\n") * 101,
    }
    for message, malformed in cases.items():
        with pytest.raises(CheckpointError, match=message):
            open_checkpoint(malformed, vkey)


# --------------------------------------------------------------------------- keys and names


@pytest.mark.parametrize("name", ["", "has space", "tab\there", "plus+sign", "nbsp\u00a0x"])
def test_invalid_key_names(name: str, key: Ed25519PrivateKey, cp: Checkpoint) -> None:
    with pytest.raises(CheckpointError, match="key name"):
        sign_checkpoint(cp, name, key)
    with pytest.raises(CheckpointError, match="key name"):
        verifier_key(name, key.public_key())


def test_invalid_verifier_keys(key: Ed25519PrivateKey, vkey: str) -> None:
    name, id_hex, key_b64 = vkey.split("+", 2)
    raw = _raw(key)
    wrong_id = f"{int(id_hex, 16) ^ 1:08x}"
    type2_b64 = base64.b64encode(b"\x02" + raw).decode()
    cases = {
        "wrong shape": NAME,
        "wrong shape ": f"{NAME}+{id_hex}",
        "key name is empty": f"+{id_hex}+{key_b64}",
        "not 8 hexadecimal digits": f"{name}+{id_hex[:7]}+{key_b64}",
        f"key id is {wrong_id}, expected {id_hex}": f"{name}+{wrong_id}+{key_b64}",
        "not canonical base64": f"{name}+{id_hex}+{key_b64[:-1]}-",
        "has 32 bytes, expected 33": f"{name}+{id_hex}+{base64.b64encode(raw).decode()}",
        "signature type 0x02, expected 0x01": f"{name}+{id_hex}+{type2_b64}",
    }
    for message, text in cases.items():
        with pytest.raises(CheckpointError, match=message.strip()):
            parse_verifier_key(text)
    # open_checkpoint validates the verifier key too.
    with pytest.raises(CheckpointError, match="key id"):
        open_checkpoint("irrelevant", f"{name}+{wrong_id}+{key_b64}")


def test_sign_note_rejects_bad_text(key: Ed25519PrivateKey) -> None:
    with pytest.raises(CheckpointError, match="end with a newline"):
        sign_note("", NAME, key)
    with pytest.raises(CheckpointError, match="end with a newline"):
        sign_note("no newline", NAME, key)
    with pytest.raises(CheckpointError, match="control character U\\+0009"):
        sign_note("tab\there\n", NAME, key)


# --------------------------------------------------------------------------- Checkpoint values


def test_checkpoint_validation() -> None:
    with pytest.raises(CheckpointError, match="origin is empty"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError, match="newline"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match="expected an int"):
        Checkpoint(NAME, -1, ROOT)
    with pytest.raises(CheckpointError, match="expected an int"):
        Checkpoint(NAME, MAX_TREE_SIZE + 1, ROOT)
    with pytest.raises(CheckpointError, match="has 31 bytes, expected 32"):
        Checkpoint(NAME, 1, ROOT[:31])
    with pytest.raises(CheckpointError, match="is a str, expected 32 bytes"):
        Checkpoint(NAME, 1, "00" * 32)  # type: ignore[arg-type]


def test_checkpoint_is_frozen(cp: Checkpoint) -> None:
    with pytest.raises(AttributeError):
        cp.size = 4  # type: ignore[misc]
