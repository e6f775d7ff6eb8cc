"""OpenTelemetry traces, on only when the standard `OTEL_*` variables ask for them.

Every use of OpenTelemetry is here; the rest of the code calls the small facade below
(`span`, `current_trace_id`, `forward_trace_context`, `server_spans`). While tracing is off
— no OTLP endpoint in the environment, the default — the facade returns at its first
line: no OpenTelemetry module is imported, no span object or attribute dict is built.

On (`start`, from the app's `cleanup_ctx`, once per serving process): the SDK's
`TracerProvider` with a batch processor and the OTLP/HTTP exporter, both configured by
the SDK itself from the process environment (`OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`). The provider is this
module's own, not the global one: a test or the demo may start several apps in one process.

What a span may carry is chosen here and by its callers (CONTRACT §5: no personal value
in traces): ids, vocabulary values, route templates, status codes and problem codes.
Never a URL path (the subject routes hold a subject id; a partner URL may hold a
minimized value), a header value, an exception message, or the caller's `tracestate`
(free text: only its `traceparent` is continued). That is also why the aiohttp server and
client instrumentations are not used: the server one records `http.target`/`url.path` and
the User-Agent and records exception messages, the client one the full partner URL, and it
injects `traceparent` into every request of every session, not only to partners whose
file says `forward_trace_context = true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

AttributeValue = str | int | bool
Attributes = Mapping[str, AttributeValue]

TRACEPARENT: Final = "traceparent"
INSTALL_HINT: Final = "pip install 'disclosure-gateway[tracing]'"
_ENDPOINT_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_SERVICE_NAME: Final = "disclosure-gateway"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Tracing:
    """The live provider and its tracer while tracing is on."""

    def __init__(self, provider: TracerProvider) -> None:
        from gateway import __version__

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("gateway", __version__)


_on: _Tracing | None = None


class SpanNotes:
    """What a step learns while its span is open (a status code, an outcome)."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def note(self, key: str, value: AttributeValue) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)


_NO_NOTES: Final = SpanNotes(None)
_OFF: Final = contextlib.nullcontext(_NO_NOTES)


# -- switching it on and off -------------------------------------------------------------


def wanted(env: Mapping[str, str]) -> bool:
    """Whether `env` asks for traces: an OTLP endpoint (or `OTEL_TRACES_EXPORTER=otlp`),
    and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(env.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def check_environment(env: Mapping[str, str] = os.environ) -> None:
    """ConfigError when `env` asks for traces the gateway cannot send: another exporter
    than OTLP, or OpenTelemetry not installed. `gateway serve` then does not start."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter not in ("", "otlp", "none"):
        raise ConfigError(
            "OTEL_TRACES_EXPORTER",
            None,
            f"{exporter!r} is not supported: the gateway exports traces over OTLP/HTTP only; "
            'set it to "otlp" (or "none" to turn tracing off)',
        )
    if not wanted(env):
        return
    _check_protocol(env)
    _check_endpoints(env)
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            None,
            "tracing is asked for but OpenTelemetry is not installed: "
            f"{INSTALL_HINT}, or unset the OTEL_EXPORTER_OTLP_* variables",
        ) from exc


# The SDK's OTLP/HTTP exporter sends protobuf whatever these say; a collector told to expect
# gRPC or JSON would drop every span with no error on the gateway's side.
_PROTOCOL_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


def _check_protocol(env: Mapping[str, str]) -> None:
    for name in _PROTOCOL_VARIABLES:
        protocol = env.get(name, "").strip().lower()
        if protocol not in ("", "http/protobuf"):
            raise ConfigError(
                name,
                None,
                f"{protocol[:40]!r} is not supported: the gateway exports traces over OTLP/HTTP "
                'with protobuf only; set it to "http/protobuf" or unset it, and point '
                "the endpoint at the collector's OTLP/HTTP port (4318 by default)",
            )


def _check_endpoints(env: Mapping[str, str]) -> None:
    # The SDK takes any string and only logs, at each export, that it could not send.
    for name in _ENDPOINT_VARIABLES:
        endpoint = env.get(name, "").strip()
        if not endpoint:
            continue
        try:
            url = urlsplit(endpoint)
            usable = url.scheme in ("http", "https") and bool(url.hostname)
        except ValueError:  # an unclosed [IPv6 bracket
            usable = False
        if not usable:
            raise ConfigError(
                name,
                None,
                "must be the collector's http:// or https:// URL, e.g. "
                "http://collector:4318 (the value is not repeated here: it may hold a secret)",
            )


def middlewares(env: Mapping[str, str] = os.environ) -> list[Middleware]:
    """`server_spans` when `env` asks for traces; nothing at all otherwise."""
    return [server_spans] if wanted(env) else []


def start(env: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on if `env` asks for it; whether it is on."""
    global _on
    check_environment(env)
    if not wanted(env) or _on is not None:
        return _on is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: _SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_BSP_*
    _on = _Tracing(provider)
    return True


async def stop() -> None:
    """Send what is buffered and turn tracing off. The exporter posts from its own thread
    with a blocking client, so the flush runs off the loop (the receiver may be on it)."""
    global _on
    on, _on = _on, None
    if on is not None:
        await asyncio.to_thread(on.provider.shutdown)


async def lifetime(_app: web.Application) -> AsyncIterator[None]:
    """The app's `cleanup_ctx`: tracing for as long as the app serves, in every process."""
    start()
    try:
        yield
    finally:
        await stop()


def enabled() -> bool:
    return _on is not None


# -- the facade ------------------------------------------------------------------------


def span(
    name: str,
    attributes: Callable[[], Attributes] | None = None,
    *,
    client: bool = False,
) -> contextlib.AbstractContextManager[SpanNotes]:
    """A span around a step, child of the current one; `attributes` is called only when
    tracing is on. An exception marks the span failed with its problem code (never its
    message). `client`: the span of a request to another service."""
    on = _on
    if on is None:
        return _OFF
    return _span(on.tracer, name, attributes() if attributes is not None else None, client)


@contextlib.contextmanager
def _span(
    tracer: Tracer, name: str, attributes: Attributes | None, client: bool
) -> Iterator[SpanNotes]:
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as one:
        try:
            yield SpanNotes(one)
        except BaseException as exc:
            _failed(one, exc)
            raise


def _failed(one: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    code = exc.code if isinstance(exc, GatewayError) else type(exc).__name__
    one.set_attribute("error.type", code)
    one.set_status(Status(StatusCode.ERROR, code))


def annotate(attributes: Callable[[], Attributes]) -> None:
    """Add what a step has just learnt (a disclosure's id) to the current span."""
    if _on is None:
        return
    from opentelemetry.trace import get_current_span

    get_current_span().set_attributes(attributes())


def current_trace_id() -> str | None:
    """The trace id of the current span (32 hex digits), for the application log."""
    if _on is None:
        return None
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def forward_trace_context(headers: MutableMapping[str, str]) -> None:
    """Add the current span's `traceparent` to `headers` (only that: the caller's
    `tracestate` is its free text). Call it for a partner whose file allows it."""
    if _on is None:
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    if TRACEPARENT in carrier:
        headers[TRACEPARENT] = carrier[TRACEPARENT]


@web.middleware
async def server_spans(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One SERVER span per request, continuing the caller's W3C `traceparent`, named by the
    route template (`POST /v1/subjects/{subject}/erasure`), never by the path."""
    on = _on
    if on is None:
        return await handler(request)
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from gateway.observe.app_log import method_of, route_of

    method, route = method_of(request), route_of(request)
    incoming = request.headers.get(TRACEPARENT)
    parent = (
        TraceContextTextMapPropagator().extract({TRACEPARENT: incoming})
        if incoming is not None
        else None
    )
    with on.tracer.start_as_current_span(
        f"{method} {route}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": route},
        record_exception=False,
        set_status_on_exception=False,
    ) as one:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            one.set_attribute("http.response.status_code", exc.status)
            raise
        except BaseException as exc:
            _failed(one, exc)
            raise
        one.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            one.set_status(Status(StatusCode.ERROR))
        return response
