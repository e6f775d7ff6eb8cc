"""Receipts (C2SP tlog-proof): the format (round trip, the spec's example, strict parsing)
and offline verification against a hand-built log — a test log key, two test witnesses and a
policy of quorum 2 — with each way a receipt can fail refused for its own reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.receipts import (
    ENTRIES,
    LEAVES,
    LOG_KEY,
    ORIGIN,
    OTHER_LOG,
    TIME,
    W1,
    W2,
    b64,
    note,
    policy,
    policy_text,
    receipt,
    served,
)

from gateway.canonical import canonical_json
from gateway.log import merkle
from gateway.log.checkpoint import Checkpoint, add_signature, sign_checkpoint, verifier_key
from gateway.log.cosignature import cosign
from gateway.log.receipt import (
    HEADER,
    BadCosignature,
    EntryIndexMismatch,
    InclusionFailed,
    LogSignatureInvalid,
    MalformedReceipt,
    QuorumNotMet,
    UnusableEntry,
    UnusablePolicy,
    entry_of,
    format_receipt,
    parse_receipt,
    verify_receipt,
)
from gateway.log.witness_policy import WitnessPolicy, parse_witness_policy

WITNESSES = (("w1.example", W1), ("w2.example", W2))

# The example of c2sp.org/tlog-proof, signatures elided ("[...]") as the spec shows them.
SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==
"""


# -- the format -------------------------------------------------------------------------


def test_the_spec_example_parses() -> None:
    parsed = parse_receipt(SPEC_EXAMPLE)
    assert parsed.index == 73894
    assert len(parsed.hashes) == 5 and all(len(h) == 32 for h in parsed.hashes)
    assert parsed.extra is not None and parsed.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert parsed.checkpoint_note.startswith("example.com/fancylog\n109482\n")


def test_round_trip() -> None:
    text = receipt()
    parsed = parse_receipt(text)
    assert parsed.index == 5 and parsed.extra is None
    assert format_receipt(parsed.index, parsed.hashes, parsed.checkpoint_note) == text
    assert text.startswith(f"{HEADER}\nindex 5\n")
    assert format_receipt(0, [], "n\n\n\u2014 k x\n", extra=b"x").startswith(
        f"{HEADER}\nextra eA==\nindex 0\n\nn\n"
    )


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda t: t.replace(HEADER, "c2sp.org/tlog-proof@v2"), "first line"),
        (lambda t: t.replace("index 5", "index 05"), "leading zeros"),
        (lambda t: t.replace("index 5", "5"), "expected 'index N'"),
        (lambda t: t.replace("\n\n", "\n", 1), "proof line"),
        (lambda t: t.replace("\n", "\r\n"), "carriage return"),
        (lambda t: t.split("\n\n")[0], "no empty line"),
        (lambda t: t.replace("index 5\n", "index 5\nAAAA\n"), "has 3 bytes"),
        (lambda t: t.replace("index 5\n", "index 5\nnot base64!\n"), "not canonical base64"),
        (lambda t: t.replace("index 5", "extra %%\nindex 5"), "extra line"),
        (lambda t: t + "x" * 70_000, "over"),
    ],
)
def test_malformed_documents_are_refused(change: Any, says: str) -> None:
    with pytest.raises(MalformedReceipt, match=says):
        parse_receipt(change(receipt()))


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(MalformedReceipt, match="UTF-8"):
        parse_receipt(receipt().encode() + b"\xff")


# -- verifying --------------------------------------------------------------------------


def test_a_receipt_verifies_offline() -> None:
    result = verify_receipt(receipt(), served(), policy())
    assert (result.origin, result.size, result.index) == (ORIGIN, 13, 5)
    assert result.cosigned == ("w1", "w2")
    assert result.summary() == (
        f"ok: entry 5 of {ORIGIN} is in the tree of size 13, cosigned by w1, w2 (quorum both met)"
    )


@pytest.mark.parametrize("index", [0, 7, 12])
def test_every_position_verifies_bare_entry_too(index: int) -> None:
    assert verify_receipt(receipt(index), ENTRIES[index], policy()).index == index
    assert verify_receipt(receipt(index), canonical_json(ENTRIES[index]), policy()).index == index


def test_quorum_none_needs_no_witness() -> None:
    result = verify_receipt(receipt(witnesses=()), served(), policy("none"))
    assert result.cosigned == ()
    assert "cosigned by no witness (quorum none met)" in result.summary()


def test_one_hash_changed_is_refused() -> None:
    lines = receipt().split("\n")
    lines[3] = b64(bytes(32))  # the second proof hash
    with pytest.raises(InclusionFailed, match="not proven in the tree of size 13"):
        verify_receipt("\n".join(lines), served(), policy())


def test_a_cosignature_removed_below_quorum_is_refused() -> None:
    text = receipt(witnesses=(("w1.example", W1),))
    with pytest.raises(QuorumNotMet) as refused:
        verify_receipt(text, served(), policy())
    assert str(refused.value) == "cosigned by w1; quorum 'both' needs 2 of [w1, w2]"
    assert refused.value.reason == "quorum not met"
    # One is enough for a policy that asks for one.
    assert verify_receipt(text, served(), policy("w1")).cosigned == ("w1",)


def test_a_checkpoint_from_another_log_is_refused() -> None:
    text = receipt(origin="other.example/log", log_key=OTHER_LOG)
    with pytest.raises(LogSignatureInvalid, match=r"from another log: origin 'other\.example/log'"):
        verify_receipt(text, served(), policy())


def test_same_origin_other_key_is_refused() -> None:
    text = receipt(log_key=OTHER_LOG)
    with pytest.raises(LogSignatureInvalid, match=f"no signature by {ORIGIN}"):
        verify_receipt(text, served(), policy())


def test_a_forged_log_signature_is_refused() -> None:
    text = receipt().replace("\n13\n", "\n14\n")  # the signed size changed
    with pytest.raises(LogSignatureInvalid, match="does not verify"):
        verify_receipt(text, served(), policy())


def test_a_false_cosignature_is_refused() -> None:
    # w1's real cosignature of another checkpoint, pasted under this one.
    other = Checkpoint(ORIGIN, 12, merkle.root_from_leaf_hashes(LEAVES[:12]))
    forged = note(witnesses=(("w2.example", W2),)) + cosign(other.body(), "w1.example", W1, TIME)
    text = format_receipt(5, merkle.inclusion_proof(5, LEAVES), forged)
    with pytest.raises(BadCosignature, match=r"w1\.example"):
        verify_receipt(text, served(), policy())


def test_an_entry_changed_is_refused() -> None:
    changed = dict(ENTRIES[5], caller="someone-else")
    with pytest.raises(InclusionFailed, match="not proven"):
        verify_receipt(receipt(), changed, policy())
    served_changed = json.loads(served())
    served_changed["entry"]["caller"] = "someone-else"
    with pytest.raises(InclusionFailed, match="leaf_hash"):
        verify_receipt(receipt(), json.dumps(served_changed), policy())


def test_the_index_changed_is_refused() -> None:
    with pytest.raises(EntryIndexMismatch, match="served as index 6, the receipt proves index 5"):
        verify_receipt(receipt(), served(6), policy())
    # The receipt's own index changed: the proof no longer leads to the root.
    text = receipt().replace("index 5", "index 4")
    with pytest.raises(InclusionFailed):
        verify_receipt(text, ENTRIES[5], policy())


def test_an_older_smaller_checkpoint_still_proves_what_it_covers() -> None:
    assert verify_receipt(receipt(3, size=4), served(3), policy()).size == 4


def test_unusable_inputs() -> None:
    no_log = parse_witness_policy(b"quorum none\n", "p.txt")
    with pytest.raises(UnusablePolicy, match="no 'log' line"):
        verify_receipt(receipt(), served(), no_log)
    with pytest.raises(UnusableEntry):
        entry_of("not json")
    with pytest.raises(UnusableEntry):
        entry_of("[1]")


# -- after a log key rotation ------------------------------------------------------------


def _rotation_receipts() -> dict[str, str]:
    """Receipts of entry 5 against a checkpoint signed by the old key only (before the
    switch), by both keys (the switch checkpoint) and by the new key only (after it)."""
    old, new = LOG_KEY, OTHER_LOG
    switch = Checkpoint(ORIGIN, 12, merkle.root_from_leaf_hashes(LEAVES[:12]))
    switch_note = add_signature(sign_checkpoint(switch, ORIGIN, old), ORIGIN, new)
    switch_note += "".join(cosign(switch.body(), n, k, TIME) for n, k in WITNESSES)
    return {
        "before": receipt(size=11, log_key=old),
        "switch": format_receipt(5, merkle.inclusion_proof(5, LEAVES[:12]), switch_note),
        "after": receipt(size=13, log_key=new),
    }


def _policy_of_logs(*keys: Ed25519PrivateKey) -> WitnessPolicy:
    text = "".join(f"log {verifier_key(ORIGIN, k.public_key())}\n" for k in keys)
    rest = policy_text().split("\n", 1)[1]  # the witnesses, the group and the quorum
    return parse_witness_policy((text + rest).encode(), "policy.txt")


def test_after_a_log_key_rotation_the_policy_names_the_key_that_signed() -> None:
    receipts = _rotation_receipts()
    new_only, old_only = _policy_of_logs(OTHER_LOG), _policy_of_logs(LOG_KEY)
    both = _policy_of_logs(OTHER_LOG, LOG_KEY)  # tlog-policy: one log line per key
    assert verify_receipt(receipts["after"], served(), new_only).size == 13
    assert verify_receipt(receipts["switch"], served(), new_only).size == 12
    assert verify_receipt(receipts["switch"], served(), old_only).size == 12
    with pytest.raises(LogSignatureInvalid, match=f"no signature by {ORIGIN}"):
        verify_receipt(receipts["before"], served(), new_only)
    with pytest.raises(LogSignatureInvalid):
        verify_receipt(receipts["after"], served(), old_only)
    for name in ("before", "switch", "after"):
        assert verify_receipt(receipts[name], served(), both).index == 5
