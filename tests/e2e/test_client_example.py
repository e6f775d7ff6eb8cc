"""examples/disclose.py, run as a user runs it, against the live gateway and its sandbox
partners on free ports: a delivered disclosure, a refusal handled by its problem code,
and the retry path (the partner fails; the example retries, or gives up when told to
wait longer than it will)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.config.model import Config
from gateway.sandbox import SandboxCluster
from gateway.web.app import create_app
from gateway_client import (
    CircuitOpen,
    ConsentRequired,
    GatewayUnreachable,
    LogUnavailable,
    PartnerTimeout,
    PartnerUnavailable,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "disclose.py"
PARTNER = "lao-credit-bureau"


@dataclass
class Ran:
    code: int
    out: str


@pytest.fixture
async def live_sqlite(
    config: Config, sandboxes: SandboxCluster, tmp_path: Path
) -> AsyncIterator[TestClient]:
    """The gateway on SQLite pointed at the sandboxes (one backend is enough here)."""
    sqlite = replace(config, storage_url=f"sqlite:///{tmp_path}/gateway.db")
    client = TestClient(TestServer(create_app(sqlite, partners=sandboxes.partners, env={})))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def run_example(
    live_sqlite: TestClient, token: Callable[[str], str]
) -> Callable[[], Awaitable[Ran]]:
    async def run() -> Ran:
        env = {
            "DISCLOSER_TOKEN": token("sales-service"),
            "CONSENT_TOKEN": token("customer-app"),
            "PATH": "/usr/bin:/bin",
        }
        url = str(live_sqlite.make_url("")).rstrip("/")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            "--url",
            url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode())

    return run


def delivered_id(out: str) -> str:
    match = re.search(r"partner answered 201; Disclosure-Id (d-[0-9a-f-]+); fields sent: (.+)", out)
    assert match, out
    assert match.group(2) == "name, date_of_birth, phone, uuid", out  # no password, no health
    return match.group(1)


def shows_the_consent_refusal(out: str) -> bool:
    return (
        "refused, consent_required (403)" in out
        and "'lanexang-insurance'" in out
        and "asks the customer for this consent" in out
    )


async def test_the_example_delivers_and_handles_a_refusal(run_example, sandboxes) -> None:
    ran = await run_example()
    assert ran.code == 0, ran.out
    disclosure_id = delivered_id(ran.out)
    assert [r.disclosure_id for r in sandboxes.received(PARTNER)] == [disclosure_id]
    assert shows_the_consent_refusal(ran.out)
    assert "retrying" not in ran.out and "Traceback" not in ran.out


async def test_the_example_retries_a_failed_partner_with_a_new_key(run_example, sandboxes) -> None:
    partner = sandboxes.partner(PARTNER)
    partner.fail_next(partner.partner.max_attempts, 503)  # every try of the gateway's first call
    ran = await run_example()
    assert ran.code == 0, ran.out
    retry = re.search(
        # The gateway's Retry-After for a transient partner failure (8 s) is honoured.
        r"partner_unavailable \(502\), Disclosure-Id d-[0-9a-f-]+, Retry-After (\d+) s: "
        r"retrying in \1 s with a new Idempotency-Key (order-[0-9a-f]+)-retry-1",
        ran.out,
    )
    assert retry, ran.out
    assert f"Idempotency-Key {retry.group(2)}\n" in ran.out  # the first try's key
    assert [r.disclosure_id for r in sandboxes.received(PARTNER)] == [delivered_id(ran.out)]
    assert shows_the_consent_refusal(ran.out)


async def test_the_example_gives_up_when_told_to_wait_too_long(run_example, sandboxes) -> None:
    # Beyond what the gateway waits itself, the partner's Retry-After reaches the caller.
    sandboxes.partner(PARTNER).fail_next(1, 503, retry_after=120)
    ran = await run_example()
    assert ran.code == 1, ran.out
    assert re.search(
        r"failed, partner_unavailable \(502\), Disclosure-Id d-[0-9a-f-]+: .*"
        r"try again after 120 s",
        ran.out,
    ), ran.out
    assert "retrying" not in ran.out and sandboxes.received(PARTNER) == []
    assert shows_the_consent_refusal(ran.out)


# -- the retry rule on its own ---------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("disclose_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_retry_wait_honours_retry_after_and_is_bounded(example: ModuleType) -> None:
    wait = example.retry_wait
    assert wait(LogUnavailable("down", retry_after=5.0), 1) == 5.0
    assert wait(LogUnavailable("down"), 1) == 1.0 and wait(LogUnavailable("down"), 2) == 2.0
    assert wait(LogUnavailable("down"), example.MAX_ATTEMPTS) is None
    assert wait(PartnerUnavailable("503", retry_after=3.0), 1) == 3.0
    assert wait(CircuitOpen("open", retry_after=31.0), 1) is None  # longer than it waits
    assert wait(GatewayUnreachable("lost", request_sent=True), 1) == 1.0
    assert wait(PartnerTimeout("slow"), 1) is None  # may have reached the partner
    assert wait(ConsentRequired("no consent"), 1) is None
