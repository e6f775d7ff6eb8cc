"""The baseline: a bare aiohttp pass-through proxy to the same loopback partners.

What an internal service would pay for a plain egress proxy: read the request, send
its body to the partner with the partner's credentials (an API key, or one OAuth2
token fetched at start), hand the answer back. No authentication of the caller, no
policy, no log, no JOSE: the caller sends a JWE sealed in advance, so the partner does
exactly the work it does for the gateway (decrypt, verify the signature, check).

Routes ``POST /{partner id}/{path}`` to ``base_url/path``. Prints ``{"port": N}`` once
listening, then serves until SIGTERM/SIGINT.

Usage: ``python -m benchmarks.proxy ROOT PARTNERS_JSON [--workers N]`` where PARTNERS_JSON
is the line ``benchmarks/partner.py`` printed. With ``--workers N`` it is N processes on one
port with SO_REUSEPORT, as ``gateway serve --workers N`` is: the first binds a free port,
then starts N-1 copies of itself on it (``--port``) and prints the port once all listen;
SIGTERM to it stops them all. Their CPU is the first's children's (benchmarks/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from benchmarks.partner import use_uvloop
from gateway.config.model import load_config
from gateway.partners import Partner, load_partners

FORWARDED = ("Content-Type", "Idempotency-Key")
SESSION = web.AppKey("session", aiohttp.ClientSession)
PROXY = (sys.executable, "-m", "benchmarks.proxy")


async def credentials(
    session: aiohttp.ClientSession, partner: Partner, token_url: str | None
) -> dict[str, str]:
    """The header that authenticates us to `partner`, fetched or read once."""
    auth = partner.auth
    if auth.type == "api_key" and auth.key is not None and auth.key.file is not None:
        return {auth.header: auth.key.file.read_text().strip()}
    if auth.type == "oauth2_client_credentials" and token_url is not None:
        assert auth.client_secret is not None and auth.client_secret.file is not None
        client_id = auth.client_id or ""
        secret = auth.client_secret.file.read_text().strip()
        form = {"grant_type": "client_credentials"}
        basic = None
        if auth.token_endpoint_auth_method == "client_secret_basic":
            basic = aiohttp.BasicAuth(client_id, secret)
        else:
            form.update(client_id=client_id, client_secret=secret)
        if auth.scope:
            form["scope"] = auth.scope
        async with session.post(token_url, data=form, auth=basic) as response:
            response.raise_for_status()
            token = (await response.json())["access_token"]
        return {"Authorization": f"Bearer {token}"}
    if auth.type == "none":
        return {}
    raise SystemExit(f"the bare proxy does not speak {auth.type} (partner {partner.id})")


def routes(
    targets: dict[str, tuple[str, dict[str, str]]],
) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.post("/{partner}/{tail:.*}")
    async def forward(request: web.Request) -> web.Response:
        target = targets.get(request.match_info["partner"])
        if target is None:
            raise web.HTTPNotFound()
        base_url, auth_headers = target
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        headers.update(auth_headers)
        body = await request.read()
        session = request.app[SESSION]
        async with session.post(
            f"{base_url}/{request.match_info['tail']}", data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            return web.Response(
                status=answer.status,
                body=payload,
                content_type=answer.content_type,
            )

    return table


async def serve(
    root: Path, served: dict[str, dict[str, str | None]], port: int = 0, workers: int = 1
) -> None:
    config = load_config(root / "config.toml")
    partners = load_partners(config.partners_dir, config.root)
    # The same connection pool as the gateway's Outbound (gateway.outbound.delivery.client_session).
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, limit_per_host=20),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    try:
        targets = {
            pid: (
                str(where["base_url"]),
                await credentials(session, partners[pid], where.get("token_url")),
            )
            for pid, where in served.items()
        }
        app = web.Application()
        app[SESSION] = session
        app.add_routes(routes(targets))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        # SO_REUSEPORT whenever there are several workers (the first, and each copy).
        shared = workers > 1 or port != 0
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=shared or None)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bound = runner.addresses[0][1]
        # Started from the main thread, so that they are its children in /proc (run.py's
        # CPU sum reads /proc/PID/task/PID/children); the loop serves nothing before this.
        copies = start_copies(root, served, bound, workers - 1)
        try:
            print(json.dumps({"port": bound}), flush=True)
            await stop.wait()
        finally:
            for copy in copies:
                copy.terminate()
            for copy in copies:
                copy.wait(timeout=10)
        await runner.cleanup()
    finally:
        await session.close()


def start_copies(
    root: Path, served: dict[str, dict[str, str | None]], port: int, count: int
) -> list[subprocess.Popen[bytes]]:
    """`count` more proxies on `port`, returned once each listens (it printed its line)."""
    copies = [
        subprocess.Popen(
            [*PROXY, str(root), json.dumps(served), "--port", str(port)],
            stdout=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    for copy in copies:
        assert copy.stdout is not None
        if not copy.stdout.readline():
            raise SystemExit(f"a proxy worker on port {port} did not start")
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description="the bare pass-through proxy of the bench")
    parser.add_argument("root", type=Path)
    parser.add_argument("partners_json")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)  # a copy's
    args = parser.parse_args()
    use_uvloop()
    asyncio.run(serve(args.root, json.loads(args.partners_json), args.port, args.workers))


if __name__ == "__main__":
    main()
