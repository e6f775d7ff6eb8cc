"""Application logs: one JSON object per line, tied to the request, with no personal value.

`setup_logging()` installs one handler on the root logger: every `gateway` command
calls it (warnings and up, as JSON lines on stderr), `gateway serve` again at INFO
(`--log-format text` for a terminal). `request_context` is the aiohttp middleware that
gives every request an id (`X-Request-Id` in and out), makes it and the facts bound
with `bind()` (disclosure id, caller, partner, problem code) part of every record
logged while the request runs (and, while tracing is on, the trace id of the current
span: a line naming a disclosure names its trace, `gateway.observe.tracing`), and writes
one line per request naming the route template — never the path, which may hold a
subject id. Which requests get that line is ``[server] access_log`` (`ACCESS_LOGS`): by
default only the refused, failed and unanswered ones, since every disclosure is in the
disclosure log already and a line per request costs a tenth of a disclosure's CPU.

What keeps personal values out (CONTRACT §5: "no personal data value is ever
written … to application logs"):
- only whitelisted record attributes are written (`FIELDS`); an accidental
  `extra={"data": …}` goes nowhere;
- exception messages are withheld: a traceback shows frames and exception types
  only (a database error can quote a row, a parser error the bytes it choked on);
  a GatewayError shows its problem code;
- `aiohttp.access` records are dropped (their request line and Referer/User-Agent
  are the caller's text), and aiohttp's parser errors, which log the first bytes
  of a malformed request, are rewritten to the error's type and status;
- libraries' DEBUG records are dropped (aiosqlite's repr every query with its
  arguments), and asyncio's error reports keep their first line only (the rest
  is the repr of a task, with its exception's message);
- request bodies, header values and problem details are never logged: the request
  line names the problem code, not the detail (a 404 detail echoes the path).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from gateway.errors import GatewayError
from gateway.observe.tracing import current_trace_id

LogFormat = Literal["json", "text"]
LOG_FORMATS: Final = ("json", "text")
AccessLog = Literal["all", "errors", "off"]
# all: a line per request; errors: per request answered 4xx/5xx or not at all; off: none.
ACCESS_LOGS: Final = ("all", "errors", "off")
DEFAULT_ACCESS_LOG: Final[AccessLog] = "errors"
REQUEST_ID_HEADER: Final = "X-Request-Id"
PROBLEM_CODE: Final = web.ResponseKey("problem_code", str)
"""The problem code of a problem+json response, set by whoever renders it (the web
layer's problem middleware), so the request line need not parse the body back."""

# Facts of the current request that every record logged during it carries.
CONTEXT_KEYS: Final = ("request_id", "disclosure_id", "caller", "partner", "problem")
# Everything a record may show besides time, level, logger and message, in this order.
FIELDS: Final = (
    *CONTEXT_KEYS,
    "operation",
    "purpose",
    "legal_basis",
    "outcome",
    "attempts",
    "method",
    "route",
    "status",
    "duration_ms",
    "trace_id",
)
# An incoming request id is echoed and logged only if it looks like an id: a caller's
# free text must not become a way to put arbitrary values into the log.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
# Probes and scrapes would drown the log at INFO.
_QUIET_ROUTES: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_MAX_CHAIN: Final = 5
# aiohttp accepts any token as a method; only these are logged by name.
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_context: ContextVar[dict[str, str] | None] = ContextVar("gateway_log_context", default=None)

log = logging.getLogger("gateway.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bind(**facts: str | None) -> None:
    """Attach facts (keys of CONTEXT_KEYS) to the current request's records and its request
    line. Outside a request it does nothing. Never bind a personal value: only ids."""
    unknown = sorted(set(facts) - set(CONTEXT_KEYS))
    if unknown:
        raise ValueError(f"cannot bind {unknown}; log context keys: {', '.join(CONTEXT_KEYS)}")
    context = _context.get()
    if context is None:
        return
    for key, value in facts.items():
        if value is not None:
            context[key] = str(value)


def new_request_id() -> str:
    return uuid.uuid4().hex


# -- what a record may show ------------------------------------------------------------------


def safe_traceback(exc: BaseException) -> str:
    """Frames and exception types of `exc` and its causes, without any exception message."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < _MAX_CHAIN:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    lines: list[str] = []
    for number, one in enumerate(reversed(chain)):
        if number:
            lines.append("which led to:")
        lines.append("Traceback (most recent call last; exception messages withheld):")
        for frame in traceback.extract_tb(one.__traceback__):
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
        lines.append(_exception_name(one))
    return "\n".join(lines)


def _exception_name(exc: BaseException) -> str:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if isinstance(exc, GatewayError):
        return f"{name}: {exc.code}"
    if isinstance(exc, HttpProcessingError):
        return f"{name}: {exc.code}"
    return name


class PersonalDataFilter(logging.Filter):
    """Drops or rewrites records that would carry what callers sent (see the module doc).

    Attach it to the handler, so it sees records of every logger, and it changes the
    record in place: whatever handles the record afterwards gets the safe version.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "aiohttp.access":
            return False
        ours = record.name == "gateway" or record.name.startswith(("gateway.", "aiohttp."))
        if record.levelno <= logging.DEBUG and not ours:
            return False
        if record.name == "asyncio":
            record.msg, record.args = record.getMessage().split("\n", 1)[0], None
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.name.startswith("aiohttp"):
            # "Error handling request from <address>" + a traceback whose message quotes
            # the raw request line or header: keep only what kind of error it was.
            record.msg = "rejected a malformed HTTP request: %s (status %d)"
            record.args = (type(exc).__name__, exc.code)
            if record.levelno > logging.WARNING:
                # The client's fault, not the server's.
                record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        elif exc is not None:
            record.exc_text = safe_traceback(exc)
            record.exc_info = None
        record.stack_info = None
        return True


def _facts(record: logging.LogRecord) -> dict[str, object]:
    context = _context.get() or {}
    facts: dict[str, object] = {}
    for key in FIELDS:
        value = getattr(record, key, None)
        if value is None:
            value = context.get(key)
        if value is not None:
            facts[key] = value if isinstance(value, int | float | bool) else str(value)
    if "trace_id" not in facts and (trace_id := current_trace_id()) is not None:
        facts["trace_id"] = trace_id
    return facts


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[1] is not None:
        return safe_traceback(record.exc_info[1])
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, then the FIELDS present."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            **_facts(record),
        }
        exception = _exception_text(record)
        if exception:
            doc["exception"] = exception
        try:
            return orjson.dumps(doc, default=str).decode("utf-8")
        except orjson.JSONEncodeError:  # a lone surrogate in a message: json escapes it
            return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a terminal: `time LEVEL logger message key=value …`, same content as JSON."""

    def format(self, record: logging.LogRecord) -> str:
        facts = " ".join(f"{key}={value}" for key, value in _facts(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if facts:
            line += f"  [{facts}]"
        exception = _exception_text(record)
        return f"{line}\n{exception}" if exception else line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted, not when the handler
    was made: a CLI command run in-process (tests, `gateway demo`) with stderr redirected
    gets its log lines in the redirected stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr, looked up at each record


def setup_logging(
    log_format: LogFormat | str = "json", *, level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Send every record to `stream` (stderr) through the filter, as JSON lines or text.

    Idempotent: a second call replaces the handler of the first.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(PersonalDataFilter())
    handler.set_name("gateway")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "gateway"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    # A record that fails to format would otherwise be printed raw, arguments included.
    logging.raiseExceptions = False
    return handler


# -- the request middleware ------------------------------------------------------------------


def route_of(request: web.Request) -> str:
    """The route template of `request` (never its path, which may hold a subject id)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def method_of(request: web.Request) -> str:
    """The request's method, or OTHER: aiohttp accepts any token as a method."""
    return request.method if request.method in _METHODS else "OTHER"


def _problem_code(response: web.StreamResponse) -> str | None:
    code: str | None = response.get(PROBLEM_CODE)
    if code is not None:
        return code
    if (
        not isinstance(response, web.Response)
        or response.content_type != "application/problem+json"
    ):
        return None
    if not isinstance(response.body, bytes):
        return None
    try:
        doc = json.loads(response.body)
    except ValueError:
        return None
    kind = doc.get("type") if isinstance(doc, dict) else None
    return kind.rstrip("/").rsplit("/", 1)[-1] if isinstance(kind, str) else None


def request_context_for(
    access_log: AccessLog, *, unlogged: frozenset[str] = frozenset()
) -> Middleware:
    """`request_context`, writing the request lines `access_log` asks for (ACCESS_LOGS),
    never one for an answer with a problem code in `unlogged`: the load shedding's, counted
    on /metrics instead, whose lines would come at the rate of whoever floods the gateway
    and cost its CPU while it sheds."""
    if access_log not in ACCESS_LOGS:
        raise ValueError(f"access_log must be one of {', '.join(ACCESS_LOGS)}, not {access_log!r}")
    min_status = {"all": 0, "errors": 400, "off": None}[access_log]

    @web.middleware
    async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Request id in and out, the log context of the request, one line when it ends.

        Goes first in the middleware list, so it sees the problem document the problem
        middleware renders. A response streamed by its handler (already sent) cannot
        get the X-Request-Id header; its request line still has the id.
        """
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        context = {"request_id": request_id}
        token = _context.set(context)
        started = time.perf_counter()
        status: int | None = None
        try:
            response = await handler(request)
            status = response.status
            disclosure_id = response.headers.get("Disclosure-Id")
            if disclosure_id and "disclosure_id" not in context:
                context["disclosure_id"] = disclosure_id
            problem = _problem_code(response)
            if problem is not None:
                context["problem"] = problem
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:  # redirects and the like, raised past the problem layer
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            if (
                min_status is not None
                and (status is None or status >= min_status)
                and context.get("problem") not in unlogged
            ):
                _request_line(request, status, started)
            _context.reset(token)

    return request_context


request_context: Final = request_context_for("all")
"""The middleware with a line for every request (tests, and apps without a config)."""


def _request_line(request: web.Request, status: int | None, started: float) -> None:
    route = route_of(request)
    method = method_of(request)
    if status is None:
        level = logging.WARNING
    elif status >= 500:
        level = logging.WARNING
    elif route in _QUIET_ROUTES:
        level = logging.DEBUG
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):
        return
    context = _context.get() or {}
    outcome = str(status) if status is not None else "ended without a response"
    problem = context.get("problem")
    log.log(
        level,
        "%s %s %s%s",
        method,
        route,
        outcome,
        f" {problem}" if problem else "",
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
