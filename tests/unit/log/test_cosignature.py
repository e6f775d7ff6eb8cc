"""cosignature/v1 (C2SP tlog-cosignature): the spec's example line, an independent
recomputation with `cryptography` and hashlib alone, and every refusal."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    parse_signature_line,
    parse_verifier_key,
    sign_checkpoint,
    split_note,
    verifier_key,
)
from gateway.log.cosignature import (
    MAX_TIMESTAMP,
    CosignatureError,
    WitnessKey,
    cosign,
    cosigned_message,
    cosigners,
    parse_witness_vkey,
    verify_cosignature,
    witness_vkey,
)

# RFC 8032 §7.1 TEST 1 secret key: Ed25519 is deterministic, so every line below is fixed.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
WITNESS = "witness.example/w1"
TIME = 1679315147
# The checkpoint of the spec's examples (tlog-witness, tlog-cosignature).
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
# The cosignature line of the example in c2sp.org/tlog-cosignature.
SPEC_LINE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9d"
    "lrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


@pytest.fixture
def witness(key: Ed25519PrivateKey) -> WitnessKey:
    return WitnessKey(WITNESS, key.public_key())


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_spec_example_line_decodes_to_the_spec_time() -> None:
    # The spec publishes the line and the message it signs ("time 1679315147"), not the
    # witness's key: the layout (key id, 8-byte big-endian time, 64-byte signature) is
    # what can be checked against it.
    line = parse_signature_line(SPEC_LINE)
    assert line.name == "witness.example.com/w1"
    assert line.key_id.hex() == "8d66cf3f"
    assert int.from_bytes(line.signature[:8], "big") == TIME
    assert len(line.signature) == 8 + 64
    message = cosigned_message(SPEC_CHECKPOINT, TIME).decode()
    assert message == "cosignature/v1\ntime 1679315147\n" + SPEC_CHECKPOINT


def test_line_matches_an_independent_recomputation(key: Ed25519PrivateKey) -> None:
    line = cosign(SPEC_CHECKPOINT, WITNESS, key, TIME)
    # Built from the spec's text with hashlib and cryptography, none of the module's code.
    kid = hashlib.sha256(WITNESS.encode() + b"\n\x04" + _raw(key)).digest()[:4]
    message = f"cosignature/v1\ntime {TIME}\n{SPEC_CHECKPOINT}".encode()
    signature = key.sign(message)  # deterministic (RFC 8032)
    blob = kid + TIME.to_bytes(8, "big") + signature
    assert line == f"\u2014 {WITNESS} {base64.b64encode(blob).decode()}\n"
    key.public_key().verify(signature, message)  # raises if not


def test_witness_vkey_is_type_4_with_its_own_key_id(key: Ed25519PrivateKey) -> None:
    vkey = witness_vkey(WITNESS, key.public_key())
    name, id_hex, material = vkey.split("+", 2)
    assert name == WITNESS
    assert base64.b64decode(material) == b"\x04" + _raw(key)
    assert id_hex == hashlib.sha256(WITNESS.encode() + b"\n\x04" + _raw(key)).digest()[:4].hex()
    parsed = parse_witness_vkey(vkey + "\n")
    assert parsed.name == WITNESS and parsed.vkey == vkey
    assert parsed.key_id.hex() == id_hex


def test_vkey_types_are_not_interchangeable(key: Ed25519PrivateKey) -> None:
    note_vkey = verifier_key(WITNESS, key.public_key())
    with pytest.raises(CosignatureError, match="signature type 0x01, expected 0x04"):
        parse_witness_vkey(note_vkey)
    with pytest.raises(CheckpointError, match="signature type 0x04, expected 0x01"):
        parse_verifier_key(witness_vkey(WITNESS, key.public_key()))
    id_hex = note_vkey.split("+", 2)[1]
    type4 = base64.b64encode(b"\x04" + _raw(key)).decode()
    forged = f"{WITNESS}+{id_hex}+{type4}"
    with pytest.raises(CosignatureError, match="key id"):
        parse_witness_vkey(forged)  # a type-1 key id on a type-4 key


def test_round_trip_and_timestamp(key: Ed25519PrivateKey, witness: WitnessKey) -> None:
    line = cosign(SPEC_CHECKPOINT, WITNESS, key, TIME)
    assert verify_cosignature(line, SPEC_CHECKPOINT, witness) == TIME
    assert verify_cosignature(line.rstrip("\n"), SPEC_CHECKPOINT, witness) == TIME
    zero = cosign(SPEC_CHECKPOINT, WITNESS, key, 0)
    assert verify_cosignature(zero, SPEC_CHECKPOINT, witness) == 0
    top = cosign(SPEC_CHECKPOINT, WITNESS, key, MAX_TIMESTAMP)
    assert verify_cosignature(top, SPEC_CHECKPOINT, witness) == MAX_TIMESTAMP


def test_refusals(key: Ed25519PrivateKey, witness: WitnessKey) -> None:
    line = cosign(SPEC_CHECKPOINT, WITNESS, key, TIME)
    other_text = SPEC_CHECKPOINT.replace("20852163", "20852164")
    with pytest.raises(CosignatureError, match="does not verify"):
        verify_cosignature(line, other_text, witness)
    # The time is signed: moving it by a second breaks the signature.
    raw = parse_signature_line(line.rstrip("\n"))
    moved = raw.key_id + (TIME + 1).to_bytes(8, "big") + raw.signature[8:]
    with pytest.raises(CosignatureError, match=r"time 1679315148\) does not verify"):
        verify_cosignature(
            f"\u2014 {WITNESS} {base64.b64encode(moved).decode()}", SPEC_CHECKPOINT, witness
        )
    other = WitnessKey(WITNESS, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(CosignatureError, match=r"cosignature is by .*, expected"):
        verify_cosignature(line, SPEC_CHECKPOINT, other)
    short = base64.b64encode(raw.key_id + raw.signature[:40]).decode()
    with pytest.raises(CosignatureError, match="expected 72"):
        verify_cosignature(f"\u2014 {WITNESS} {short}", SPEC_CHECKPOINT, witness)
    with pytest.raises(CosignatureError, match="em dash"):
        verify_cosignature(line.replace("\u2014", "-"), SPEC_CHECKPOINT, witness)
    for bad in (-1, MAX_TIMESTAMP + 1, True):
        with pytest.raises(CosignatureError, match="timestamp"):
            cosign(SPEC_CHECKPOINT, WITNESS, key, bad)
    with pytest.raises(CosignatureError, match="fewer than 3"):
        cosign("origin\n1\n", WITNESS, key, TIME)
    with pytest.raises(CheckpointError, match="key name"):
        cosign(SPEC_CHECKPOINT, "has space", key, TIME)


def test_extension_lines_are_signed(key: Ed25519PrivateKey, witness: WitnessKey) -> None:
    text = SPEC_CHECKPOINT + "extension\n"
    line = cosign(text, WITNESS, key, TIME)
    assert verify_cosignature(line, text, witness) == TIME
    with pytest.raises(CosignatureError, match="does not verify"):
        verify_cosignature(line, SPEC_CHECKPOINT + "extensioN\n", witness)


def test_a_cosignature_is_not_a_note_signature(key: Ed25519PrivateKey) -> None:
    # Same key, same name: the type byte in the key id keeps the two statements apart.
    cp = Checkpoint("example.com/log", 3, bytes(32))
    note = cp.body() + "\n" + cosign(cp.body(), WITNESS, key, TIME)
    with pytest.raises(CheckpointError, match="no signature by"):
        open_checkpoint(note, verifier_key(WITNESS, key.public_key()))


def test_cosigners_in_a_cosigned_note(key: Ed25519PrivateKey, witness: WitnessKey) -> None:
    log_key = Ed25519PrivateKey.generate()
    second = Ed25519PrivateKey.generate()
    cp = Checkpoint("example.com/log", 7, bytes(range(32)))
    note = sign_checkpoint(cp, "example.com/log", log_key)
    note += cosign(cp.body(), WITNESS, key, TIME)
    note += cosign(cp.body(), "witness.example/w2", second, TIME + 5)
    note += cosign(cp.body(), "unknown.example/w9", Ed25519PrivateKey.generate(), TIME)
    text, lines = split_note(note)
    assert text == cp.body()
    keys = {"w1": witness, "w2": WitnessKey("witness.example/w2", second.public_key())}
    assert cosigners(lines, text, keys) == {"w1": TIME, "w2": TIME + 5}
    assert cosigners(lines, text, {"w1": witness}) == {"w1": TIME}
    assert cosigners(lines[:1], text, keys) == {}  # the log's own signature is not one
    # A line by a configured witness that does not verify is a refusal, not "absent".
    with pytest.raises(CosignatureError, match="does not verify"):
        cosigners(lines, text.replace("\n7\n", "\n8\n"), keys)
