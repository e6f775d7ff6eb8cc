"""End-to-end fixtures: the real aiohttp gateway app against sandbox partner apps on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.sandboxes import SANDBOX_SECRETS

from gateway.config.model import Config
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster
from gateway.web.app import create_app


def canary(**more: str) -> dict[str, str]:
    """Personal data whose values are marked CANARY, so that a test can show none of them
    reaches a log line, an error or a metric; `more` adds fields."""
    base = {
        "name": "CANARY-Somchai",
        "date_of_birth": "1990-04-02",
        "phone": "+85620CANARY",
        "uuid": "CANARY-UUID",
    }
    return base | more


def credit_check(subject: str, data: dict[str, str]) -> dict[str, object]:
    """A disclosure request: `data` of `subject` to lao-credit-bureau, under consent."""
    return {
        "partner": "lao-credit-bureau",
        "operation": "credit_check",
        "purpose": "service_provision",
        "legal_basis": "consent",
        "subject": subject,
        "data": data,
    }


def consent_of(subject: str, **fields: object) -> dict[str, object]:
    """A consent to service provision, obtained in the app (`fields` add to or replace
    any of it), as POST /v1/consents takes it."""
    return {
        "subject": subject,
        "purposes": ["service_provision"],
        "policy_version": "2024-09-30",
        "obtained_at": "2026-01-01T00:00:00Z",
        "method": "app",
        **fields,
    }


async def granted(
    client: TestClient, headers: dict[str, str], subject: str, partners: list[str], **fields: str
) -> str:
    """A consent of `subject` to service provision by `partners`, recorded through the API
    (`headers`: the caller's); its id."""
    body = {
        "subject": subject,
        "purposes": ["service_provision"],
        "partners": partners,
        "policy_version": "2024-09-30",
        **fields,
    }
    r = await client.post("/v1/consents", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


def person(subject: str) -> dict[str, object]:
    """A subject's data as a disclosure carries it, accepted by every sandbox partner."""
    return {
        "name": "N",
        "date_of_birth": "1990-04-02",
        "phone": "1",
        "uuid": subject,
        "email": "e@x",
        "amount": 5,
        "currency": "LAK",
        "brand": "T",
        "model": "V",
    }


@pytest.fixture
def tmp_config(config: Config, backend: Any) -> Config:
    """The shipped config on a fresh store: every e2e test runs on SQLite and on PostgreSQL."""
    url = backend.url if backend.name == "postgresql" else f"sqlite:///{backend.root}/gateway.db"
    # The tests sign checkpoints when they need one (an entry checked as "pending" first):
    # the shipped 1 s after an append would sign behind their back.
    return replace(config, storage_url=url, log=replace(config.log, checkpoint_interval_s=60.0))


async def start_gateway(
    config: Config, partners: dict[str, Partner] | None = None, env: dict[str, str] | None = None
) -> TestClient:
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


@pytest.fixture
async def live(tmp_config: Config, sandboxes: SandboxCluster) -> AsyncIterator[TestClient]:
    """The gateway pointed at the running sandboxes."""
    client = await start_gateway(tmp_config, partners=sandboxes.partners, env=SANDBOX_SECRETS)
    yield client
    await client.close()
