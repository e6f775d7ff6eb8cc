"""The failures a test can inject into a sandbox partner, and how each is acted out.

Error statuses, hangs, dropped connections, slow bodies, bodies dripped byte by byte
or cut off half-way, a spoiled acknowledgement (`bad_ack`, for a partner whose file
asks for one): queued in process through `Faults` (`SandboxPartner.fail_next`
and friends) or over HTTP with `POST /_sandbox/faults` (`Faults.queue_json`), so a
separate process (the demo, a benchmark) can steer a sandbox too. `answer_with` plays
the fault a request drew around the partner's normal handling.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Literal

from aiohttp import web

from gateway.sandbox.refusal import Refusal

__all__ = ["Endpoint", "Fault", "FaultKind", "Faults", "answer_with"]

Endpoint = Literal["disclosure", "token", "any"]
FaultKind = Literal["fail", "hang", "reset", "slow", "drip", "cut", "ack"]
# How `bad_ack` spoils the acknowledgement (gateway.crypto.acknowledgement.REASONS names
# what the gateway makes of each).
AckSpoil = Literal["missing", "malformed", "wrong_key", "wrong_disclosure", "wrong_hash"]
ACK_SPOILS: tuple[AckSpoil, ...] = (
    "missing",
    "malformed",
    "wrong_key",
    "wrong_disclosure",
    "wrong_hash",
)


@dataclass
class Fault:
    """One queued misbehaviour: what, for how many more requests, at which endpoint."""

    kind: FaultKind
    remaining: int
    endpoint: Endpoint
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    spoil: AckSpoil | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class Faults:
    """Queued misbehaviour, consumed first in, first out, one request at a time.

    `endpoint` picks which requests a fault hits: "disclosure" (operations, the
    default), "token" (the OAuth2 token endpoint) or "any".
    """

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: int | str | None = None,
        *,
        endpoint: Endpoint = "disclosure",
    ) -> None:
        """Answer the next `n` requests with `status` (and `Retry-After` when given)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next status must be 4xx or 5xx, got {status}")
        after = None if retry_after is None else str(retry_after)
        self._add(Fault("fail", n, endpoint, status=status, retry_after=after))

    def hang_next(
        self, n: int = 1, seconds: float = 30.0, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        """Hold the next `n` requests for `seconds` before handling them normally.

        A hung disclosure that outlives the gateway's timeout is still processed
        afterwards, like a slow real partner: the gateway's retry then meets the
        Idempotency-Key and the disclosure is recorded once.
        """
        self._add(Fault("hang", n, endpoint, seconds=seconds))

    def reset_next(self, n: int = 1, *, endpoint: Endpoint = "disclosure") -> None:
        """Drop the connection of the next `n` requests without any response."""
        self._add(Fault("reset", n, endpoint))

    def slow_body(
        self, n: int = 1, seconds: float = 5.0, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        """Send status and headers at once, then hold the rest of the body `seconds`."""
        self._add(Fault("slow", n, endpoint, seconds=seconds))

    def drip_body(
        self, n: int = 1, byte_delay_s: float = 0.01, *, endpoint: Endpoint = "disclosure"
    ) -> None:
        """Send status and headers at once, then the body one byte every `byte_delay_s`."""
        if byte_delay_s < 0:
            raise ValueError(f"byte_delay_s must be >= 0, got {byte_delay_s}")
        self._add(Fault("drip", n, endpoint, seconds=byte_delay_s))

    def cut_body(self, n: int = 1, *, endpoint: Endpoint = "disclosure") -> None:
        """Handle the next `n` requests (a disclosure is recorded), then send status,
        headers and half the body, and close the connection mid-body."""
        self._add(Fault("cut", n, endpoint))

    def bad_ack(self, n: int = 1, spoil: AckSpoil = "wrong_hash") -> None:
        """Handle the next `n` disclosures normally but answer with a spoiled
        acknowledgement: none at all, not a JWS, signed by another key, for another
        disclosure, or over another hash."""
        if spoil not in ACK_SPOILS:
            raise ValueError(f"spoil must be one of {', '.join(ACK_SPOILS)}, not {spoil!r}")
        self._add(Fault("ack", n, "disclosure", spoil=spoil))

    def clear(self) -> None:
        self._queue.clear()

    def queue_json(self, spec: object) -> None:
        """Queue the fault of a `POST /_sandbox/faults` body: `{"kind": "fail"|"hang"|
        "reset"|"slow"|"drip"|"cut"|"ack"|"clear", "count", ...}` ("seconds" for hang and
        slow, "byte_delay_s" for drip, "spoil" for ack). ValueError or TypeError says what
        is wrong with it."""
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        kind = spec.get("kind")
        count = int(spec.get("count", 1))
        endpoint = spec.get("endpoint", "disclosure")
        if kind == "fail":
            self.fail_next(
                count, int(spec.get("status", 503)), spec.get("retry_after"), endpoint=endpoint
            )
        elif kind == "hang":
            self.hang_next(count, float(spec.get("seconds", 30.0)), endpoint=endpoint)
        elif kind == "reset":
            self.reset_next(count, endpoint=endpoint)
        elif kind == "slow":
            self.slow_body(count, float(spec.get("seconds", 5.0)), endpoint=endpoint)
        elif kind == "drip":
            self.drip_body(count, float(spec.get("byte_delay_s", 0.01)), endpoint=endpoint)
        elif kind == "cut":
            self.cut_body(count, endpoint=endpoint)
        elif kind == "ack":
            self.bad_ack(count, spec.get("spoil", "wrong_hash"))
        elif kind == "clear":
            self.clear()
        else:
            raise ValueError(
                f"kind must be fail, hang, reset, slow, drip, cut, ack or clear, not {kind!r}"
            )

    @property
    def pending(self) -> list[dict[str, object]]:
        return [f.as_json() for f in self._queue]

    def take(self, endpoint: Literal["disclosure", "token"]) -> Fault | None:
        """The fault for this request, if the first one queued for its endpoint applies."""
        for fault in self._queue:
            if fault.endpoint in (endpoint, "any"):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def _add(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"a fault needs a count of at least 1, got {fault.remaining}")
        if fault.endpoint not in ("disclosure", "token", "any"):
            raise ValueError(f"endpoint must be disclosure, token or any, not {fault.endpoint!r}")
        self._queue.append(fault)


# -- acting a fault out ---------------------------------------------------------------------


async def answer_with(
    fault: Fault | None,
    request: web.Request,
    handle: Callable[[], Awaitable[web.Response]],
    closing: asyncio.Event,
) -> web.StreamResponse:
    """`handle()`'s answer to `request`, spoiled by `fault`; `closing` ends a hang or a
    held body early when the sandbox shuts down."""
    if fault is not None and fault.kind == "fail":
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return Refusal(
            fault.status, "injected_fault", "fault injected by the sandbox", headers
        ).response()
    if fault is not None and fault.kind == "reset":
        if request.transport is not None:
            request.transport.close()
        # Nothing of this reaches the client: aiohttp drops writes to a closed
        # transport quietly, where raising would log a server error.
        return web.Response(status=503)
    if fault is not None and fault.kind == "hang":
        # Take the request in first, as a slow partner would: it is processed after
        # the hang even if the client has given up by then.
        try:
            await request.read()
        except ConnectionError:
            return web.Response(status=503)  # the client is gone; nobody reads this
        try:
            await asyncio.wait_for(closing.wait(), fault.seconds)
        except TimeoutError:
            pass
        if closing.is_set():
            return Refusal(503, "shutting_down", "sandbox is closing").response()
    response = await handle()
    if fault is not None and fault.kind == "slow":
        return await _trickle(request, response, fault.seconds, closing)
    if fault is not None and fault.kind == "drip":
        return await _drip(request, response, fault.seconds, closing)
    if fault is not None and fault.kind == "cut":
        return await _cut(request, response)
    return response


async def _started_stream(
    request: web.Request, response: web.Response
) -> tuple[web.StreamResponse, bytes]:
    """`response` turned into a prepared stream (headers sent), with the body still to write,
    so a fault can send it slowly, byte by byte, or only half of it."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    return stream, body


async def _trickle(
    request: web.Request, response: web.Response, seconds: float, closing: asyncio.Event
) -> web.StreamResponse:
    stream, body = await _started_stream(request, response)
    half = len(body) // 2
    await stream.write(body[:half])
    try:
        await asyncio.wait_for(closing.wait(), seconds)
    except TimeoutError:
        pass
    try:
        await stream.write(body[half:])
        await stream.write_eof()
    except ConnectionError:
        pass  # the client gave up waiting (or died): nothing left to tell it
    return stream


async def _drip(
    request: web.Request, response: web.Response, byte_delay_s: float, closing: asyncio.Event
) -> web.StreamResponse:
    stream, body = await _started_stream(request, response)
    try:
        for offset in range(len(body)):
            await stream.write(body[offset : offset + 1])
            if byte_delay_s and not closing.is_set():
                await asyncio.sleep(byte_delay_s)
        await stream.write_eof()
    except ConnectionError:
        pass  # the client gave up waiting: that is what this fault is for
    return stream


async def _cut(request: web.Request, response: web.Response) -> web.StreamResponse:
    stream, body = await _started_stream(request, response)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    # aiohttp's closing write_eof meets the closed transport quietly.
    return stream
