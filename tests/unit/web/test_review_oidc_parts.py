"""The pure parts of the review site's OpenID sign-in: the provider's discovery document,
the session and flow cookies of a provider's person, and reading an unverified issuer."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import SignInUnavailableError
from gateway.web.review.oidc_client import ProviderMetadata, peek_issuer, person_id
from gateway.web.review.personal_tokens import PersonalTokenError, lifetimes_days, mint
from gateway.web.review.session import OIDC_FLOW_TTL, SessionSigner

ISSUER = "https://login.example.com"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/jwks",
}


def test_discovery_document_is_read() -> None:
    metadata = ProviderMetadata.parse(
        DOCUMENT | {"device_authorization_endpoint": f"{ISSUER}/device"}, ISSUER
    )
    assert metadata.token_endpoint == f"{ISSUER}/token"
    assert metadata.device_authorization_endpoint == f"{ISSUER}/device"
    assert ProviderMetadata.parse(DOCUMENT, ISSUER).device_authorization_endpoint is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "https://evil.example.com"}, "names another issuer"),
        ({"token_endpoint": "http://login.example.com/token"}, "token_endpoint is missing"),
        ({"jwks_uri": None}, "jwks_uri is missing"),
    ],
)
def test_a_discovery_document_the_gateway_cannot_trust_is_refused(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(SignInUnavailableError, match=message):
        ProviderMetadata.parse(DOCUMENT | change, ISSUER)


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


def test_peek_issuer_only_reads_what_a_jwt_claims() -> None:
    assert peek_issuer(_jwt({"iss": ISSUER})) == ISSUER
    assert peek_issuer(_jwt({"iss": 7})) is None
    assert peek_issuer("dgpt_abc_def") is None
    assert peek_issuer("a.%%%.c") is None


def test_a_providers_person_session_carries_name_and_roles() -> None:
    signer = SessionSigner(b"k" * 32)
    who = person_id(ISSUER, "sub-1")
    cookie, _ = signer.issue(
        who, "oidc-source", NOW, name="Dara", roles=frozenset({"reviewer", "rights_officer"})
    )
    session = signer.open(cookie, NOW)
    assert session is not None
    assert (session.reviewer_id, session.name) == (who, "Dara")
    assert session.roles == {"reviewer", "rights_officer"}
    assert session.fingerprint == signer.fingerprint("oidc-source")
    password_cookie, _ = signer.issue("alice", "$scrypt$…", NOW)
    opened = signer.open(password_cookie, NOW)
    assert opened is not None and opened.name is None and opened.roles == frozenset()


def test_the_flow_cookie_is_signed_and_short_lived() -> None:
    signer = SessionSigner(b"k" * 32)
    flow = {"state": "s", "nonce": "n", "verifier": "v", "next": "/review/"}
    cookie = signer.issue_flow(flow, NOW)
    assert signer.open_flow(cookie, NOW + OIDC_FLOW_TTL - timedelta(seconds=1)) == flow
    assert signer.open_flow(cookie, NOW + OIDC_FLOW_TTL) is None
    forged = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    assert signer.open_flow(forged, NOW) is None
    # A session cookie is not a flow cookie, nor the other way round (separate contexts).
    session_cookie, _ = signer.issue("alice", "h", NOW)
    assert signer.open_flow(session_cookie, NOW) is None
    assert signer.open(cookie, NOW) is None


@pytest.mark.parametrize(
    ("max_days", "offered"),
    [(90, (7, 30, 90)), (30, (7, 30)), (14, (7, 14)), (3, (3,)), (365, (7, 30, 90, 365))],
)
def test_personal_token_lifetimes_stop_at_the_configured_maximum(
    max_days: int, offered: tuple[int, ...]
) -> None:
    assert lifetimes_days(max_days) == offered
    made = mint("alice", frozenset({"reviewer"}), NOW, offered[-1], max_days)
    assert made.record.expires_at == NOW + timedelta(days=offered[-1])
    with pytest.raises(PersonalTokenError, match=f"not {max_days + 1}"):
        mint("alice", frozenset({"reviewer"}), NOW, max_days + 1, max_days)
