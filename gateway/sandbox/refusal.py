"""How a sandbox partner says no: one `Refusal`, raised by every check and faked by a fault.

It renders as the OAuth2-style `{"error", "error_description"}` body real partners send
(RFC 6749 §5.2), so the gateway meets the same shape from a sandbox as from a partner.
The detail names what was expected and what arrived, never a disclosed value.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web


class Refusal(Exception):
    """An answer other than success; rendered as `{"error", "error_description"}`."""

    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.error, "error_description": self.detail},
            status=self.status,
            headers=self.headers,
        )
