"""gateway.net: which hosts count as loopback, and the https-or-loopback-http rule that the
caller JWKS URL (config) and every partner URL (partners) share."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from gateway.net import fetchable_url, is_https_or_loopback_http, is_loopback_host


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    # A name is never resolved: only `localhost` itself counts, not a name that happens
    # to resolve to 127.0.0.1 (or a look-alike of it).
    "host",
    ["", "example.org", "localhost.example.org", "10.0.0.1", "::2", "0.0.0.0", "[::1]"],
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example.org/jwks.json",
        "https://127.0.0.1:8443/",
        "http://127.0.0.1:9000/jwks.json",
        "http://[::1]:9000/",
        "http://localhost/",
    ],
)
def test_https_anywhere_and_http_on_loopback_pass(url: str) -> None:
    assert is_https_or_loopback_http(urlsplit(url))


@pytest.mark.parametrize(
    "url",
    ["http://idp.example.org/jwks.json", "ftp://127.0.0.1/", "file:///etc/jwks.json", "x"],
)
def test_plain_http_elsewhere_and_other_schemes_fail(url: str) -> None:
    assert not is_https_or_loopback_http(urlsplit(url))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://idp.example.org/jwks.json", "https://idp.example.org/jwks.json"),
        ("http://127.0.0.1:9000/jwks.json", "http://127.0.0.1:9000/jwks.json"),
        ("http://idp.example.org/jwks.json", None),
        ("", None),
        (None, None),
        (42, None),
        (["https://idp.example.org/"], None),
    ],
)
def test_fetchable_url_is_the_string_only_when_the_rule_allows_it(
    value: object, expected: str | None
) -> None:
    assert fetchable_url(value) == expected
