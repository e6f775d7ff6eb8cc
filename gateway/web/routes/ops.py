"""What operators and load balancers ask: /healthz, /readyz, /metrics and the JWKS.

`watch_checkpoints` is the background task that keeps the checkpoint-age gauge of
/metrics fresh (checkpoints may come from another instance).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.errors import GatewayError, LogUnavailableError
from gateway.observe.metrics import Metrics
from gateway.outbound.witnesses import RollbackAlarm
from gateway.problem_catalog import LOG_RETRY_AFTER_S
from gateway.store.ports import CheckpointStore
from gateway.web.http import json_response
from gateway.web.keys import GATEWAY, METRICS, STORE, WITNESSES
from gateway.web.problems import problem_response


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
    witnesses = request.app.get(WITNESSES)
    if witnesses is not None and witnesses.alarms:
        return problem_response(RollbackAlarmError(list(witnesses.alarms.values())))
    ready: dict[str, object] = {
        "status": "ready",
        "storage": "ok",
        "signing_keys": len(request.app[GATEWAY].keys.jwks()["keys"]),
    }
    if witnesses is not None and witnesses.active and witnesses.policy is not None:
        ready["witnessing"] = {
            "quorum": witnesses.policy.quorum,
            "quorum_met": witnesses.quorum_met,
            "not_cosigned": dict(witnesses.not_cosigned),
        }
        if witnesses.quorum_met is False:
            # Degraded, not failed: checkpoints keep being signed and are submitted again.
            ready["status"] = "degraded"
            ready["detail"] = (
                f"the witness quorum {witnesses.policy.quorum} is not met for the latest "
                "checkpoint (see not_cosigned); it is submitted again until it is"
            )
    return json_response(ready)


class RollbackAlarmError(LogUnavailableError):
    """A witness has cosigned a larger or different tree than this log holds: the log may
    have been rolled back (a database restored from an old backup) or forked."""

    def __init__(self, alarms: list[RollbackAlarm]) -> None:
        named = "; ".join(
            f"witness {a.witness} has cosigned size {a.witness_size}, the log has "
            f"{a.log_size} entries"
            for a in alarms
        )
        super().__init__(
            f"ROLLBACK ALARM: {named}. The disclosure log may have been rolled back or "
            "forked: compare the database with its backups and the witness's checkpoint "
            "(README, Witnessed log); restart once resolved"
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
