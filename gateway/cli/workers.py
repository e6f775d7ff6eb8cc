"""The processes of `gateway serve`: one, or several workers sharing the port (`--workers N`).

Several workers bind the same port with SO_REUSEPORT and the kernel spreads
connections over them, so one machine's cores are used. Each worker is a full
gateway instance on the shared store, exactly as instances behind a load
balancer are.

Each worker counts its own metrics and a scrape of the shared port reaches one of them,
whichever the kernel picks. With `--metrics-port P` worker k (the main process is 0) also
serves GET /metrics alone on port P+k, so that each worker is a scrape target of its own.

The main process writes its pid to var/gateway.pid (refusing to start while the file names
another live gateway, and deleting it only if it still names itself); SIGHUP to it reloads
config.toml and the partner files in every worker (`gateway partners reload`).
Only the main process submits checkpoints to the witnesses; the workers it spawned read
the witnessing from the store (gateway.outbound.witness_runner).
On a development config (`[sandbox] serve = true`) the main process also runs
the loopback sandbox partners, once (gateway.sandbox.dev).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from ssl import SSLContext

from aiohttp import web

from gateway.config.model import load_config
from gateway.observe.app_log import setup_logging
from gateway.ops.reload import reload_on_sighup
from gateway.sandbox.dev import sandbox_context
from gateway.web.app import create_app
from gateway.web.keys import METRICS
from gateway.web.routes.ops import get_metrics
from gateway.web.tls import server_ssl_context

log = logging.getLogger(__name__)


def _event_loop_policy() -> None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    uvloop.install()


def run_worker(
    config_path: Path,
    host: str,
    port: int,
    reuse_port: bool,
    on_reload: Callable[[], None] | None = None,
    log_format: str = "json",
    sandboxes: bool = False,
    metrics_port: int | None = None,
    submits_checkpoints: bool = True,
) -> None:
    """One gateway instance serving until SIGINT/SIGTERM; SIGHUP reloads (then `on_reload`).

    `sandboxes`: this is the main process, which runs the development sandboxes the
    config asks for (the workers it spawned do not). `submits_checkpoints`: this process
    submits the checkpoints to the witnesses (only the main one of several: the others
    would repeat each submission, which the witnesses answer 409).
    """
    # Until the app's handler is in place a SIGHUP must not end the process (its default).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup_logging(log_format)  # in every worker: a spawned process starts unconfigured
    _event_loop_policy()
    config = load_config(config_path)
    app = create_app(config, submits_checkpoints=submits_checkpoints)
    ssl_context = server_ssl_context(config.server)
    if sandboxes:
        app.cleanup_ctx.append(sandbox_context(config))
    if metrics_port is not None:
        app.cleanup_ctx.append(metrics_site(host, metrics_port, ssl_context))
    reload_on_sighup(app, also=on_reload)
    web.run_app(
        app,
        host=host,
        port=port,
        ssl_context=ssl_context,
        reuse_port=reuse_port or None,
        print=None,
        access_log=None,
        handle_signals=True,
    )


def metrics_site(
    host: str, port: int, ssl_context: SSLContext | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """This worker's GET /metrics alone on `port` (same host and TLS as the gateway's)."""

    async def serving(app: web.Application) -> AsyncIterator[None]:
        alone = web.Application()
        alone[METRICS] = app[METRICS]
        alone.router.add_get("/metrics", get_metrics)
        runner = web.AppRunner(alone, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        try:
            yield
        finally:
            await runner.cleanup()

    return serving


def serve(
    config_path: Path,
    host: str,
    port: int,
    workers: int,
    log_format: str = "json",
    metrics_port: int | None = None,
) -> None:
    """Serve until stopped. The caller (`gateway serve`) holds the pid file meanwhile
    (`owning_pid_file`): with `--workers N` this parent process owns it, the workers never
    touch it."""
    _serve(config_path, host, port, workers, log_format, metrics_port)
    log.info("gateway stopped")


def _serve(
    config_path: Path,
    host: str,
    port: int,
    workers: int,
    log_format: str,
    metrics_port: int | None,
) -> None:
    if workers <= 1:
        run_worker(
            config_path,
            host,
            port,
            reuse_port=False,
            log_format=log_format,
            sandboxes=True,
            metrics_port=metrics_port,
        )
        return
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=run_worker,
            args=(config_path, host, port, True),
            kwargs={
                "log_format": log_format,
                "metrics_port": None if metrics_port is None else metrics_port + n,
                "submits_checkpoints": False,
            },
            name=f"gateway-worker-{n}",
            daemon=True,
        )
        for n in range(1, workers)
    ]
    for child in children:
        child.start()

    def stop_children(*_: object) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()

    def on_sigterm(*_: object) -> None:
        stop_children()
        sys.exit(0)

    def reload_children() -> None:
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        run_worker(
            config_path,
            host,
            port,
            reuse_port=True,
            on_reload=reload_children,
            log_format=log_format,
            sandboxes=True,
            metrics_port=metrics_port,
        )
    finally:
        stop_children()
        for child in children:
            child.join(timeout=10)
