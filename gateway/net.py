"""Network-address helpers shared by the config, partner and sandbox checks.

A leaf: it imports nothing of gateway/, so `config` (which checks the caller JWKS URL) and
`partners` (base URLs, token and key URLs) read the same rule without one importing the
other.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and any loopback address (127.0.0.0/8, ::1); a name other
    than `localhost` is not resolved, so it never counts as loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_https_or_loopback_http(parts: SplitResult) -> bool:
    """The transport rule for every URL the gateway fetches or sends to: https://, or
    plain http:// only to a loopback host (a sandbox on this machine)."""
    return parts.scheme == "https" or (
        parts.scheme == "http" and is_loopback_host(parts.hostname or "")
    )


def fetchable_url(value: object) -> str | None:
    """`value` if it is a URL string the transport rule allows (https://, or http:// to
    loopback), else None: the check of each configured URL the gateway fetches (the callers'
    JWKS, a partner's JWKS and token endpoint)."""
    if isinstance(value, str) and is_https_or_loopback_http(urlsplit(value)):
        return value
    return None
