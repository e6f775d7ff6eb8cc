"""End-to-end fixtures: the real aiohttp gateway app against sandbox partner apps on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import Config
from gateway.crypto import GatewayKeys
from gateway.keys import issue_dev_token
from gateway.partners import Partner
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.web.app import create_app


@pytest.fixture
def tmp_config(config: Config, backend: Any) -> Config:
    """The shipped config on a fresh store: every e2e test runs on SQLite and on PostgreSQL."""
    url = backend.url if backend.name == "postgresql" else f"sqlite:///{backend.root}/gateway.db"
    return replace(config, storage_url=url)


@pytest.fixture
def token(config: Config) -> Callable[[str], str]:
    def make(caller_id: str, ttl: int = 600) -> str:
        return issue_dev_token(config.keys_dir, config.auth, caller_id, ttl_s=ttl)

    return make


@pytest.fixture
def auth(token: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    def headers(caller_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(caller_id)}"}

    return headers


async def start_gateway(config: Config, partners: dict[str, Partner] | None = None,
                        env: dict[str, str] | None = None) -> TestClient:
    app = create_app(config, partners=partners, env=env if env is not None else dict(os.environ))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def gateway(tmp_config: Config) -> AsyncIterator[TestClient]:
    """The gateway on a fresh SQLite store, with the shipped partners (no sandbox running)."""
    client = await start_gateway(tmp_config)
    yield client
    await client.close()


SANDBOX_SECRETS = {
    "BCEL_CLIENT_SECRET": "sandbox-bcel-secret",
    "BUREAU_CLIENT_SECRET": "sandbox-bureau-secret",
    "LXI_API_KEY": "sandbox-lxi-key",
    "ADREACH_API_KEY": "sandbox-adreach-key",
    "INSIGHT_API_KEY": "sandbox-insight-key",
}


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    """Every shipped partner played by a sandbox app on a free loopback port."""
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    cluster = await start_sandboxes(partners, config.keys_dir, jwks, SANDBOX_SECRETS,
                                    ports=dict.fromkeys(partners, 0))
    yield cluster
    await cluster.close()


@pytest.fixture
async def live(tmp_config: Config, sandboxes: SandboxCluster) -> AsyncIterator[TestClient]:
    """The gateway pointed at the running sandboxes."""
    client = await start_gateway(tmp_config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    yield client
    await client.close()
