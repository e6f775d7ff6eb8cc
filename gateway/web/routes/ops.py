"""What operators and load balancers ask: /healthz, /readyz, /metrics and the JWKS.

`watch_checkpoints` is the background task that keeps the checkpoint-age gauge of
/metrics fresh (checkpoints may come from another instance).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.errors import GatewayError
from gateway.observe.metrics import Metrics
from gateway.problem_catalog import LOG_RETRY_AFTER_S
from gateway.store.ports import CheckpointStore
from gateway.web.http import json_response
from gateway.web.keys import GATEWAY, METRICS, STORE


async def get_jwks(request: web.Request) -> web.Response:
    response = json_response(request.app[GATEWAY].keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except GatewayError as exc:
        not_ready = json_response({"status": "unavailable", "storage": exc.detail}, status=503)
        # The store is tried afresh on every request: ask again when a disclosure would.
        not_ready.headers["Retry-After"] = f"{LOG_RETRY_AFTER_S:.0f}"
        return not_ready
    return json_response(
        {
            "status": "ready",
            "storage": "ok",
            "signing_keys": len(request.app[GATEWAY].keys.jwks()["keys"]),
        }
    )


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def watch_checkpoints(
    store: CheckpointStore, metrics: Metrics, every_s: float = 10.0
) -> None:
    """Keep the checkpoint-age gauge fresh (checkpoints may come from another instance)."""
    while True:
        try:
            latest = await store.latest_checkpoint()
        except GatewayError:
            latest = None
        if latest is not None:
            metrics.checkpoint_at = latest.at
        await asyncio.sleep(every_s)


def add_ops_routes(app: web.Application) -> None:
    app.router.add_get("/.well-known/jwks.json", get_jwks, name="jwks")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", get_metrics, name="metrics")
