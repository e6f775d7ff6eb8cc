"""Partner acknowledgements (issue #18 item 6): what the gateway accepts as a partner's signed
receipt, what it refuses and why, and the offline check of an outcome entry."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime

import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.crypto.acknowledgement import (
    AcknowledgementInvalid,
    check_acknowledgement,
    received_sha256,
    sign_acknowledgement,
    verify_acknowledgement,
)
from gateway.log.entries import outcome_entry
from gateway.partners.keyfile import PartnerKeyError, parse_acknowledgement_keys

SENT = b"eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d"  # stands for the compact JWE sent
DISCLOSURE = "d-6f1c2a7e-0000-4000-8000-000000000001"
AT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["Ed25519", "P-256"])
def partner_key(request: pytest.FixtureRequest) -> ECKey | OKPKey:
    if request.param == "Ed25519":
        return OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
    return ECKey.generate_key("P-256", private=True, auto_kid=True)


def keys_of(key: ECKey | OKPKey):
    return parse_acknowledgement_keys(key.as_dict(private=False), "test key")


def signed(key: ECKey | OKPKey, **overrides) -> str:
    args = {"disclosure_id": DISCLOSURE, "received": SENT, "received_at": AT, "kid": key.kid}
    args.update(overrides)
    return sign_acknowledgement(key, **args)


def check(token: str | None, key: ECKey | OKPKey, **overrides):
    args = {"disclosure_id": DISCLOSURE, "sent_sha256": received_sha256(SENT), "keys": keys_of(key)}
    args.update(overrides)
    return check_acknowledgement(token, **args)


def reason_of(token: str | None, key: ECKey | OKPKey, **overrides) -> str:
    with pytest.raises(AcknowledgementInvalid) as exc:
        check(token, key, **overrides)
    assert "eyJ" not in str(exc.value)  # a message never quotes the token
    return exc.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_a_valid_acknowledgement_verifies(partner_key):
    token = signed(partner_key)
    ack = check(token, partner_key)
    assert ack.token == token
    assert ack.disclosure_id == DISCLOSURE
    assert ack.received_sha256 == received_sha256(SENT)
    assert ack.received_at == "2026-12-07T15:00:00.000Z"
    assert ack.kid == partner_key.kid
    assert ack.alg == ("Ed25519" if isinstance(partner_key, OKPKey) else "ES256")


def test_the_payload_is_an_id_a_time_and_a_hash_only(partner_key):
    payload = json.loads(base64.urlsafe_b64decode(signed(partner_key).split(".")[1] + "=="))
    assert set(payload) == {"disclosure_id", "received_at", "received_sha256"}


def test_the_hash_is_base64url_sha256_of_the_exact_bytes():
    # SHA-256("abc"), RFC 6234 test vector, in base64url without padding.
    assert received_sha256(b"abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"


def test_signed_by_another_key_is_a_bad_signature(partner_key):
    other = OKPKey.generate_key("Ed25519", private=True)
    token = sign_acknowledgement(
        other, disclosure_id=DISCLOSURE, received=SENT, received_at=AT, kid=partner_key.kid
    )
    expected = "bad_signature" if isinstance(partner_key, OKPKey) else "alg_not_allowed"
    assert reason_of(token, partner_key) == expected


def test_another_kid_names_no_key(partner_key):
    token = signed(partner_key, kid="someone-else")
    assert reason_of(token, partner_key) == "unknown_key"


def test_for_another_disclosure_is_refused(partner_key):
    token = signed(partner_key, disclosure_id="d-another")
    assert reason_of(token, partner_key) == "wrong_disclosure"


def test_over_other_bytes_is_refused(partner_key):
    token = signed(partner_key, received=SENT + b"x")
    assert reason_of(token, partner_key) == "wrong_hash"


def test_no_token_is_missing_and_no_key_is_said(partner_key):
    assert reason_of(None, partner_key) == "missing"
    assert reason_of("  ", partner_key) == "missing"
    assert reason_of(signed(partner_key), partner_key, keys=[]) == "no_key"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jws",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        b64(b"[1]") + "." + b64(b"{}") + ".sig",
        "x" * 3000,
        "é.é.é",
    ],
)
def test_malformed_tokens_are_refused(token, partner_key):
    assert reason_of(token, partner_key) == "malformed"


def _forged(key: ECKey | OKPKey, header: dict, payload: dict) -> str:
    alg = "Ed25519" if isinstance(key, OKPKey) else "ES256"
    return jws.serialize_compact({"alg": alg, **header}, json.dumps(payload), key, algorithms=[alg])


def test_a_payload_with_anything_more_is_refused_so_it_never_reaches_the_log(partner_key):
    payload = {
        "disclosure_id": DISCLOSURE,
        "received_at": "2026-12-07T15:00:00Z",
        "received_sha256": received_sha256(SENT),
        "name": "CANARY-Somchai",
    }
    assert reason_of(_forged(partner_key, {}, payload), partner_key) == "malformed"
    del payload["name"]
    payload["received_at"] = "CANARY-Somchai"
    assert reason_of(_forged(partner_key, {}, payload), partner_key) == "malformed"


def test_a_header_with_anything_more_is_refused(partner_key):
    payload = {
        "disclosure_id": DISCLOSURE,
        "received_at": "2026-12-07T15:00:00Z",
        "received_sha256": received_sha256(SENT),
    }
    assert check(_forged(partner_key, {}, payload), partner_key).kid is None
    token = _forged(partner_key, {"cty": "CANARY"}, payload)
    assert reason_of(token, partner_key) == "malformed"


def test_an_algorithm_the_key_does_not_allow_is_refused(partner_key):
    token = signed(partner_key)
    _, payload, _ = token.split(".")
    none_header = b64(json.dumps({"alg": "none", "kid": partner_key.kid}).encode())
    assert reason_of(f"{none_header}.{payload}.", partner_key) == "alg_not_allowed"
    hs_header = b64(json.dumps({"alg": "HS256", "kid": partner_key.kid}).encode())
    assert reason_of(f"{hs_header}.{payload}.c2ln", partner_key) == "alg_not_allowed"


def test_eddsa_the_older_name_of_ed25519_is_accepted():
    key = OKPKey.generate_key("Ed25519", private=True)
    payload = {
        "disclosure_id": DISCLOSURE,
        "received_at": "2026-12-07T15:00:00+07:00",
        "received_sha256": received_sha256(SENT),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        token = jws.serialize_compact(
            {"alg": "EdDSA"}, json.dumps(payload), key, algorithms=["EdDSA"]
        )
    assert check(token, key).alg == "EdDSA"


def test_key_documents_hold_public_signing_keys_only():
    key = OKPKey.generate_key("Ed25519", private=True)
    with pytest.raises(PartnerKeyError, match="PRIVATE"):
        parse_acknowledgement_keys(key.as_dict(private=True), "k")
    with pytest.raises(PartnerKeyError, match="no signing key"):
        parse_acknowledgement_keys(RSAKey.generate_key(2048).as_dict(private=False), "k")
    with pytest.raises(PartnerKeyError, match="no signing key"):
        parse_acknowledgement_keys({**key.as_dict(private=False), "use": "enc"}, "k")
    jwks = {"keys": [RSAKey.generate_key(2048).as_dict(private=False), key.as_dict()]}
    assert len(parse_acknowledgement_keys(jwks, "k")) == 1


# -- offline: the outcome entry --------------------------------------------------------------


def entry_with(ack: tuple[str, str | None] | None) -> dict:
    return outcome_entry(
        disclosure_id=DISCLOSURE,
        outcome="sent",
        at=AT,
        partner="lao-credit-bureau",
        partner_status=201,
        attempts=1,
        ack=ack,
    )


def test_an_outcome_entry_without_ack_keeps_its_members():
    assert "ack" not in entry_with(None) and "ack_reason" not in entry_with(None)
    assert entry_with(("missing", "missing"))["ack_reason"] == "missing"


def test_offline_verify_of_an_outcome_entry(partner_key):
    token = signed(partner_key)
    entry = entry_with((token, None))
    public = partner_key.as_dict(private=False)
    ack = verify_acknowledgement(json.dumps(entry), public)
    assert ack.disclosure_id == DISCLOSURE
    # As GET /v1/log/entries/{index} answers it, and with the hash of what was sent.
    wrapped = {"index": 7, "leaf_hash": "x", "entry": entry}
    assert verify_acknowledgement(wrapped, json.dumps(public), received_sha256(SENT)).token == token
    with pytest.raises(AcknowledgementInvalid) as exc:
        verify_acknowledgement(entry, public, sent_hash=received_sha256(b"other"))
    assert exc.value.reason == "wrong_hash"
    other = OKPKey.generate_key("Ed25519", private=True).as_dict(private=False)
    with pytest.raises(AcknowledgementInvalid):
        verify_acknowledgement(entry, other)


@pytest.mark.parametrize(
    "ack,reason",
    [
        (None, "missing"),
        (("missing", "missing"), "missing"),
        (("invalid", "wrong_hash"), "wrong_hash"),
    ],
)
def test_offline_verify_says_what_the_gateway_recorded(ack, reason, partner_key):
    with pytest.raises(AcknowledgementInvalid) as exc:
        verify_acknowledgement(entry_with(ack), partner_key.as_dict(private=False))
    assert exc.value.reason == reason


def test_offline_verify_refuses_what_is_not_an_outcome_entry(partner_key):
    public = partner_key.as_dict(private=False)
    for doc in ("[]", "not json", json.dumps({"kind": "intent"})):
        with pytest.raises(AcknowledgementInvalid) as exc:
            verify_acknowledgement(doc, public)
        assert exc.value.reason == "malformed"
