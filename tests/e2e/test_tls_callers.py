"""TLS server mode: callers may authenticate with a client certificate (CN = caller id)."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from gateway.web.app import create_app
from gateway.web.tls import server_ssl_context

BODY = {
    "partner": "lao-credit-bureau",
    "operation": "credit_check",
    "purpose": "service_provision",
    "legal_basis": "contract",
    "subject": "s-1",
    "data": {"name": "n"},
}


@pytest.fixture
async def tls_gateway(tmp_config, tmp_path: Path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = replace(
        tmp_config,
        server=replace(
            tmp_config.server,
            tls_cert_file=tmp_path / "server.pem",
            tls_key_file=tmp_path / "server.pem",
            tls_client_ca_file=tmp_path / "ca.pem",
        ),
    )
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(config.server))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"https://127.0.0.1:{port}", ca
    await runner.cleanup()


def client_context(ca: trustme.CA, common_name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if common_name:
        ca.issue_cert(common_name, common_name=common_name).configure_cert(context)
    return context


async def post(url: str, context: ssl.SSLContext, headers: dict | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/v1/decisions", json=BODY, ssl=context, headers=headers or {}
        ) as response:
            return response.status


async def test_client_certificate_identifies_caller(tls_gateway, auth):
    url, ca = tls_gateway
    assert await post(url, client_context(ca, "sales-service")) == 200
    assert await post(url, client_context(ca, "customer-app")) == 403  # lacks discloser
    assert await post(url, client_context(ca, "not-a-caller")) == 403
    assert await post(url, client_context(ca, None)) == 401
    assert await post(url, client_context(ca, None), auth("sales-service")) == 200


async def test_certificate_from_another_ca_is_not_trusted(tls_gateway):
    url, ca = tls_gateway
    context = client_context(ca, None)
    trustme.CA().issue_cert("sales-service", common_name="sales-service").configure_cert(context)
    with pytest.raises(aiohttp.ClientError):
        await post(url, context)
