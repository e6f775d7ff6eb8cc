"""What every request to a partner shares, the delivery's and the token endpoint's alike:
who the gateway says it is, which failures are TLS's (not retried), which statuses mean
"not now", a body read with a bound, how long a `Retry-After` asks to wait."""

from __future__ import annotations

import email.utils
from datetime import UTC
from importlib import metadata
from typing import Final, Protocol

import aiohttp


def _user_agent() -> str:
    try:
        return f"disclosure-gateway/{metadata.version('disclosure-gateway')}"
    except metadata.PackageNotFoundError:
        return "disclosure-gateway"


USER_AGENT: Final = _user_agent()

# TLS failures are configuration problems (wrong CA, wrong certificate, wrong
# host), not weather: retrying them only repeats the refusal.
TLS_FAILURES: Final = (
    aiohttp.ClientConnectorCertificateError,
    aiohttp.ClientConnectorSSLError,
    aiohttp.ClientSSLError,
    aiohttp.ServerFingerprintMismatch,
)

# Statuses from a token endpoint (or partner) that say "not now" rather than "no".
TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


class _SizedResponse(Protocol):
    content: aiohttp.StreamReader

    @property
    def content_length(self) -> int | None: ...


async def read_limited(response: _SizedResponse, limit: int) -> bytes | None:
    """The body of `response`, or None when it is longer than `limit` bytes."""
    if response.content_length is not None and response.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3), or None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
