"""The benchmark's partners: `gateway.sandbox.partner` partners in a process of their own.

Serves the sandboxes of the partners named on the command line on free loopback ports.
Each one decrypts every JWE with its private key and verifies the gateway's signature,
as a real partner would, so the partner's work is the same whether a request came
through the gateway or through the bare proxy. Prints one JSON line
``{"partner id": {"base_url": ..., "token_url": ...}}`` once listening, then serves
until SIGTERM/SIGINT.

SIGUSR1 switches every partner to *echo*: it answers at once, without decrypting or
checking anything (a partner asking for acknowledgements still signs one), so what the
gateway and the bare proxy cost is all that differs between them; SIGUSR2 switches back
to decrypting. ``benchmarks/run.py`` reports both.

Usage: ``python -m benchmarks.partner ROOT PARTNER_ID...`` (from the project root)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.config.model import load_config
from gateway.crypto.acknowledgement import ACK_HEADER
from gateway.crypto.seal import GatewayKeys
from gateway.partners import load_partners
from gateway.sandbox import SandboxPartner, start_sandboxes

# Longer than any benchmark run: the bare proxy fetches one token at start and keeps it.
TOKEN_TTL_S = 6 * 3600.0


ECHO_ON, ECHO_OFF = signal.SIGUSR1, signal.SIGUSR2


class Echo:
    """Switches sandboxes between decrypting and echoing (see the module doc)."""

    def __init__(self, sandboxes: list[SandboxPartner]) -> None:
        # The sandbox's own handler, kept to switch back: echo replaces it on the instance.
        self._decrypting = {id(s): s._disclose for s in sandboxes}
        self._sandboxes = sandboxes

    def switch(self, on: bool) -> None:
        for sandbox in self._sandboxes:
            sandbox._disclose = _echo(sandbox) if on else self._decrypting[id(sandbox)]  # type: ignore[method-assign]


def _echo(sandbox: SandboxPartner) -> Any:
    async def answer(request: web.Request, op: Any, spoil: Any = None) -> web.Response:
        body = await request.read()
        reply = {"status": "ok", "operation": op.name, "reference": "ref-" + secrets.token_hex(8)}
        disclosure_id = request.headers.get("Idempotency-Key", "")
        ack = sandbox._acknowledge(disclosure_id, body, None)
        return web.Response(
            status=201 if op.method == "POST" else 200,
            body=json.dumps(reply).encode(),
            content_type="application/json",
            headers={ACK_HEADER: ack} if ack else None,
        )

    return answer


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
    echo = Echo([cluster.partner(pid) for pid in chosen])
    loop.add_signal_handler(ECHO_ON, echo.switch, True)
    loop.add_signal_handler(ECHO_OFF, echo.switch, False)
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
