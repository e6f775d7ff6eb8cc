"""The tlog-witness wire format: the spec's example request, round trips, every refusal."""

from __future__ import annotations

import base64

import pytest

from gateway.log.witness_protocol import (
    MAX_PROOF_LINES,
    TLOG_SIZE_CONTENT_TYPE,
    AddCheckpoint,
    WitnessProtocolError,
    format_add_checkpoint,
    format_tlog_size,
    parse_add_checkpoint,
    parse_tlog_size,
)

# The example request body of c2sp.org/tlog-witness.
SPEC_PROOF = (
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=",
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=",
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=",
)
SPEC_NOTE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
    "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
SPEC_BODY = "old 20852014\n" + "".join(line + "\n" for line in SPEC_PROOF) + "\n" + SPEC_NOTE


def test_spec_example_request() -> None:
    request = parse_add_checkpoint(SPEC_BODY.encode())
    assert request == AddCheckpoint(
        old=20852014,
        proof=tuple(base64.b64decode(line) for line in SPEC_PROOF),
        note=SPEC_NOTE,
    )
    assert format_add_checkpoint(request.old, request.proof, request.note) == SPEC_BODY.encode()


def test_first_submission_has_no_proof() -> None:
    body = format_add_checkpoint(0, [], SPEC_NOTE)
    assert body == ("old 0\n\n" + SPEC_NOTE).encode()
    assert parse_add_checkpoint(body) == AddCheckpoint(0, (), SPEC_NOTE)


def test_size_bodies() -> None:
    assert TLOG_SIZE_CONTENT_TYPE == "text/x.tlog.size"
    assert format_tlog_size(20852163) == "20852163\n"
    assert parse_tlog_size(b"0\n") == 0
    assert parse_tlog_size(b"18446744073709551615\n") == 2**64 - 1
    for bad in (b"7", b"07\n", b"-1\n", b"7 \n", b"18446744073709551616\n", b"\n"):
        with pytest.raises(WitnessProtocolError):
            parse_tlog_size(bad)
    with pytest.raises(WitnessProtocolError, match="expected an int"):
        format_tlog_size(-1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"old 3", "no complete first line"),
        (b"new 3\n\nnote\n", "expected 'old <size>'"),
        (b"old 03\n\nnote\n", "without leading zeros"),
        (b"old -1\n\nnote\n", "without leading zeros"),
        (b"old 18446744073709551616\n\nnote\n", "without leading zeros"),
        (b"old 3\nAAAA\n\nnote\n", "proof line 1 is not"),
        (b"old 3\n" + b"A" * 43 + b"\n\nnote\n", "proof line 1 is not"),  # unpadded
        (b"old 3\n" + (b"A" * 43 + b"=\n") * 64 + b"\nnote\n", "more than 63"),
        (b"old 3\n" + b"A" * 43 + b"=\n", "no empty line"),
        (b"old 3\n\n", "no checkpoint"),
        (b"old 3\n\n\xff\n", "not UTF-8"),
    ],
)
def test_malformed_requests(body: bytes, message: str) -> None:
    with pytest.raises(WitnessProtocolError, match=message):
        parse_add_checkpoint(body)


def test_format_refusals() -> None:
    with pytest.raises(WitnessProtocolError, match="at most 63"):
        format_add_checkpoint(1, [bytes(32)] * (MAX_PROOF_LINES + 1), SPEC_NOTE)
    with pytest.raises(WitnessProtocolError, match="old size is -1"):
        format_add_checkpoint(-1, [], SPEC_NOTE)
    proof = [bytes(32)] * MAX_PROOF_LINES  # the most a uint64 tree needs: accepted
    assert len(parse_add_checkpoint(format_add_checkpoint(1, proof, SPEC_NOTE)).proof) == 63
