"""The sandbox partners `gateway serve` runs beside the gateway on a development config.

The shipped config.toml is a development config: every partner file points at a
loopback sandbox (127.0.0.1:9101–9108), and `[sandbox] serve = true` makes `gateway
serve` (so `make run`) start those sandboxes in its main process, once, whatever
`--workers` says. A sandbox decrypts and checks what it receives like a real partner
and records field names only (GET <base_url>/_sandbox/received).

Sandboxes start only when *every* partner's base_url is on loopback. A config with
a partner anywhere else is a production config: no sandbox starts whatever `serve`
says, and the log says why — a sandbox must never answer in place of a partner
reached through a local proxy. A sandbox whose port is in use (`gateway demo`,
another `gateway serve`) is left out with a warning and the gateway still starts:
its disclosures go to whatever listens there. Sandboxes start with the process: a
partner file changed by a reload (SIGHUP) gets its sandbox at the next start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from gateway.config.model import Config
from gateway.crypto.seal import GatewayKeys
from gateway.net import is_loopback_host
from gateway.partners import Partner, load_partners
from gateway.sandbox.cluster import SandboxCluster, start_sandboxes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxPlan:
    """Which partners get a sandbox (`serve`), or why none does (`reason`)."""

    serve: tuple[str, ...]
    reason: str = ""
    refused: bool = False  # serve = true, but the config is not a development config


def plan_sandboxes(enabled: bool, partners: Mapping[str, Partner]) -> SandboxPlan:
    """Pure: the sandboxes to start for `[sandbox] serve = enabled` and these partners."""
    if not enabled:
        return SandboxPlan((), "[sandbox] serve is off")
    if not partners:
        return SandboxPlan((), "no partner is configured")
    elsewhere = sorted(
        pid
        for pid, partner in partners.items()
        if not is_loopback_host(urlsplit(partner.base_url).hostname or "")
    )
    if elsewhere:
        return SandboxPlan(
            (),
            f"[sandbox] serve = true ignored: {', '.join(elsewhere)} "
            f"{'is' if len(elsewhere) == 1 else 'are'} not on loopback, so this is no "
            "development config and no sandbox starts; set [sandbox] serve = false",
            refused=True,
        )
    return SandboxPlan(tuple(sorted(partners)))


def sandbox_context(
    config: Config,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context: the planned sandboxes run while the app runs."""

    async def sandboxes(_app: web.Application) -> AsyncIterator[None]:
        cluster = await start_dev_sandboxes(config)
        try:
            yield
        finally:
            if cluster is not None:
                await cluster.close()
                log.info("sandbox partners stopped")

    return sandboxes


async def start_dev_sandboxes(
    config: Config, env: Mapping[str, str] | None = None
) -> SandboxCluster | None:
    """Start what `plan_sandboxes` says for `config`, logging which partners on which
    ports (and which ports were in use); None when no sandbox starts."""
    partners = load_partners(config.partners_dir, config.root)
    plan = plan_sandboxes(config.sandbox_serve, partners)
    if not plan.serve:
        if plan.refused:
            log.warning(plan.reason)
        return None
    cluster = await start_sandboxes(
        {pid: partners[pid] for pid in plan.serve},
        config.keys_dir,
        GatewayKeys.load(config.keys_dir).jwks(),
        os.environ if env is None else env,
        encrypt_responses=True,
        skip_busy=True,
    )
    if cluster.busy:
        log.warning(
            "sandbox partners not started, their address is in use (gateway demo or another "
            "gateway serve?): %s; disclosures to them go to whatever listens there",
            ", ".join(f"{pid} {where}" for pid, where in sorted(cluster.busy.items())),
        )
    served = cluster.partners
    if not served:
        await cluster.close()
        return None
    log.info(
        "sandbox partners on loopback ([sandbox] serve = true; development only): %s",
        ", ".join(f"{pid} {served[pid].base_url}" for pid in sorted(served)),
    )
    return cluster
