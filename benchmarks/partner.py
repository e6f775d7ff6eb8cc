"""The benchmark's partners: `gateway.sandbox.partner` partners in a process of their own.

Serves the sandboxes of the partners named on the command line on free loopback ports.
Each one decrypts every JWE with its private key and verifies the gateway's signature,
as a real partner would, so the partner's work is the same whether a request came
through the gateway or through the bare proxy. Prints one JSON line
``{"partner id": {"base_url": ..., "token_url": ...}}`` once listening, then serves
until SIGTERM/SIGINT.

Usage: ``python -m benchmarks.partner ROOT PARTNER_ID...`` (from the project root)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from gateway.config.model import load_config
from gateway.crypto.seal import GatewayKeys
from gateway.partners import load_partners
from gateway.sandbox import start_sandboxes

# Longer than any benchmark run: the bare proxy fetches one token at start and keeps it.
TOKEN_TTL_S = 6 * 3600.0


def use_uvloop() -> None:
    """The event loop `gateway serve` would use, so every process runs on the same kind."""
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    uvloop.install()


async def serve(root: Path, partner_ids: list[str]) -> None:
    config = load_config(root / "config.toml")
    partners = load_partners(config.partners_dir, config.root)
    chosen = {pid: partners[pid] for pid in partner_ids}
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    cluster = await start_sandboxes(
        chosen,
        config.keys_dir,
        jwks,
        os.environ,
        ports=dict.fromkeys(chosen, 0),
        token_ttl=TOKEN_TTL_S,
        # Every request is answered afresh and nothing is kept: a replayed JWE from the
        # bare proxy costs the partner what a new one from the gateway costs.
        remember=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        served = {
            pid: {"base_url": p.base_url, "token_url": p.auth.token_url}
            for pid, p in cluster.partners.items()
        }
        print(json.dumps(served), flush=True)
        await stop.wait()
    finally:
        await cluster.close()


def main() -> None:
    use_uvloop()
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2:]))


if __name__ == "__main__":
    main()
