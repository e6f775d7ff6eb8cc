"""The content negotiation of the consent routes (gateway.web.routes.consent_records):
JSON-LD only when Accept prefers it, and only the gateway's own context in a posted record."""

from __future__ import annotations

import json

import pytest

from gateway.policy import dpv
from gateway.web.routes.consent_records import context_file, is_our_context, prefers_json_ld


@pytest.mark.parametrize(
    ("accept", "json_ld"),
    [
        (None, False),
        ("", False),
        ("application/json", False),
        ("*/*", False),
        ("application/ld+json", True),
        ("application/ld+json; charset=utf-8", True),
        ("application/json, application/ld+json", False),  # a tie stays plain
        ("application/json;q=0.5, application/ld+json", True),
        ("application/ld+json;q=0.9, application/json", False),
        ("application/ld+json, */*;q=0.1", True),
        ("application/*, application/ld+json;q=0", False),
        ("text/html", False),
        ("application/ld+json;q=oops", False),
    ],
)
def test_json_ld_only_when_accept_prefers_it(accept: str | None, json_ld: bool) -> None:
    assert prefers_json_ld(accept) is json_ld


@pytest.mark.parametrize(
    ("context", "ours"),
    [
        (dpv.CONTEXT_PATH, True),
        ("http://127.0.0.1:8080/v1/contexts/consent.jsonld", True),
        ("https://gateway.example/v1/contexts/consent.jsonld", True),
        (json.loads(context_file())["@context"], True),
        ("https://w3id.org/dpv", False),
        ("ftp://gateway.example/v1/contexts/consent.jsonld", False),
        ("/v1/contexts/other.jsonld", False),
        ("http://[", False),
        ({"dpv": "https://w3id.org/dpv#"}, False),
        ([dpv.CONTEXT_PATH], False),
        (None, False),
    ],
)
def test_only_the_gateways_context_is_read(context: object, ours: bool) -> None:
    assert is_our_context(context) is ours
