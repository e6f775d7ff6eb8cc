"""Answers to requests aiohttp's HTTP parser rejects, as problem+json that echoes nothing.

A request line or header too long, or not HTTP at all, never reaches the application or its
middlewares: aiohttp's protocol handler answers it itself, as text/plain quoting the first
100 bytes of the offending line — a subject id from the path, a bearer token's prefix. aiohttp
offers no hook for these answers (aio-libs/aiohttp#3287 is open), so the one way in is the
protocol handler class its `Server` instantiates: `install()` puts a subclass in its place
whose `handle_error` renders the parser's errors as problem+json, status 414 for a request
line, 431 for a header, 400 for anything else, with a fixed detail. Other errors (500, 504)
keep aiohttp's own handling. The application log records only the kind of error
(gateway.observe.app_log.PersonalDataFilter).
"""

from __future__ import annotations

import json
import traceback
from typing import Final

from aiohttp import web_server
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, StreamResponse

from gateway.errors import GatewayError, error_for

# Parser frames that read the request line, and those that read a header (the C parser's
# callbacks, which aiohttp uses wherever its extension is built, and the pure-Python
# parser's header reader; its request-line errors fall back to a plain 400).
_REQUEST_LINE_FRAMES: Final = frozenset({"cb_on_url", "cb_on_status"})
_HEADER_FRAMES: Final = frozenset({"cb_on_header_field", "cb_on_header_value", "parse_headers"})

_DETAILS: Final = {
    "uri_too_long": "the request line (method, path and query) is longer than the gateway "
    "reads (8190 bytes): shorten the path or query; subject ids and filters belong in "
    "short ids or a request body",
    "headers_too_large": "a request header is longer than the gateway reads (8190 bytes): "
    "send shorter headers (a bearer token of normal size, no oversized cookies)",
    "invalid_request": "the request is not well-formed HTTP/1.1 (request line, headers or "
    "chunked body): send a valid HTTP request",
}


def parser_problem(exc: BaseException | None) -> GatewayError:
    """The problem for a request the HTTP parser refused; its detail never quotes the request."""
    code = "invalid_request"
    if isinstance(exc, LineTooLong):
        # Cython frames are named with their module ("aiohttp._http_parser.cb_on_url").
        frames = {f.name.rsplit(".", 1)[-1] for f in traceback.extract_tb(exc.__traceback__)}
        if frames & _HEADER_FRAMES:
            code = "headers_too_large"
        elif frames & _REQUEST_LINE_FRAMES:
            code = "uri_too_long"
    return error_for(code, _DETAILS[code])


class ProblemRequestHandler(RequestHandler):
    """aiohttp's protocol handler, answering the parser's refusals as problem+json."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return super().handle_error(request, status, exc, message)
        self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; cannot send the problem")
        problem = parser_problem(exc)
        response = Response(
            status=problem.status,
            body=json.dumps(problem.problem()).encode("utf-8"),
            content_type="application/problem+json",
        )
        response.force_close()
        return response


def install() -> None:
    """Make every aiohttp server of this process use ProblemRequestHandler (idempotent)."""
    web_server.RequestHandler = ProblemRequestHandler  # type: ignore[attr-defined]
