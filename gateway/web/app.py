"""The composition root: `create_app(config)` builds every collaborator once.

Resources with a lifetime (the store, the shared ClientSession) are opened and
closed in `cleanup_ctx`; handlers find what they need under the typed AppKeys of `web/keys.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta

from aiohttp import web

from gateway.callers.tokens import CallerAuthenticator
from gateway.clock import utc_now
from gateway.config.model import Config
from gateway.crypto.key_files import read_secret_key
from gateway.crypto.keyring import KeyPaths
from gateway.crypto.seal import GatewayKeys, PartnerKeyCache
from gateway.disclosure.flow import Gateway
from gateway.disclosure.limits import SHED_CODES, Admission
from gateway.errors import ConfigErrors
from gateway.log.actions import ActionLog
from gateway.log.entries import LogKeys
from gateway.log.recovery import Recovery
from gateway.log.service import LogService, LogSigner
from gateway.log.witness_policy import load_witness_policy
from gateway.observe import tracing
from gateway.observe.app_log import request_context_for
from gateway.observe.metrics import Metrics
from gateway.ops.preflight import own_key_problems, refuse_exposed_secrets
from gateway.ops.reload import RELOADER, Reloader, refresh_partner_keys
from gateway.ops.retention import Retention
from gateway.outbound.delivery import Outbound, client_session
from gateway.outbound.witness_runner import WitnessRunner
from gateway.partners import LiveTable, Partner, load_partners
from gateway.partners.standing import (
    PartnerStates,
    Suspensions,
    agreement_days_left,
    log_expiry_warnings,
)
from gateway.policy.minimize import derive_pseudonym_key
from gateway.rights.lapse import lapse_in_background
from gateway.rights.outbox import NoticeOutbox
from gateway.rights.ropa import roll_up_periodically
from gateway.rights.subjects import outbox_sender
from gateway.store import open_store
from gateway.store.protected import open_protected_store, payload_sealing
from gateway.web import wire_errors
from gateway.web.held_retries import held_retries
from gateway.web.keys import (
    ACTIONS,
    AUTH,
    GATEWAY,
    LOG,
    METRICS,
    NOTICES,
    STORE,
    SUSPENSIONS,
    WITNESSES,
)
from gateway.web.log_settled import log_settled
from gateway.web.problem_pages import add_problem_routes
from gateway.web.problems import problem_middleware
from gateway.web.review.backend import REVIEW_BACKEND
from gateway.web.review.handlers import add_review_routes
from gateway.web.review.log_backend import LogReviewBackend
from gateway.web.review.oidc_client import OidcClient, read_client_secret
from gateway.web.routes.consents import add_consent_routes
from gateway.web.routes.disclosures import add_disclosure_routes
from gateway.web.routes.exposure import add_exposure_routes
from gateway.web.routes.log import add_log_routes
from gateway.web.routes.openapi import add_openapi_route
from gateway.web.routes.ops import add_ops_routes, watch_checkpoints
from gateway.web.routes.partners import add_partner_routes
from gateway.web.routes.receipts import add_receipt_routes
from gateway.web.routes.rights import add_rights_routes
from gateway.web.routes.ropa import add_ropa_routes

# The logger of start, reload and stop (gateway.ops.reload's).
lifecycle = logging.getLogger("gateway.lifecycle")


def reload_log_signer(service: LogService, config: Config) -> None:
    """Read the log key files again; a key that cannot be read keeps the loaded signer."""
    try:
        fresh = LogSigner.load(config.keys_dir, config.log.origin)
    except (OSError, ValueError) as exc:
        lifecycle.error(
            "log signing key not reloaded (%s), the loaded key goes on signing: run `gateway "
            "config validate` to see why",
            type(exc).__name__,
        )
        return
    if fresh.verifier_keys != service.signer.verifier_keys:
        service.signer = fresh
        lifecycle.info("log signing key reloaded: %s signs from now on", fresh.verifier_key)


def report_notice_counts(metrics: Metrics, counts: Mapping[str, int]) -> None:
    """The `gateway_notices` gauge, after each round of the notice outbox."""
    for status in ("pending", "failed"):
        metrics.notices.labels(status).set(counts.get(status, 0))


def create_app(
    config: Config,
    *,
    partners: Mapping[str, Partner] | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    serving: bool = True,
    submits_checkpoints: bool = True,
) -> web.Application:
    """The gateway application. `partners`, `env` and `clock` are for tests and the demo;
    `monotonic` times partner deliveries (the breaker's cool-down, token lifetimes);
    `serving` False for a CLI command's application, which does only what it is asked
    (no lapse of consents at its start); `submits_checkpoints` False for the workers of
    `serve --workers N` but one, which only observe the witnessing (witness_runner)."""
    wire_errors.install()  # the HTTP parser's own refusals as problem+json, echoing nothing
    # Traces from the OTEL_* variables of the process (not `env`, the partners' secrets):
    # a bad setting stops the start; off, not even a middleware is added. Its span goes
    # first, so the request line the next one writes names the trace.
    tracing.check_environment()
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[
            *tracing.middlewares(),
            request_context_for(config.server.access_log, unlogged=SHED_CODES),
            # Outside the problem layer: it sees the shed answers that layer renders.
            held_retries(),
            problem_middleware,
            log_settled,
        ],
    )
    # Partner table and callers are live tables: a reload (SIGHUP) swaps them whole.
    partner_table = LiveTable(
        partners if partners is not None else load_partners(config.partners_dir, config.root)
    )
    callers = LiveTable(config.callers)
    reloader = Reloader(config.path, config, partner_table, callers, clock=clock)
    config = dataclasses.replace(config, callers=callers)
    app[RELOADER] = reloader
    paths = KeyPaths(config.keys_dir)
    # The checks `gateway partners validate` runs too (gateway.ops.preflight); the partners'
    # secrets and certificates are loaded by the live Outbound when resources open.
    own_keys = own_key_problems(config.keys_dir, config.log.origin)
    if own_keys:
        raise ConfigErrors(own_keys)
    refuse_exposed_secrets(config.keys_dir, partner_table.values())
    reloader.checks.append(lambda fresh: refuse_exposed_secrets(config.keys_dir, fresh.values()))
    log_expiry_warnings(partner_table.values(), clock(), config.partner_warn_days)
    keys = GatewayKeys.load(config.keys_dir)
    pseudonym_master = read_secret_key(paths.pseudonym_master)
    log_keys = LogKeys.load(config.keys_dir)
    signer = LogSigner.load(config.keys_dir, config.log.origin)
    # Checked whole by preflight (`gateway serve`); read here for the witnessing runner.
    policy_path = config.log.witness_policy
    witness_policy = None if policy_path is None else load_witness_policy(policy_path)
    metrics = Metrics()
    metrics.watch_agreements(
        lambda: {
            p.id: days
            for p in partner_table.values()
            if (days := agreement_days_left(p, clock().date())) is not None
        }
    )
    app[METRICS] = metrics
    secrets = env if env is not None else os.environ

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
        session = client_session()
        background: list[asyncio.Task[None]] = []
        try:
            outbound = Outbound(session, env=secrets, clock=monotonic)
            # A missing partner secret or certificate stops the start, naming the file.
            outbound.preflight(partner_table.values())
            partner_keys = PartnerKeyCache(session)
            partner_states = PartnerStates(store, partner_keys)
            # A reload passes the same check on a throwaway Outbound (no cache touched), then
            # drops what the live one cached for each changed partner.
            reloader.checks.append(
                lambda fresh: Outbound(session, env=secrets).preflight(fresh.values())
            )

            def forget_changed(old: Mapping[str, Partner], fresh: Mapping[str, Partner]) -> None:
                for pid in old:
                    if fresh.get(pid) != old[pid]:
                        outbound.forget(pid)
                partner_keys.forget_files()

            reloader.on_swap.append(forget_changed)
            log_service = LogService(store, signer, keys=log_keys, clock=clock)
            # After a log key rotation (`gateway log rotate-key`) and the keys directory
            # copied here, a reload (SIGHUP) makes this instance sign with the new key.
            reloader.on_swap.append(lambda _old, _fresh: reload_log_signer(log_service, config))
            await log_service.prepare()
            # Crash recovery: only instances gone silent get their in-flight disclosures
            # marked unknown, by whichever live instance claims them first.
            # Its sweep also prunes what the retention rules no longer keep ([retention]),
            # on the real clock: the rows' times are the store's, not the app's `clock`.
            retention = Retention(store, config.retention, counter=metrics)
            recovery = Recovery(
                store,
                log_service,
                timeout_s=config.log.instance_timeout_s,
                clock=clock,
                housekeeping=retention.prune_if_due,
            )
            await recovery.start()
            # Each checkpoint signed goes to the witnesses in the background; a disclosure
            # never waits for one (gateway.outbound.witness_runner).
            witnesses = WitnessRunner(
                store,
                session,
                witness_policy,
                log_service.consistency_proof,
                policy_path=policy_path,
                metrics=metrics,
                clock=clock,
                submits=submits_checkpoints,
            )
            if policy_path is not None:
                log_service.witnessing = witnesses
                reloader.on_reload.append(witnesses.reload_policy)
            app[WITNESSES] = witnesses
            witnesses.start()
            log_service.start(config.log.checkpoint_interval_s)
            actions = ActionLog(log_service.append, log_keys, clock)
            # The periodic audit of a long log hashes in a worker that opens the store
            # again (not a private in-memory one: it would open another database).
            in_memory = config.storage_url.endswith(":memory:")
            review = LogReviewBackend(
                store,
                log_service,
                log_keys,
                clock,
                actions,
                opener=None
                if in_memory
                else functools.partial(open_store, config.storage_url, config.root),
            )
            background.append(asyncio.create_task(review.audit_periodically()))
            # The legal pages' per-day counts, kept close to the log off the request path.
            background.append(asyncio.create_task(roll_up_periodically(store)))
            background.append(asyncio.create_task(watch_checkpoints(store, metrics)))
            background.append(
                asyncio.create_task(refresh_partner_keys(partner_keys, partner_table))
            )
            metrics.watch(
                writer=log_service.writer,
                partners=partner_table,
                breaker_state=outbound.breaker_state,
                clock=clock,
            )
            app[STORE] = store
            app[LOG] = log_service
            app[ACTIONS] = actions
            app[SUSPENSIONS] = Suspensions(
                store, partner_table, clock, partner_states, recorder=actions
            )
            # Notices partners did not accept within the delivery retries (every instance
            # runs the loop; a lease in the store keeps two from sending one notice).
            outbox = NoticeOutbox(
                store,
                payload_sealing(store),
                clock,
                schedule_s=config.notices.retry_schedule_s,
                max_age=timedelta(days=config.notices.max_age_days),
                report=functools.partial(report_notice_counts, metrics),
            )
            app[NOTICES] = outbox
            if REVIEW_BACKEND not in app:  # tests may bring their own
                app[REVIEW_BACKEND] = review
            app[AUTH] = CallerAuthenticator(config.auth, config.callers, session)
            admission = Admission(
                max_pending_appends=config.log.max_pending_appends,
                pending_appends=lambda: log_service.writer.waiting,
                callers=config.callers,
                metrics=metrics,
            )
            metrics.watch_in_flight(admission.in_flight)
            app[GATEWAY] = Gateway(
                config=config,
                partners=partner_table,
                facts=store,
                log=recovery.log,
                keys=keys,
                partner_keys=partner_keys,
                outbound=outbound,
                log_keys=log_keys,
                pseudonym_key=functools.cache(
                    lambda partner_id: derive_pseudonym_key(pseudonym_master, partner_id)
                ),
                clock=clock,
                metrics=metrics,
                partner_states=partner_states,
                admission=admission,
            )
            outbox.send = outbox_sender(app[GATEWAY])
            background.append(
                asyncio.create_task(outbox.run_periodically(config.notices.interval_s))
            )
            # Consents under a version older than [policy] min_consent_version lapse and
            # their partners are told, in the background: start-up never waits on one.
            if serving:
                background.append(
                    asyncio.create_task(lapse_in_background(app[GATEWAY], store, actions, outbox))
                )
            yield
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await recovery.stop()
            await log_service.stop()
            await witnesses.stop()  # after the final checkpoint: it is submitted too
        finally:
            await session.close()
            await store.close()

    app.cleanup_ctx.append(tracing.lifetime)  # started first, flushed last
    app.cleanup_ctx.append(resources)
    add_disclosure_routes(app)
    add_consent_routes(app)
    add_ops_routes(app)
    add_rights_routes(app)
    add_openapi_route(app)
    add_log_routes(app)
    add_receipt_routes(app)
    add_partner_routes(app)
    add_exposure_routes(app)
    add_ropa_routes(app)
    add_problem_routes(app)
    add_review_routes(
        app,
        reviewers=config.reviewers,
        session_key=read_secret_key(paths.review_session),
        partners=partner_table,
        clock=clock,
        source=str(config.path),
        oidc=None
        if config.oidc is None
        else OidcClient(config.oidc, read_client_secret(config.oidc, secrets), clock),
        public_url=config.server.public_url,
    )
    return app
