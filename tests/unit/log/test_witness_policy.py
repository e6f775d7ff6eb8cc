"""The witness policy file (C2SP tlog-policy): parsing, every refusal as FILE:LINE, quorums."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import ConfigErrors
from gateway.log.checkpoint import verifier_key
from gateway.log.cosignature import witness_vkey
from gateway.log.witness_policy import (
    MAX_POLICY_BYTES,
    NONE,
    WitnessPolicy,
    gateway_problems,
    load_witness_policy,
    parse_witness_policy,
)

LOG_KEY = Ed25519PrivateKey.generate().public_key()
LOG = verifier_key("gateway.example/disclosures", LOG_KEY)
KEYS = {n: Ed25519PrivateKey.generate().public_key() for n in ("X1", "X2", "X3", "Y1", "Y2")}
VKEY = {n: witness_vkey(f"{n.lower()}.example/w", k) for n, k in KEYS.items()}


def parse(text: str) -> WitnessPolicy:
    return parse_witness_policy(text.encode(), "witnesses.txt")


def errors(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(ConfigErrors) as caught:
        parse_witness_policy(data, "witnesses.txt")
    return [str(e) for e in caught.value.errors]


def spec_example() -> str:
    """The two-level example of c2sp.org/tlog-policy, with keys, URLs and comments."""
    return f"""# the gateway's log
log {LOG} https://gateway.example/

witness X1 {VKEY["X1"]} https://x1.example/witness
witness X2 {VKEY["X2"]}\thttps://x2.example/witness
  witness X3 {VKEY["X3"]} https://x3.example/witness   # indented, trailing comment
group X-witnesses 2 X1 X2 X3

witness Y1 {VKEY["Y1"]} http://127.0.0.1:7380
witness Y2 {VKEY["Y2"]} http://localhost:7381/
group Y-witnesses any Y1 Y2

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_spec_example_parses() -> None:
    policy = parse(spec_example())
    assert policy.quorum == "X-and-Y"
    assert [log.origin for log in policy.logs] == ["gateway.example/disclosures"]
    assert policy.logs[0].url == "https://gateway.example/"
    assert list(policy.witnesses) == ["X1", "X2", "X3", "Y1", "Y2"]
    assert policy.witnesses["X3"].line == 6
    assert policy.witnesses["X1"].key.name == "x1.example/w"
    assert policy.witnesses["X1"].key.vkey == VKEY["X1"]
    assert policy.witnesses["X2"].url == "https://x2.example/witness"
    assert policy.groups["X-witnesses"].threshold == 2
    assert policy.groups["Y-witnesses"].threshold == 1
    assert policy.groups["X-and-Y"].threshold == 2
    assert set(policy.witness_keys()) == set(KEYS)
    assert gateway_problems(policy, LOG) == []


@pytest.mark.parametrize(
    ("cosigned", "met"),
    [
        (set(), False),
        ({"X1", "X2"}, False),  # no Y
        ({"X1", "Y2"}, False),  # one X of the two needed
        ({"X1", "X3", "Y2"}, True),
        ({"X1", "X2", "X3", "Y1", "Y2"}, True),
        ({"X1", "X2", "X-witnesses", "Y-witnesses"}, False),  # group names are not cosigners
        ({"X1", "X2", "Y9"}, False),  # an unknown name counts for nothing
    ],
)
def test_quorum(cosigned: set[str], met: bool) -> None:
    assert parse(spec_example()).satisfied_by(cosigned) is met


def test_quorum_none_and_single_witness() -> None:
    policy = parse(f"quorum {NONE}\n")
    assert policy.satisfied_by(set()) and policy.logs == () and policy.witnesses == {}
    single = parse(f"witness X1 {VKEY['X1']}\nquorum X1\n")
    assert single.satisfied_by({"X1"}) and not single.satisfied_by({"X2"})
    assert single.witnesses["X1"].url is None  # offline use needs no URL


def test_bad_lines_each_reported_with_file_line_and_what_is_valid() -> None:
    text = f"""log {LOG}
log {VKEY["X1"]}
witness X1 {VKEY["X1"]} https://x1.example/
witness X1 {VKEY["X2"]} https://x1.example/
witness X2 {LOG} https://x2.example/
witness X3 {VKEY["X1"]} https://x3.example/
witness none {VKEY["X2"]}
witness X4 {VKEY["X3"]} ftp://x4.example/
witness X5
group G 3 X1 X4
group G2 0 X1
group G3 any X1 missing none
group G4 all X1
group G5 any X1
group G6 any G4 G4
frobnicate X1
group G7 any
quorum G4
quorum X1 X2
quorum X1
"""
    found = errors(text)
    expected = [
        ("witnesses.txt:2:", "log key: verifier key has signature type 0x04, expected 0x01"),
        ("witnesses.txt:4:", "'X1' is already defined"),
        ("witnesses.txt:5:", "witness X2 key: witness verifier key has signature type 0x01"),
        ("witnesses.txt:6:", "witness X3: same public key as line 3"),
        ("witnesses.txt:7:", "'none' is reserved"),
        ("witnesses.txt:8:", "URL 'ftp://x4.example/' — expected an http(s) URL"),
        ("witnesses.txt:9:", "witness line has 1 items — expected 'witness NAME VKEY [URL]'"),
        ("witnesses.txt:10:", "threshold '3' — expected all, any or a number from 1 to 2"),
        ("witnesses.txt:11:", "threshold '0'"),
        ("witnesses.txt:12:", "'missing' is not defined above"),
        ("witnesses.txt:12:", "'none' cannot be a member"),
        ("witnesses.txt:14:", "'X1' is already a member of G4"),
        ("witnesses.txt:15:", "group G6: 'G4' is already a member of G6"),
        ("witnesses.txt:16:", "unknown line 'frobnicate' — valid: log, witness, group, quorum"),
        ("witnesses.txt:17:", "group line is short"),
        ("witnesses.txt:19:", "quorum line has 2 items"),
        ("witnesses.txt:20:", "second quorum line (the first is line 18)"),
    ]
    assert len(found) == len(expected), "\n".join(found)
    for message, (where, what) in zip(found, expected, strict=True):
        assert message.startswith(where) and what in message, (message, where, what)
    assert all(" — " in message for message in found)


def test_file_level_refusals(tmp_path: Path) -> None:
    assert errors("") == [
        "witnesses.txt: no quorum line — add 'quorum NAME' (a witness or group) or 'quorum none'"
    ]
    assert errors("quorum X9\n")[0].startswith("witnesses.txt:1: quorum 'X9' is not defined")
    # A name must be defined before it is used, even when it is defined later.
    late = errors(f"quorum X1\nwitness X1 {VKEY['X1']}\n")
    assert late[0].startswith("witnesses.txt:1: quorum 'X1' is not defined above")
    assert errors("quorum none\r\n")[0].startswith("witnesses.txt:1: control character U+000D")
    assert "not UTF-8" in errors(b"# caf\xe9\nquorum none\n")[0]
    missing = tmp_path / "absent.txt"
    with pytest.raises(ConfigErrors, match=r"absent\.txt: witness policy unreadable"):
        load_witness_policy(missing)
    big = tmp_path / "big.txt"
    big.write_bytes(b"#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(ConfigErrors, match="over 65536 bytes"):
        load_witness_policy(big)
    good = tmp_path / "good.txt"
    good.write_text(spec_example())
    assert load_witness_policy(good).path == str(good)


def test_non_ascii_names_and_comments_are_opaque() -> None:
    policy = parse(f"# witnesses — Kelvin \u212a\nwitness \u212a {VKEY['X1']}\nquorum \u212a\n")
    assert policy.satisfied_by({"\u212a"}) and not policy.satisfied_by({"K"})


def test_gateway_problems_need_urls_it_may_call_and_its_own_log() -> None:
    policy = parse(
        f"log {LOG}\nwitness X1 {VKEY['X1']}\nwitness X2 {VKEY['X2']} http://x2.example/\n"
        "group G all X1 X2\nquorum G\n"
    )
    other_log = verifier_key("other.example/log", Ed25519PrivateKey.generate().public_key())
    problems = [str(p) for p in gateway_problems(policy, other_log)]
    assert problems[0].startswith("witnesses.txt:2: witness X1 has no URL")
    assert problems[1].startswith("witnesses.txt:3: witness X2 URL 'http://x2.example/'")
    assert problems[2] == (
        f"witnesses.txt:1: no log line names this gateway's log key — expected 'log {other_log}'"
    )
    assert len(gateway_problems(policy, LOG)) == 2
    assert gateway_problems(parse("quorum none\n"), other_log) == []  # no log line: any log
