"""`gateway serve` on the shipped development config serves the sandbox partners too
(`make run`): a recorded consent and a disclosure end in the partner's 2xx, and the
sandbox really decrypted it. Run as a subprocess with two workers on a copy whose
partners' 91xx ports are free ones; every line it writes is a JSON log record."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from gateway.config.model import load_config
from gateway.crypto.dev_tokens import issue_dev_token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def development_copy(project: Path, root: Path) -> dict[str, int]:
    """The shipped project in `root` with free ports; the sandbox port of each partner."""
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    ports = {}
    for file in (root / "partners").glob("*.toml"):
        ports[file.stem] = free_port()
        text = re.sub(r"127\.0\.0\.1:91\d\d", f"127.0.0.1:{ports[file.stem]}", file.read_text())
        file.write_text(text)
    return ports


async def ready(url: str, process: subprocess.Popen[bytes], output: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert process.poll() is None, output.read_text()[-3000:]
            try:
                async with http.get(url) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"not ready: {output.read_text()[-3000:]}")


def port_is_free(port: int) -> bool:
    """Whether a server could listen there now (as aiohttp does: closed connections in
    TIME_WAIT do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_serve_on_the_development_config_reaches_a_sandbox_partner(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "dev"
    ports = development_copy(project, root)
    config = load_config(root / "config.toml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "serve.out"
    command = [sys.executable, "-m", "gateway", "--config", str(root / "config.toml"), "serve"]
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await ready(f"{base}/readyz", process, output)

        def bearer(caller: str) -> dict[str, str]:
            token = issue_dev_token(config.keys_dir, config.auth, caller, ttl_s=300)
            return {"Authorization": f"Bearer {token}"}

        consent = {
            "subject": "s-serve-1",
            "purposes": ["service_provision"],
            "partners": ["lao-credit-bureau"],
            "policy_version": "2024-09-30",
            "method": "app",
        }
        disclosure = {
            "partner": "lao-credit-bureau",
            "operation": "credit_check",
            "purpose": "service_provision",
            "legal_basis": "consent",
            "subject": "s-serve-1",
            "data": {"name": "Somchai", "date_of_birth": "1990-04-02", "phone": "+856 20 555"}
            | {"uuid": "u-1", "password": "never leaves"},
        }
        sandbox = f"http://127.0.0.1:{ports['lao-credit-bureau']}/_sandbox/received"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/v1/consents", json=consent, headers=bearer("customer-app")
            ) as answer:
                assert answer.status == 201, await answer.text()
            async with http.post(
                f"{base}/v1/disclosures", json=disclosure, headers=bearer("sales-service")
            ) as answer:
                assert answer.status == 201, await answer.text()
                disclosure_id = answer.headers["Disclosure-Id"]
            async with http.get(sandbox) as answer:
                received = await answer.json()
        # The sandbox decrypted the JWE, verified the gateway's signature and recorded
        # the field names it got: the minimized ones, never the password.
        [got] = [r for r in received if r["disclosure_id"] == disclosure_id]
        assert got["fields"] == ["date_of_birth", "name", "phone", "uuid"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    lines = output.read_text().splitlines()
    assert code == 0, lines[-20:]
    records = [json.loads(line) for line in lines]  # every line is a JSON record
    messages = [r["message"] for r in records]
    assert any(m.startswith(f"gateway serving on {base} with 2 worker(s)") for m in messages)
    # Once, in the main process, not once per worker: a second start would find the ports busy.
    [served] = [m for m in messages if m.startswith("sandbox partners on loopback")]
    for pid, sandbox_port in ports.items():
        assert f"{pid} http" in served and f"127.0.0.1:{sandbox_port}" in served
    assert not [r for r in records if r["level"] in ("WARNING", "ERROR")], records
    assert "sandbox partners stopped" in messages and messages[-1] == "gateway stopped"
    assert all(port_is_free(p) for p in ports.values()), "a sandbox outlived the gateway"
    assert "Somchai" not in output.read_text() and "+856" not in output.read_text()
