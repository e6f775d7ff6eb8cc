"""What every request to a partner shares, the delivery's and the token endpoint's alike:
which failures are TLS's (not retried), which statuses mean "not now", a body read with a
bound."""

from __future__ import annotations

from typing import Final, Protocol

import aiohttp

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
