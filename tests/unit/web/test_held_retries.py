"""Retries that ignore Retry-After are held on their connection (gateway.web.held_retries):
the next request to the same route, before the Retry-After it was given, waits until then
(at most MAX_HOLD_S); another connection, another route, or a retry after the wait, does not."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.errors import CallerRateLimitedError
from gateway.web import held_retries
from gateway.web.problems import problem_response

HOLD_S = 0.3  # the test's MAX_HOLD_S: short, and far above a loopback round trip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def shedding(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient, Clock]]:
    """An app whose /shed answers 429 with Retry-After 5 (as a load limit does) and /ok 200."""
    monkeypatch.setattr(held_retries, "MAX_HOLD_S", HOLD_S)
    clock = Clock()

    async def shed(_request: web.Request) -> web.Response:
        return problem_response(CallerRateLimitedError("over its limit", retry_after_s=5))

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[held_retries.held_retries(clock)])
    app.router.add_post("/shed", shed, name="shed")
    app.router.add_post("/ok", ok, name="ok")
    client = TestClient(TestServer(app), connector=aiohttp.TCPConnector(limit=1))
    await client.start_server()
    yield client, clock
    await client.close()


async def timed(client: TestClient, path: str) -> tuple[int, float]:
    started = time.monotonic()
    async with client.post(path) as r:
        await r.read()
        return r.status, time.monotonic() - started


async def test_a_retry_on_the_same_connection_before_retry_after_is_held(
    shedding: tuple[TestClient, Clock],
) -> None:
    client, _ = shedding
    status, _ = await timed(client, "/shed")
    assert status == 429
    status, seconds = await timed(client, "/shed")  # at once, ignoring Retry-After: 5
    assert status == 429 and seconds >= HOLD_S  # held, at most MAX_HOLD_S


async def test_a_retry_after_its_retry_after_another_route_or_connection_is_not_held(
    shedding: tuple[TestClient, Clock],
) -> None:
    client, clock = shedding
    await timed(client, "/shed")
    status, seconds = await timed(client, "/ok")  # another route on the same connection
    assert status == 200 and seconds < HOLD_S
    await timed(client, "/shed")
    async with aiohttp.ClientSession() as other:  # another connection
        started = time.monotonic()
        async with other.post(client.make_url("/shed")) as r:
            await r.read()
        assert r.status == 429 and time.monotonic() - started < HOLD_S
    clock.now += 5  # the client waited its Retry-After
    status, seconds = await timed(client, "/shed")
    assert status == 429 and seconds < HOLD_S
