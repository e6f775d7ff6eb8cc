"""Every refusal as RFC 9457 problem+json, in one place; and safe JSON bodies.

Handlers raise GatewayError; this middleware renders it. Anything unexpected
becomes a 500 `internal_error` with no stack trace or input echoed to the
caller (the traceback goes to the application log, which holds no payloads).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.disclosure.limits import SHED_CODES
from gateway.errors import (
    GatewayError,
    InternalServerError,
    InvalidRequestError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    error_for,
)
from gateway.observe.app_log import PROBLEM_CODE
from gateway.problem_catalog import CATALOGUE
from gateway.web.keys import METRICS

log = logging.getLogger("gateway.web")

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    413: "payload_too_large",
}


def retry_after_s(error: GatewayError) -> float | None:
    """Seconds after which the same call can succeed: the raise site's own figure, else
    the catalogue's rule for the code (None: a retry cannot succeed on its own)."""
    if error.retry_after_s is not None:
        return error.retry_after_s
    return CATALOGUE[error.code].retry_after_s


def problem_headers(error: GatewayError) -> dict[str, str]:
    """The headers every answer of this error carries, whatever renders its body."""
    headers: dict[str, str] = {}
    if error.disclosure_id:
        headers["Disclosure-Id"] = error.disclosure_id
    retry_after = retry_after_s(error)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        # Delta-seconds (RFC 9110 §10.2.3): whole seconds, never 0 while a wait is due.
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if error.code == "unauthenticated":
        headers["WWW-Authenticate"] = 'Bearer realm="disclosure-gateway"'
    return headers


def problem_response(error: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    extra = {**problem_headers(error), **(headers or {})}
    body = (
        _shed_body(error.code, error.detail)
        if error.code in SHED_CODES and error.disclosure_id is None
        else json.dumps(error.problem()).encode("utf-8")
    )
    response = web.Response(
        status=error.status, body=body, content_type=PROBLEM_JSON, headers=extra
    )
    response[PROBLEM_CODE] = error.code
    return response


@functools.lru_cache(maxsize=256)
def _shed_body(code: str, detail: str) -> bytes:
    """The problem document of a shed request, rendered once per limit: a flood of retries
    that ignore Retry-After gets the same bytes again at the cost of a dict lookup (its
    detail names the limit, never the moment's count, gateway.disclosure.limits)."""
    return json.dumps(error_for(code, detail).problem()).encode("utf-8")


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if any("\x00" in v for v in request.match_info.values()):
            raise InvalidRequestError("the path may not contain %00 (NUL)")
        return await handler(request)
    except GatewayError as exc:
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.refused(exc.code)
        return problem_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            return problem_response(
                MethodNotAllowedError(
                    f"{request.method} is not allowed here; allowed: {allowed}",
                ),
                {"Allow": allowed},
            )
        code = _HTTP_CODES.get(exc.status, "invalid_request")
        detail = {
            # The path is not echoed: a mistyped route may carry a subject id.
            404: f"no route for this {request.method} path; see GET /openapi.json",
            413: "the request body is larger than server.max_body_bytes",
        }.get(exc.status, exc.reason)
        return problem_response(error_for(code, detail))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.match_info.route.name)
        return problem_response(
            InternalServerError(
                "the gateway failed unexpectedly; nothing more is shown here, "
                "the operators have the details in the application log",
            )
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf, which JSON cannot carry on
        raise ValueError("a number beyond the range of a double")
    return value


# One decoder for every body: json.loads with hooks builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


# PostgreSQL text cannot hold U+0000, and a lone surrogate (JSON's "\ud800" escape without
# its pair) is not Unicode text at all: neither can be stored, hashed, signed or logged.
_UNUSABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _unusable_character(value: object) -> str | None:
    """The first NUL or lone surrogate in any key or string of `value`, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _UNUSABLE_CHARACTER.search(item)
            if found is not None:
                return found.group()
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _depth(value: object, limit: int) -> bool:
    """True if `value` nests no deeper than `limit` (iterative: no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


async def read_json(request: web.Request, *, max_depth: int, max_body: int, also: str = "") -> Any:
    """The body as JSON, or a 400/413 problem that says what is wrong; `also` names another
    media type the route reads (said in the refusal of any other)."""
    ctype = request.content_type
    if ctype not in ("application/json", "application/problem+json") and not ctype.endswith(
        "+json"
    ):
        accepted = f"application/json, or {also}," if also else "application/json,"
        raise InvalidRequestError(f"Content-Type must be {accepted} got {ctype[:60]!r}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLargeError(
            f"the body is larger than {max_body} bytes (server.max_body_bytes)"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the body is not valid UTF-8") from None
    return parse_json_text(text, max_depth)


def parse_json_text(text: str, max_depth: int) -> Any:
    """`text` as JSON a handler may use, or a 400 problem that says what is wrong."""
    if text.startswith("\ufeff"):  # as json.loads refuses it (the decoder alone does not)
        raise InvalidRequestError("the body is not valid JSON at line 1 column 1") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise InvalidRequestError(f"the JSON nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise InvalidRequestError(f"the body is not valid JSON{where}") from None
    # Each walk below is skipped when the text alone rules out what it looks for: it cost
    # three times the parse on a disclosure body.
    containers = text.count("{") + text.count("[")  # strings' brackets too: an upper bound
    if containers > max_depth and not _depth(value, max_depth):
        raise InvalidRequestError(
            f"the JSON nests deeper than {max_depth} levels (server.max_json_depth)",
        )
    # A NUL or a lone surrogate can only come from a \u escape: the decoder refuses a raw
    # control character in a string, and UTF-8 text holds no surrogate.
    unusable = _unusable_character(value) if "\\u" in text else None
    if unusable == "\x00":
        raise InvalidRequestError("strings may not contain the NUL character (U+0000)")
    if unusable is not None:
        raise InvalidRequestError(
            "strings may not contain a lone surrogate (a \\ud800-\\udfff escape without its "
            "pair): the JSON text must encode Unicode characters",
        )
    return value
