"""CPU per disclosure with everything in one process: a before/after figure a busy machine
does not blur much.

Runs the gateway application (`create_app`) on a fresh SQLite store, the bench's first
partner (bcel-payments: RSA-OAEP-256 + ES256) as an echo sandbox (it answers at once,
``benchmarks/partner.py``), and an aiohttp client sending full disclosures, `concurrency`
at a time, in one process and one thread (plus SQLite's writer), logging as `gateway
serve` does (JSON lines at INFO, here into /dev/null). Prints the process's CPU
time per disclosure: the gateway's, plus the client's and the echo partner's, which no
gateway change alters, so a difference between two trees is the gateway's. Wall time is
not used: on a shared machine it measures the neighbours. Run it alternately on the two
trees being compared (``python benchmarks/disclosure_cpu.py`` from each) and compare the
medians.

Usage: ``python benchmarks/disclosure_cpu.py [--seconds S] [--concurrency C] [--project DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from benchmarks.partner import TOKEN_TTL_S, Echo  # noqa: E402
from benchmarks.run import CONSENT_WRITER, SCENARIOS, Scenario  # noqa: E402
from gateway.config.model import Config, load_config  # noqa: E402
from gateway.crypto.dev_tokens import issue_dev_token  # noqa: E402
from gateway.crypto.seal import GatewayKeys  # noqa: E402
from gateway.observe.app_log import setup_logging  # noqa: E402
from gateway.partners import load_partners  # noqa: E402
from gateway.sandbox import start_sandboxes  # noqa: E402
from gateway.web.app import create_app  # noqa: E402

SUBJECTS = 200


async def run(project: Path, seconds: float, concurrency: int) -> tuple[int, float]:
    scenario = SCENARIOS[0]
    config = load_config(project / "config.toml")
    partners = load_partners(config.partners_dir, config.root)
    chosen = {scenario.partner: partners[scenario.partner]}
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    cluster = await start_sandboxes(
        chosen,
        config.keys_dir,
        jwks,
        os.environ,
        ports=dict.fromkeys(chosen, 0),
        token_ttl=TOKEN_TTL_S,
        remember=False,
    )
    Echo([cluster.partner(scenario.partner)]).switch(True)
    with tempfile.TemporaryDirectory(prefix="gw-disclosure-cpu-") as scratch:
        config = dataclasses.replace(
            config,
            storage_url=f"sqlite:///{scratch}/gateway.db",
            sandbox_serve=False,
            log=dataclasses.replace(config.log, checkpoint_interval_s=3600.0),
        )
        app = create_app(config, partners={**partners, **cluster.partners}, env=dict(os.environ))
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            return await _disclose(client, config, scenario, seconds, concurrency)
        finally:
            await client.close()
            await cluster.close()


async def _disclose(
    client: TestClient, config: Config, sc: Scenario, seconds: float, concurrency: int
) -> tuple[int, float]:
    """Consents for every subject, a second of warm-up, then `seconds` measured."""
    writer = {
        "Authorization": f"Bearer {issue_dev_token(config.keys_dir, config.auth, CONSENT_WRITER)}"
    }
    for n in range(SUBJECTS):
        body = {
            "subject": f"s-{n}",
            "purposes": ["service_provision"],
            "partners": [sc.partner],
            "policy_version": config.policy.version,
            "method": "app",
        }
        r = await client.post("/v1/consents", json=body, headers=writer)
        assert r.status == 201, await r.text()
    token = issue_dev_token(config.keys_dir, config.auth, sc.caller, ttl_s=3600)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [
        json.dumps(
            {
                "partner": sc.partner,
                "operation": sc.operation,
                "purpose": "service_provision",
                "legal_basis": sc.legal_basis,
                "subject": f"s-{n}",
                "data": sc.data,
            }
        ).encode()
        for n in range(SUBJECTS)
    ]
    count = 0

    async def one(n: int) -> None:
        async with client.post("/v1/disclosures", data=bodies[n % SUBJECTS], headers=headers) as r:
            await r.read()
            if r.status >= 300:
                raise SystemExit(f"a disclosure got {r.status}: {(await r.text())[:300]}")

    async def worker(offset: int, until: float) -> None:
        nonlocal count
        n = offset
        while time.monotonic() < until:
            await one(n)
            n += concurrency
            count += 1

    await asyncio.gather(*(worker(i, time.monotonic() + 1.0) for i in range(concurrency)))
    count = 0  # the second above warmed up
    started = time.process_time()
    await asyncio.gather(*(worker(i, time.monotonic() + seconds) for i in range(concurrency)))
    return count, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per disclosure, all in one process")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--project", type=Path, default=ROOT)
    args = parser.parse_args()
    # As `gateway serve` logs (JSON lines at INFO), into nothing rather than a terminal.
    setup_logging("json", stream=open(os.devnull, "w"))
    count, cpu = asyncio.run(run(args.project, args.seconds, args.concurrency))
    print(
        f"{count} disclosures, {args.concurrency} at a time: {cpu / count * 1e6:.0f} µs of "
        f"process CPU per disclosure (gateway + echo partner + client)"
    )


if __name__ == "__main__":
    main()
