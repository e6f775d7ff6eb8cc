"""A loopback OTLP/HTTP trace receiver: what the gateway exports, as raw bytes and as spans.

`POST /v1/traces` takes the protobuf `ExportTraceServiceRequest` the OTLP/HTTP exporter
sends (decoded with opentelemetry-proto) and keeps the body as it came, so a test can
search the bytes that left the process as well as read the spans.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, object]
    status_code: int


@dataclass
class OtlpReceiver:
    bodies: list[bytes] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for one in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=one.name,
                            trace_id=one.trace_id.hex(),
                            span_id=one.span_id.hex(),
                            parent_span_id=one.parent_span_id.hex(),
                            kind=one.kind,
                            attributes={a.key: _value(a.value) for a in one.attributes},
                            status_code=one.status.code,
                        )
                    )
        self.arrived.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF
        )

    def named(self, name: str) -> list[ReceivedSpan]:
        return [one for one in self.spans if one.name == name]


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind is not None else None
