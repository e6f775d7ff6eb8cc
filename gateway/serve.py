"""`gateway serve`: one process, or several sharing the port (`--workers N`).

Several workers bind the same port with SO_REUSEPORT and the kernel spreads
connections over them, so one machine's cores are used. Each worker is a full
gateway instance on the shared store, exactly as instances behind a load
balancer are.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from pathlib import Path

from aiohttp import web

from gateway.config import load_config
from gateway.web.app import create_app
from gateway.web.tls import server_ssl_context


def _event_loop_policy() -> None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    uvloop.install()


def run_worker(config_path: Path, host: str, port: int, reuse_port: bool) -> None:
    """One gateway instance serving until SIGINT/SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
    )
    _event_loop_policy()
    config = load_config(config_path)
    app = create_app(config)
    web.run_app(
        app,
        host=host,
        port=port,
        ssl_context=server_ssl_context(config.server),
        reuse_port=reuse_port or None,
        print=None,
        access_log=None,
        handle_signals=True,
    )


def serve(config_path: Path, host: str, port: int, workers: int) -> None:
    if workers <= 1:
        run_worker(config_path, host, port, reuse_port=False)
        return
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=run_worker,
            args=(config_path, host, port, True),
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

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        run_worker(config_path, host, port, reuse_port=True)
    finally:
        stop_children()
        for child in children:
            child.join(timeout=10)
