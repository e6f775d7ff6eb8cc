"""Witnessed receipts end to end (issue #18 items 4 and 6): a running gateway whose witness
policy names two witness processes — ours (`gateway witness serve`) and the spec-only one of
tests/support — with quorum 2, and the sandbox partner lao-credit-bureau, which acknowledges
each disclosure with a signed JWS.

- While one witness is down the quorum cannot be met: the receipt is `202` with
  `Retry-After`, even once a checkpoint covering the entry is cosigned by the other — never a
  receipt with too few cosignatures.
- Once both cosign, the receipt (`200`) carries both cosignatures, and `gateway receipt
  verify`, a process of its own with no config and no database, checks it with the policy a
  verifier writes (the log's key, the two witnesses' keys, quorum 2; no URL), and with the
  disclosure's outcome entry and the partner's public key shows the acknowledgement.
- One proof hash changed, one cosignature line removed, a checkpoint of another log, an
  outcome without acknowledgement: each exit 1 with its reason.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.processes import GatewayProcess, free_port, write_project
from support.receipts import verify
from support.sandboxes import sandboxes_of
from support.spec_witness import verify_cosigned
from support.witnesses import gateway_witness, spec_witness, write_policy

from gateway.config.model import Config, load_config
from gateway.crypto.acknowledgement import ACK_STATUS_HEADER
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.log.checkpoint import sign_note
from gateway.log.service import LogSigner
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster

CREDIT = "lao-credit-bureau"
SUBJECT = f"s-witnessed-{uuid.uuid4()}"
PERSON = {"name": "N", "date_of_birth": "1990-04-02", "phone": "+856 20 1", "uuid": "u-1"}


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    cluster = await sandboxes_of(config, [partners[CREDIT]])
    yield cluster
    await cluster.close()


class Api:
    """The running gateway, asked as its callers ask it."""

    def __init__(self, session: aiohttp.ClientSession, url: str, config_path: Path) -> None:
        self.session, self.url = session, url
        self.config = load_config(config_path)

    def auth(self, caller: str) -> dict[str, str]:
        token = issue_dev_token(self.config.keys_dir, self.config.auth, caller)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, caller: str | None, body: Any = None
    ) -> tuple[int, Any, str]:
        headers = self.auth(caller) if caller else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            return response.status, response.headers, await response.text()

    async def disclose(self) -> str:
        body = {
            "partner": CREDIT,
            "operation": "credit_check",
            "purpose": "service_provision",
            "legal_basis": "consent",
            "subject": SUBJECT,
            "data": PERSON,
        }
        status, headers, text = await self.call("POST", "/v1/disclosures", "sales-service", body)
        assert status == 201, text
        assert headers[ACK_STATUS_HEADER] == "valid"
        return str(headers["Disclosure-Id"])

    async def grant_consent(self) -> None:
        consent = {
            "subject": SUBJECT,
            "purposes": ["service_provision"],
            "partners": [CREDIT],
            "policy_version": "2024-09-30",
            "obtained_at": "2026-01-01T00:00:00Z",
            "method": "app",
        }
        status, _, text = await self.call("POST", "/v1/consents", "customer-app", consent)
        assert status == 201, text


async def until(check: Any, what: str, timeout_s: float = 30.0) -> Any:
    """Poll the coroutine function `check` until it returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (found := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return found


async def test_a_witnessed_receipt_verified_offline_with_the_partners_acknowledgement(
    tmp_path: Path, project: Path, sandboxes: SandboxCluster
) -> None:
    config_path = write_project(
        tmp_path / "project",
        project,
        storage_url="sqlite:///var/gateway.db",
        base_urls={CREDIT: sandboxes.base_url(CREDIT)},
        log_settings={"witness_policy": '"witnesses.txt"', "checkpoint_interval_s": 0.2},
    )
    config = load_config(config_path)
    log_vkey = LogSigner.load(config.keys_dir, config.log.origin).verifier_key
    with ExitStack() as stack:
        w1 = stack.enter_context(gateway_witness(tmp_path / "w1", log_vkey))
        w2_port = free_port()
        with spec_witness(tmp_path / "w2", log_vkey, w2_port) as w2:
            pass  # its key is made; it stays down until it is started again below
        write_policy(config_path.parent / "witnesses.txt", log_vkey, {"w1": w1, "w2": w2}, "all")
        async with aiohttp.ClientSession() as session:
            gateway = GatewayProcess(config_path)
            await gateway.start(session)
            try:
                api = Api(session, gateway.url, config_path)
                await api.grant_consent()
                disclosure_id = await api.disclose()
                receipt_path = f"/v1/disclosures/{disclosure_id}/receipt"

                status, _, text = await api.call("GET", receipt_path, "sales-service")
                assert status == 202, text
                index = json.loads(text)["index"]

                # w2 down, quorum 2: a checkpoint covering the entry is cosigned by w1 only.
                async def cosigned_by_w1_only() -> bool:
                    _, _, note = await api.call("GET", "/v1/log/checkpoint", "reviewer-alice")
                    _, _, ready = await api.call("GET", "/readyz", None)
                    w1_line = "\u2014 " + w1.vkey.split("+")[0] + " "
                    covers = int(note.split("\n")[1]) > index
                    return covers and w1_line in note and json.loads(ready)["status"] == "degraded"

                await until(cosigned_by_w1_only, "w1's cosignature with w2 down")
                status, headers, text = await api.call("GET", receipt_path, "sales-service")
                assert status == 202, text  # never a receipt below the quorum
                assert headers["Retry-After"] == "1"  # log.checkpoint_interval_s, rounded up
                pending = json.loads(text)
                assert pending["status"] == "pending" and pending["index"] == index

                # w2 back: the next checkpoint is cosigned by both, and the receipt is ready.
                stack.enter_context(spec_witness(tmp_path / "w2", log_vkey, w2_port))
                await api.disclose()

                async def receipt_ready() -> str | None:
                    got, _, body = await api.call("GET", receipt_path, "sales-service")
                    assert got in (200, 202), body
                    return body if got == 200 else None

                receipt = await until(receipt_ready, "the witnessed receipt")
                # The entry it proves and its outcome (its caller reads both),
                # the log's key (anyone).
                status, _, entry = await api.call(
                    "GET", f"/v1/log/entries/{index}", "sales-service"
                )
                assert status == 200, entry
                status, _, outcome = await api.call(
                    "GET", f"/v1/log/entries/{index + 1}", "sales-service"
                )
                assert status == 200, outcome
                assert json.loads(outcome)["entry"]["disclosure_id"] == disclosure_id
                _, _, keys = await api.call("GET", "/v1/log/key", None)
            finally:
                gateway.stop()

    note = receipt.partition("\n\n")[2]
    assert len(verify_cosigned(note, log_vkey, [w1.vkey, w2.vkey])) == 2
    folder = tmp_path / "verifier"
    folder.mkdir()
    # What a verifier writes: the log's key, the witnesses' keys, quorum 2; no URL.
    (folder / "policy.txt").write_text(
        f"log {keys.splitlines()[0]}\n"
        f"witness w1 {w1.vkey}\n"
        f"witness w2 {w2.vkey}\n"
        "group both 2 w1 w2\n"
        "quorum both\n"
    )
    # The partner's public acknowledgement key, as the partner publishes it.
    shutil.copy(project / "keys/partners/lao-credit-bureau.ack.jwk.json", folder / "ack.jwk.json")
    files = {"d.tlog-proof": receipt, "entry.json": entry, "outcome.json": outcome}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    base = ["--policy", "policy.txt", "--entry", "entry.json"]
    ack = ["--outcome", "outcome.json", "--partner-key", "ack.jwk.json"]

    done = verify(folder, "d.tlog-proof", *base, *ack)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = done.stdout.splitlines()
    origin = config.log.origin
    assert first.startswith(f"ok: entry {index} of {origin} is in the tree of size ")
    assert first.endswith("cosigned by w1, w2 (quorum both met)"), first
    assert second.startswith(f"acknowledged by {CREDIT} (received_sha256 "), second

    # One proof hash changed.
    lines = receipt.split("\n")
    assert lines[1] == f"index {index}" and lines[2], receipt  # a tree of 2+: one hash at least
    lines[2] = "A" * 43 + "=" if lines[2] != "A" * 43 + "=" else "B" * 43 + "="
    refused(folder, "\n".join(lines), base, "FAILED: inclusion: ")
    # One cosignature line removed: below the quorum, naming who did cosign.
    w2_line = "\u2014 " + w2.vkey.split("+")[0] + " "
    kept = [line for line in receipt.split("\n") if not line.startswith(w2_line)]
    refused(
        folder,
        "\n".join(kept),
        base,
        "FAILED: quorum not met: cosigned by w1; quorum 'both' needs 2 of [w1, w2]",
    )
    # A checkpoint of another log, signed by that log's key.
    head, _, _ = receipt.partition("\n\n")
    body = note.partition("\n\n")[0] + "\n"
    other = "other.example/log\n" + body.split("\n", 1)[1]
    forged = head + "\n\n" + sign_note(other, "other.example/log", Ed25519PrivateKey.generate())
    refused(
        folder,
        forged,
        base,
        "FAILED: log signature: the checkpoint is from another log: origin 'other.example/log'",
    )
    # The outcome with no acknowledgement recorded.
    answer = json.loads(outcome)
    del answer["entry"]["ack"]
    (folder / "outcome.json").write_text(json.dumps(answer), encoding="utf-8")
    done = verify(folder, "d.tlog-proof", *base, *ack)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[1].startswith(
        "FAILED: acknowledgement: no acknowledgement recorded"
    ), done.stdout


def refused(folder: Path, text: str, base: list[str], says: str) -> None:
    (folder / "bad.tlog-proof").write_text(text, encoding="utf-8")
    done = verify(folder, "bad.tlog-proof", *base)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(says), done.stdout
