"""Retries that ignore Retry-After, held: the middleware that keeps load shedding cheap.

A request shed by a load limit (gateway.disclosure.limits) is answered at once with
Retry-After. A client that retries at once anyway, on the same connection, would make the
gateway spend its CPU refusing it again and again, at the rate its answers go back, and the
disclosures it admitted wait behind every refusal (`benchmarks/shed.py` measured it). So
the next request on that connection to the same route, coming before the Retry-After it was
given, is held until then (at most `MAX_HOLD_S`) before it is looked at: a client that
honours Retry-After never waits, and one that does not sends one request a second per
connection instead of thousands. A held request is then handled as any other (it may pass,
or be shed again).

Per connection, not per caller or address: the other clients of the same service, or behind
the same proxy, are not held for one client's retries. A connection's state goes with it
(weak references to its transport).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.disclosure.limits import SHED_CODES
from gateway.observe.app_log import PROBLEM_CODE

MAX_HOLD_S: Final = 1.0
"""The longest a retry is held, whatever its Retry-After said (a `rate` of 1/h says up to an
hour): long enough to bring a flood down to one request a second per connection."""


def held_retries(clock: Callable[[], float] = time.monotonic) -> Middleware:
    """The middleware; `clock` is monotonic seconds."""
    # A connection's transport → (the route it was shed on, when its Retry-After ends).
    due: weakref.WeakKeyDictionary[object, tuple[str | None, float]] = weakref.WeakKeyDictionary()

    @web.middleware
    async def hold_early_retries(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = request.transport
        route = request.match_info.route.name
        shed_before = due.pop(connection, None) if connection is not None else None
        if shed_before is not None and shed_before[0] == route:
            wait = shed_before[1] - clock()
            if wait > 0:
                await asyncio.sleep(min(wait, MAX_HOLD_S))
        response = await handler(request)
        if connection is not None and response.get(PROBLEM_CODE) in SHED_CODES:
            retry_after = response.headers.get("Retry-After", "")
            seconds = float(retry_after) if retry_after.isdigit() else 0.0
            due[connection] = (route, clock() + seconds)
        return response

    return hold_early_retries
