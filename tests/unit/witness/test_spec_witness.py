"""The independent spec witness (tests/support/spec_witness) against the specs' own examples.

Vectors come from the C2SP documents (signed-note, tlog-checkpoint, tlog-cosignature),
from Go's golang.org/x/mod/sumdb/note and transparency-dev/formats tests, from RFC 9162
§2.1.5 and from a real Certificate Transparency log. Then the witness's HTTP behaviour
(200/400/403/404/409/422, persistence, the race), the process, and, as a black box, the
gateway's own checkpoints and proofs. The witness package itself must never import gateway.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.processes import free_port
from support.spec_witness import (
    Checkpoint,
    CosignatureVerifier,
    Ed25519Verifier,
    NoteError,
    as_cosignature_vkey,
    consistency_proof,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_vkey,
    sign_ed25519,
    timestamp_of,
    tree_hash,
    verify_consistency,
    verify_cosigned,
)
from support.spec_witness.cosignature import signed_message
from support.spec_witness.merkle import leaf_hash, node_hash
from support.spec_witness.note import check_utf8, make_vkey, parse_signature_line, raw_public_key
from support.spec_witness.process import running_witness
from support.spec_witness.server import Witness, make_app

PACKAGE = Path(__file__).resolve().parents[2] / "support" / "spec_witness"
EM = "\u2014"
b64 = base64.b64decode

# c2sp.org/signed-note, "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXs"
    "YjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# golang.org/x/mod/sumdb/note, note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    f"{EM} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    f"{EM} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTG"
    "wnWLox33WWd1RvMc+QQ=\n"
)
# transparency-dev/formats, witness/witness_test.go and note/note_cosigv1_test.go.
WIT1_SKEY = "PRIVATE+KEY+Wit1+55ee4561+AeadRiG7XM4XiieCHzD8lxysXMwcViy5nYsoXURWGrlE"
WIT1_VKEY = "Wit1+55ee4561+AVhZSmQj9+SoL+p/nN0Hh76xXmF7QcHfytUrI1XfSClk"
FORMATS_COSIGNATURE = (
    f"{EM} w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEH"
    "WWOworDcFiEBYJXORmnFBOBA=="
)
REMORA_COSIGNER_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
# c2sp.org/tlog-checkpoint and tlog-cosignature: the example checkpoint and its cosignature.
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_COSIGNATURE = (
    f"{EM} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9d"
    "lrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


# --------------------------------------------------------------------------- signed notes


def test_the_signed_note_spec_example_verifies() -> None:
    note, verified = open_note(SPEC_NOTE, [Ed25519Verifier.from_vkey(SPEC_VKEY)])
    assert note.text == "This is an example message.\n"
    assert [sig.name for sig in verified] == ["example.com/foo"]


def test_signing_reproduces_go_notes_example_byte_for_byte() -> None:
    # Ed25519 is deterministic (RFC 8032): same key, same text, same signature.
    cosigner = parse_signer_key(PETER_SKEY)
    public_key = raw_public_key(cosigner.private_key.public_key())
    assert str(make_vkey(cosigner.name, 0x01, public_key)) == PETER_VKEY
    assert sign_ed25519(GO_TEXT, cosigner.name, cosigner.private_key).line() == PETER_SIG


def test_unknown_signatures_are_ignored_and_known_ones_all_count() -> None:
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    peter, enoch = Ed25519Verifier.from_vkey(PETER_VKEY), Ed25519Verifier.from_vkey(ENOCH_VKEY)
    assert [s.name for s in open_note(note, [peter])[1]] == ["PeterNeumann"]
    assert [s.name for s in open_note(note, [peter, enoch])[1]] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(note, [])
    # Same name, another key ID: not the known key, so ignored rather than failed.
    misnamed = GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "EnochRoot")
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(misnamed, [enoch])


def test_a_failing_signature_of_a_known_key_rejects_the_note() -> None:
    bad = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:] + ENOCH_SIG
    with pytest.raises(NoteError, match="fails"):
        open_note(bad, [Ed25519Verifier.from_vkey(PETER_VKEY)])
    with pytest.raises(NoteError, match="fails"):
        open_note(GO_TEXT.upper() + "\n" + PETER_SIG, [Ed25519Verifier.from_vkey(PETER_VKEY)])


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    # Go's note_test.go "Invalid encoded message syntax" cases, plus its signature cap.
    with pytest.raises(NoteError):
        open_note(note, [Ed25519Verifier.from_vkey(PETER_VKEY)])


def test_a_note_must_be_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        check_utf8(b"\xff" + GO_TEXT.encode())


def test_every_mangling_of_a_vkey_is_refused() -> None:
    # As Go's TestNewVerifier: every proper substring and every one-byte change fails.
    assert str(parse_vkey(PETER_VKEY)) == PETER_VKEY
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    parse_vkey(PETER_VKEY[i:j])
        changed = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            parse_vkey(changed)
    with pytest.raises(NoteError):  # unknown signature type, key ID adjusted
        parse_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_cosigner_vkeys_use_type_4_in_their_key_id() -> None:
    remora = parse_vkey(REMORA_COSIGNER_VKEY)  # a native 0x04 vkey from formats' tests
    assert (remora.sig_type, remora.key_id.hex()) == (0x04, "da77ade7")
    converted = as_cosignature_vkey(WIT1_VKEY)
    assert converted.public_key == parse_vkey(WIT1_VKEY).public_key
    assert converted.key_id != parse_vkey(WIT1_VKEY).key_id
    assert parse_signer_key(WIT1_SKEY).vkey == converted
    with pytest.raises(NoteError, match="not 0x04"):
        CosignatureVerifier.from_vkey(WIT1_VKEY)


# --------------------------------------------------------------------------- checkpoints


def test_the_checkpoint_spec_example_parses() -> None:
    cp = parse_checkpoint(SPEC_CHECKPOINT)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.root == b64("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.text() == SPEC_CHECKPOINT
    assert parse_checkpoint(SPEC_CHECKPOINT + "ext\n").extensions == ("ext",)


@pytest.mark.parametrize(
    "text",
    [
        SPEC_CHECKPOINT[:-1],
        SPEC_CHECKPOINT.replace("20852163", "020852163"),
        SPEC_CHECKPOINT.replace("20852163", "-1"),
        SPEC_CHECKPOINT.replace("20852163", str(2**63)),
        SPEC_CHECKPOINT.replace("2I=", "2J="),  # non-canonical base64
        SPEC_CHECKPOINT.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "AAAA"),
        SPEC_CHECKPOINT + "\n",
        "example.com/behind-the-sofa\n20852163\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


# --------------------------------------------------------------------------- cosignatures


def test_the_cosignature_spec_example_carries_the_time_of_its_signed_message() -> None:
    sig = parse_signature_line(SPEC_COSIGNATURE)
    assert timestamp_of(sig) == 1679315147
    # tlog-cosignature, "Ed25519 signed message": the example message, byte for byte.
    assert signed_message(SPEC_CHECKPOINT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + SPEC_CHECKPOINT.encode()
    )
    # transparency-dev/formats, TestCoSigV1Timestamp: a cosignature made at 1727964367.
    assert timestamp_of(parse_signature_line(FORMATS_COSIGNATURE)) == 1727964367


def test_a_cosignature_verifies_only_as_cosignature_v1_and_covers_every_line() -> None:
    cosigner = parse_signer_key(WIT1_SKEY)
    text = SPEC_CHECKPOINT + "Extendo\n"
    line = cosigner.cosign(text, timestamp=1700000000).line()
    verifier = CosignatureVerifier.from_vkey(as_cosignature_vkey(WIT1_VKEY))
    _, verified = open_note(text + "\n" + line, [verifier])
    assert timestamp_of(verified[0]) == 1700000000
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(text + "\n" + line, [Ed25519Verifier.from_vkey(WIT1_VKEY)])
    with pytest.raises(NoteError, match="fails"):
        open_note(text.replace("Extendo", "Extendó") + "\n" + line, [verifier])
    with pytest.raises(NoteError):
        cosigner.cosign(text, timestamp=2**63)


# --------------------------------------------------------------------------- RFC 9162 proofs


def test_the_rfc_9162_example_tree_gives_the_rfc_proofs() -> None:
    # §2.1.5: seven leaves d0..d6; a..f their leaf hashes, j the leaf hash of d6.
    d = [f"d{i}".encode() for i in range(7)]
    a, b, c, dd, e, f, j = (leaf_hash(x) for x in d)
    g, h, i = node_hash(a, b), node_hash(c, dd), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's name
    assert tree_hash(d) == node_hash(k, l)
    assert consistency_proof(3, d) == [c, dd, g, l]
    assert consistency_proof(4, d) == [l]
    assert consistency_proof(6, d) == [i, j, k]
    for m in (3, 4, 6):
        assert verify_consistency(m, 7, tree_hash(d[:m]), tree_hash(d), consistency_proof(m, d))


def test_every_proof_between_small_trees_verifies_and_every_change_fails() -> None:
    entries = [bytes([n]) for n in range(20)]
    for n in range(1, len(entries) + 1):
        new_root = tree_hash(entries[:n])
        for m in range(1, n + 1):
            old_root, proof = tree_hash(entries[:m]), consistency_proof(m, entries[:n])
            assert verify_consistency(m, n, old_root, new_root, proof), (m, n)
            assert not verify_consistency(m, n, old_root, new_root, [*proof, old_root])
            if proof:
                assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
            for at in range(len(proof)):
                flipped = bytes([proof[at][0] ^ 1]) + proof[at][1:]
                assert not verify_consistency(
                    m, n, old_root, new_root, [*proof[:at], flipped, *proof[at + 1 :]]
                )
            if m < n:
                assert not verify_consistency(m, n, new_root, old_root, proof)
                assert not verify_consistency(m, n, old_root, tree_hash(entries[1 : n + 1]), proof)


def test_trivial_consistency_cases() -> None:
    root = tree_hash([b"x"])
    assert verify_consistency(0, 5, tree_hash([]), root, [])
    assert not verify_consistency(0, 5, tree_hash([]), root, [root])
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, root, [root])
    assert not verify_consistency(5, 4, root, root, [root])


def test_a_real_certificate_transparency_consistency_proof_verifies() -> None:
    # Google's Argon 2020 log, get-sth-consistency?first=3654490 (Go's tlog testdata).
    proof = [b64(x) for x in ARGON2020_PROOF]
    first_root = b64("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=")
    second_root = b64("dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM=")
    assert verify_consistency(3654490, 961984013, first_root, second_root, proof)
    assert not verify_consistency(3654491, 961984013, first_root, second_root, proof)


ARGON2020_PROOF = """
80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg= FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=
Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k= eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=
QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw= XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=
SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg= WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=
QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc= Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=
mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU= q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=
jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI= GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=
x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I= 6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=
Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0= DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=
2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU= 3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=
s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY= z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=
GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0= pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=
f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA= WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=
f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ= NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=
C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI= nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=
""".split()


# --------------------------------------------------------------------------- the witness


ORIGIN = "log.example/spec-witness-test"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
LOG_VKEY = str(make_vkey(ORIGIN, 0x01, raw_public_key(LOG_KEY.public_key())))
ENTRIES = [f"entry {n}".encode() for n in range(12)]


def signed(size: int, *, key: Ed25519PrivateKey = LOG_KEY, root: bytes | None = None) -> str:
    """The log's signed checkpoint of its first ``size`` entries (or of a forged root)."""
    text = Checkpoint(ORIGIN, size, tree_hash(ENTRIES[:size]) if root is None else root).text()
    return text + "\n" + sign_ed25519(text, ORIGIN, key).line()


def request(old: int, note: str, proof: list[bytes] | None = None) -> str:
    lines = [base64.b64encode(node).decode() for node in proof or []]
    return "".join(f"{line}\n" for line in [f"old {old}", *lines]) + "\n" + note


def step(old: int, size: int) -> str:
    """A correct add-checkpoint from ``old`` to ``size``."""
    proof = consistency_proof(old, ENTRIES[:size]) if old else []
    return request(old, signed(size), proof)


@pytest.fixture
async def witness(
    tmp_path: Path,
) -> AsyncIterator[TestClient]:
    app = make_app(Witness(parse_signer_key(WIT1_SKEY), [LOG_VKEY], tmp_path / "state.json"))
    async with TestClient(TestServer(app)) as client:
        yield client


async def post(client: TestClient, body: str) -> tuple[int, str, str]:
    """Status, body and the exact Content-Type of the answer to an add-checkpoint."""
    async with client.post("/add-checkpoint", data=body.encode()) as response:
        return response.status, await response.text(), response.headers["Content-Type"]


async def test_the_witness_cosigns_a_growing_log(witness: TestClient, tmp_path: Path) -> None:
    for old, size in ((0, 3), (3, 7), (7, 7), (7, 12)):
        status, body, _ = await post(witness, step(old, size))
        assert status == 200, body
        assert body.startswith(f"{EM} Wit1 ") and body.endswith("\n")
        times = verify_cosigned(signed(size) + body, LOG_VKEY, [WIT1_VKEY])
        assert list(times) == ["Wit1"]
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    async with witness.get(f"/{origin_hash}/checkpoint") as response:
        latest = await response.text()
    assert (
        parse_checkpoint(open_note(latest, [Ed25519Verifier.from_vkey(LOG_VKEY)])[0].text).size
        == 12
    )
    verify_cosigned(latest, LOG_VKEY, [WIT1_VKEY])


async def test_an_old_size_other_than_the_witnessed_one_gets_409_with_that_size(
    witness: TestClient,
) -> None:
    assert (await post(witness, step(0, 5)))[0] == 200
    for old in (0, 3, 6):
        size = max(old, 8)
        status, body, content_type = await post(witness, step(old, size))
        assert (status, body, content_type) == (409, "5\n", "text/x.tlog.size")
    assert (await post(witness, step(5, 8)))[0] == 200


async def test_inconsistent_checkpoints_get_422(witness: TestClient) -> None:
    assert (await post(witness, step(0, 4)))[0] == 200
    bad_proof = [bytes(32)] * len(consistency_proof(4, ENTRIES[:9]))
    forked = signed(9, root=tree_hash([b"fork", *ENTRIES[1:9]]))
    cases = [
        request(4, signed(9), bad_proof),  # a proof that does not verify
        request(4, signed(9), []),  # no proof at all
        request(4, forked, consistency_proof(4, ENTRIES[:9])),  # a fork of the same size
        request(4, signed(4, root=tree_hash(ENTRIES[:5]))),  # same size, another root
    ]
    for body in cases:
        assert (await post(witness, body))[0] == 422
    assert (await post(witness, step(4, 9)))[0] == 200  # nothing was recorded meanwhile


async def test_a_fresh_witness_wants_the_empty_tree_and_no_proof(
    witness: TestClient,
) -> None:
    assert (await post(witness, request(0, signed(0, root=bytes(32)))))[0] == 422
    assert (await post(witness, request(0, signed(3), [bytes(32)])))[0] == 422
    assert (await post(witness, request(0, signed(0))))[0] == 200


async def test_bad_requests_get_400_403_404(witness: TestClient) -> None:
    other_key = Ed25519PrivateKey.generate()
    unknown_origin = signed(3).replace(ORIGIN, "other.example/log")
    cases = {
        step(0, 3).replace("old 0", "old 00"): 400,
        step(0, 3).replace("old 0", "ancient 0"): 400,
        step(0, 3).replace("old 0\n\n", "old 0\n"): 400,
        request(0, signed(3), [bytes(31)]): 400,
        request(0, signed(3), [bytes(32)] * 64): 400,
        request(5, signed(3)): 400,  # old size above the checkpoint's
        request(0, "not a note\n"): 400,
        request(0, unknown_origin): 404,
        request(0, signed(3, key=other_key)): 403,  # only a signature from an unknown key
        request(0, signed(3).replace("\n\n", "\nextra\n\n", 1)): 403,  # known key, bad signature
    }
    for body, expected in cases.items():
        assert (await post(witness, body))[0] == expected, body
    async with witness.get("/add-checkpoint") as response:
        assert response.status == 405


async def test_the_witnessed_size_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    for expected in ((0, 6, 200), (0, 6, 409)):
        app = make_app(Witness(parse_signer_key(WIT1_SKEY), [LOG_VKEY], state))
        async with TestClient(TestServer(app)) as client:
            assert (await post(client, step(expected[0], expected[1])))[0] == expected[2]
    assert '"size": 6' in state.read_text()


async def test_concurrent_requests_from_one_size_cosign_only_one(
    witness: TestClient,
) -> None:
    assert (await post(witness, step(0, 2)))[0] == 200
    results = await asyncio.gather(*(post(witness, step(2, size)) for size in (5, 9, 11)))
    assert sorted(status for status, _, _ in results) == [200, 409, 409]


# --------------------------------------------------------------------------- as a process


def test_it_runs_as_a_separate_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    key = ["--key", str(tmp_path / "witness.key"), "--name", "w.example/p"]
    printed = subprocess.run(
        [sys.executable, "-m", "spec_witness", *key, "--print-vkey"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    vkey = printed.stdout.strip()
    assert (tmp_path / "witness.key").stat().st_mode & 0o777 == 0o600
    with running_witness(tmp_path, [LOG_VKEY], free_port(), name="w.example/p") as witness:
        assert witness.vkey == vkey
        request = urllib.request.Request(f"{witness.url}/add-checkpoint", data=step(0, 4).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read().decode()
        assert list(verify_cosigned(signed(4) + answer, LOG_VKEY, [vkey])) == ["w.example/p"]
    with running_witness(tmp_path, [LOG_VKEY], free_port(), name="w.example/p") as witness:
        request = urllib.request.Request(f"{witness.url}/add-checkpoint", data=step(0, 4).encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        with refused.value as answer:
            assert (answer.code, answer.read()) == (409, b"4\n")  # it remembered


# --------------------------------------------------------------------------- hygiene


def test_the_spec_witness_never_imports_gateway() -> None:
    allowed = set(sys.stdlib_module_names) | {"aiohttp", "cryptography"}
    modules = sorted(PACKAGE.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "__main__.py", "server.py"}
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{module.name} imports {name}"


# ------------------------------------------------------------------ the gateway, as a black box


async def test_it_cosigns_the_gateways_checkpoints_and_proofs(tmp_path: Path) -> None:
    # Test code may import gateway to produce what the gateway produces; the witness may not.
    from gateway.log.checkpoint import Checkpoint as GatewayCheckpoint
    from gateway.log.checkpoint import sign_checkpoint, verifier_key
    from gateway.log.merkle import consistency_proof as gateway_proof
    from gateway.log.merkle import leaf_hash as gateway_leaf_hash
    from gateway.log.merkle import root_from_leaf_hashes

    origin = "gateway.example/disclosures"
    key = Ed25519PrivateKey.generate()
    log_vkey = verifier_key(origin, key.public_key())
    entries = [f'{{"kind":"intent","n":{n}}}'.encode() for n in range(23)]
    leaves = [gateway_leaf_hash(entry) for entry in entries]
    app = make_app(Witness(parse_signer_key(WIT1_SKEY), [log_vkey], tmp_path / "state.json"))
    async with TestClient(TestServer(app)) as client:
        old = 0
        for size in (1, 2, 5, 8, 8, 16, 17, 23):
            root = root_from_leaf_hashes(leaves[:size])
            assert root == tree_hash(entries[:size])
            note = sign_checkpoint(GatewayCheckpoint(origin, size, root), origin, key)
            proof = gateway_proof(old, leaves[:size]) if 0 < old < size else []
            status, body, _ = await post(client, request(old, note, proof))
            assert status == 200, body
            times = verify_cosigned(note + body, log_vkey, [WIT1_VKEY])
            assert list(times) == ["Wit1"]
            old = size
        stale = sign_checkpoint(
            GatewayCheckpoint(origin, 5, root_from_leaf_hashes(leaves[:5])), origin, key
        )
        assert (await post(client, request(2, stale, gateway_proof(2, leaves[:5]))))[:2] == (
            409,
            "23\n",
        )
