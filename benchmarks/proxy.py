"""The baseline: a bare aiohttp pass-through proxy to the same loopback partners.

What an internal service would pay for a plain egress proxy: read the request, send
its body to the partner with the partner's credentials (an API key, or one OAuth2
token fetched at start), hand the answer back. No authentication of the caller, no
policy, no log, no JOSE: the caller sends a JWE sealed in advance, so the partner does
exactly the work it does for the gateway (decrypt, verify the signature, check).

Routes ``POST /{partner id}/{path}`` to ``base_url/path``. Prints ``{"port": N}`` once
listening, then serves until SIGTERM/SIGINT.

Usage: ``python -m benchmarks.proxy ROOT PARTNERS_JSON`` where PARTNERS_JSON is the line
``benchmarks/partner.py`` printed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from benchmarks.partner import use_uvloop
from gateway.config.model import load_config
from gateway.partners import Partner, load_partners

FORWARDED = ("Content-Type", "Idempotency-Key")
SESSION = web.AppKey("session", aiohttp.ClientSession)


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


async def serve(root: Path, served: dict[str, dict[str, str | None]]) -> None:
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
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        await stop.wait()
        await runner.cleanup()
    finally:
        await session.close()


def main() -> None:
    use_uvloop()
    asyncio.run(serve(Path(sys.argv[1]), json.loads(sys.argv[2])))


if __name__ == "__main__":
    main()
