"""The composition root: `create_app(config)` builds every collaborator once.

Resources with a lifetime (the store, the shared ClientSession) are opened and
closed in `cleanup_ctx`; handlers find what they need under typed AppKeys.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime

from aiohttp import web

from gateway.auth import CallerAuthenticator
from gateway.config import Config
from gateway.crypto import GatewayKeys, PartnerKeyCache
from gateway.keys import KeyPaths, read_secret_key
from gateway.log.entries import LogKeys, outcome_entry
from gateway.log.writer import LogWriter
from gateway.minimize import derive_pseudonym_key
from gateway.outbound import Outbound, client_session
from gateway.partners import Partner, load_partners
from gateway.pipeline import Gateway
from gateway.store import open_store
from gateway.store.base import Store
from gateway.web import api
from gateway.web.problems import problem_middleware
from gateway.web.rights import add_rights_routes

log = logging.getLogger("gateway.app")

STARTED = web.AppKey("started", datetime)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def recover_unfinished(store: Store, writer: LogWriter, now: datetime) -> list[str]:
    """Intents left without an outcome by a crash get an `unknown` outcome (CONTRACT §5)."""
    recovered: list[str] = []
    for _, raw in await store.intents_without_outcome():
        entry = json.loads(raw)
        await writer.append(
            outcome_entry(
                disclosure_id=entry["disclosure_id"],
                outcome="unknown",
                at=now,
                partner=entry["partner"],
                problem="interrupted",
            )
        )
        recovered.append(entry["disclosure_id"])
    if recovered:
        log.warning("marked %d interrupted disclosure(s) as outcome unknown", len(recovered))
    return recovered


def create_app(
    config: Config,
    *,
    partners: Mapping[str, Partner] | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> web.Application:
    """The gateway application. `partners`, `env` and `clock` are for tests and the demo."""
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[problem_middleware],
    )
    partner_table = (
        dict(partners) if partners is not None else load_partners(config.partners_dir, config.root)
    )
    paths = KeyPaths(config.keys_dir)
    keys = GatewayKeys.load(config.keys_dir)
    pseudonym_master = read_secret_key(paths.pseudonym_master)
    log_keys = LogKeys.load(config.keys_dir)
    secrets = env if env is not None else os.environ

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = await open_store(config.storage_url, config.root)
        session = client_session()
        try:
            outbound = Outbound(session, env=secrets)
            # A missing partner secret or certificate stops the start, naming the file.
            outbound.preflight(partner_table.values())
            writer = LogWriter(store)
            await recover_unfinished(store, writer, clock())
            app[api.STORE] = store
            app[api.AUTH] = CallerAuthenticator(config.auth, config.callers, session)
            app[api.GATEWAY] = Gateway(
                config=config,
                partners=partner_table,
                facts=store,
                log=writer,
                keys=keys,
                partner_keys=PartnerKeyCache(session),
                outbound=outbound,
                log_keys=log_keys,
                pseudonym_key=functools.cache(
                    lambda partner_id: derive_pseudonym_key(pseudonym_master, partner_id)
                ),
                clock=clock,
            )
            app[STARTED] = clock()
            yield
            await writer.drain()
        finally:
            await session.close()
            await store.close()

    app.cleanup_ctx.append(resources)
    api.add_routes(app)
    add_rights_routes(app)
    return app
