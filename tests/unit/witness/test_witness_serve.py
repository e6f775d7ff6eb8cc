"""`gateway witness serve` as a real process, on a free port, cosigning checkpoints that the
gateway's log (LogService over SQLite, the project's log key) signed; `gateway witness vkey`
prints the key its cosignatures verify against."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
from support.processes import free_port

from gateway.config.model import load_config
from gateway.log import merkle
from gateway.log.checkpoint import split_note
from gateway.log.cosignature import parse_witness_vkey, verify_cosignature
from gateway.log.service import LogService, LogSigner
from gateway.log.witness_protocol import format_add_checkpoint
from gateway.store import open_store
from gateway.store.records import LogRow

GATEWAY = Path(sys.executable).parent / "gateway"
NAME = "witness.partner.example/w1"


def rows(start: int, end: int) -> list[LogRow]:
    """Minimal valid entries, as the log service's own tests make them."""
    made = []
    for i in range(start, end):
        entry = b'{"disclosure_id":"d-%d","kind":"outcome","outcome":"sent","time":"x"}' % i
        made.append(LogRow(entry, merkle.leaf_hash(entry)))
    return made


async def post_when_up(
    session: aiohttp.ClientSession, url: str, body: bytes, process: subprocess.Popen[bytes]
) -> tuple[int, str]:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            async with session.post(url, data=body) as response:
                return response.status, await response.text()
        except aiohttp.ClientConnectionError:
            assert process.poll() is None, "gateway witness serve exited"
            assert asyncio.get_running_loop().time() < deadline, "witness did not start"
            await asyncio.sleep(0.1)


async def test_witness_serve_cosigns_the_gateways_checkpoints(
    project: Path, tmp_path: Path
) -> None:
    key = tmp_path / "witness" / "witness.pem"
    printed = subprocess.run(
        [str(GATEWAY), "witness", "vkey", "--key", str(key), "--name", NAME],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    witness = parse_witness_vkey(printed.stdout)
    assert witness.name == NAME
    assert key.stat().st_mode & 0o777 == 0o600  # created, private

    origin = load_config(project / "config.toml").log.origin
    signer = LogSigner.load(project / "keys", origin)
    store = await open_store("sqlite:///store/gateway.db", tmp_path)
    service = LogService(store, signer)
    port = free_port()
    output = (tmp_path / "witness.out").open("wb")
    process = subprocess.Popen(
        [
            str(GATEWAY),
            "witness",
            "serve",
            "--key",
            str(key),
            "--name",
            NAME,
            "--log",
            signer.verifier_key,
            "--port",
            str(port),
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/add-checkpoint"
    try:
        async with aiohttp.ClientSession() as session:
            await service.append_rows(rows(0, 5))
            first = await service.checkpoint()
            status, line = await post_when_up(
                session, url, format_add_checkpoint(0, [], first.note), process
            )
            assert status == 200, line
            assert signer.open(first.note).size == 5
            assert verify_cosignature(line, split_note(first.note)[0], witness) > 0

            await service.append_rows(rows(5, 8))
            second = await service.checkpoint()
            proof = await service.consistency_proof(first.size, second.size)
            body = format_add_checkpoint(first.size, proof, second.note)
            async with session.post(url, data=body) as response:
                assert response.status == 200
                line = await response.text()
            verify_cosignature(line, split_note(second.note)[0], witness)

            # The log's older checkpoint again, from the size the witness no longer has.
            async with session.post(url, data=format_add_checkpoint(0, [], first.note)) as r:
                assert (r.status, r.content_type, await r.text()) == (
                    409,
                    "text/x.tlog.size",
                    "8\n",
                )
    finally:
        process.terminate()
        process.wait(timeout=10)
        output.close()
        await service.stop(final_checkpoint=False)
        await store.close()
    assert process.returncode == 0, (tmp_path / "witness.out").read_text()[-2000:]
    state = json.loads((tmp_path / "witness" / "witness.state.json").read_text())
    assert state["logs"][origin]["size"] == 8
