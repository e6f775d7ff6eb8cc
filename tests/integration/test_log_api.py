"""CONTRACT §4.6 over HTTP: a loopback aiohttp server, real caller tokens, a real SQLite store.

What a reviewer fetches is checked the way an outside auditor would: the checkpoint with
the public key from /v1/log/key, proofs with gateway.log.merkle.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.callers.tokens import CallerAuthenticator
from gateway.canonical import canonical_json
from gateway.config.model import Config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.log import merkle
from gateway.log.checkpoint import open_checkpoint
from gateway.log.entries import outcome_entry, row_of
from gateway.log.service import LogService, LogSigner
from gateway.store import open_store
from gateway.web.keys import AUTH, LOG, STORE
from gateway.web.problems import problem_middleware
from gateway.web.routes.log import add_log_routes

ENTRIES = 300


def headers(config: Config, caller: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_dev_token(config.keys_dir, config.auth, caller)}


@pytest.fixture
async def client(config: Config, tmp_path: Path) -> AsyncIterator[TestClient]:
    store = await open_store("sqlite:///log.db", tmp_path)
    service = LogService(store, LogSigner.load(config.keys_dir, config.log.origin))
    at = datetime(2026, 11, 2, tzinfo=UTC)
    await service.append_rows(
        [
            row_of(outcome_entry(disclosure_id=f"d-{i}", outcome="sent", at=at, partner="p"))
            for i in range(ENTRIES)
        ]
    )
    app = web.Application(middlewares=[problem_middleware])
    app[AUTH] = CallerAuthenticator(config.auth, config.callers, None)
    app[LOG] = service
    app[STORE] = store
    add_log_routes(app)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()
        await service.stop(final_checkpoint=False)
        await store.close()


@pytest.fixture
def reviewer(config: Config) -> dict[str, str]:
    return headers(config, "reviewer-alice")


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def test_key_is_public_and_checks_the_checkpoint(
    client: TestClient, reviewer: dict[str, str]
) -> None:
    key = await client.get("/v1/log/key")
    assert key.status == 200 and key.content_type == "text/plain"
    verifier = (await key.text()).strip()

    response = await client.get("/v1/log/checkpoint", headers=reviewer)
    assert response.status == 200 and response.content_type == "text/plain"
    checkpoint = open_checkpoint(await response.text(), verifier)
    assert checkpoint.size == ENTRIES
    assert checkpoint.origin == verifier.split("+")[0]


async def test_entry_and_inclusion_proof_verify_against_the_checkpoint(
    client: TestClient, reviewer: dict[str, str]
) -> None:
    verifier = (await (await client.get("/v1/log/key")).text()).strip()
    note = await (await client.get("/v1/log/checkpoint", headers=reviewer)).text()
    checkpoint = open_checkpoint(note, verifier)

    doc = await (await client.get("/v1/log/entries/123", headers=reviewer)).json()
    assert doc["index"] == 123 and doc["entry"]["disclosure_id"] == "d-123"
    leaf = merkle.leaf_hash(canonical_json(doc["entry"]))
    assert b64(doc["leaf_hash"]) == leaf

    response = await client.get(
        "/v1/log/proof/inclusion",
        params={"index": "123", "tree_size": str(checkpoint.size)},
        headers=reviewer,
    )
    proof = await response.json()
    assert (proof["index"], proof["tree_size"], b64(proof["leaf_hash"])) == (123, ENTRIES, leaf)
    merkle.verify_inclusion(123, ENTRIES, leaf, [b64(h) for h in proof["hashes"]], checkpoint.root)


async def test_consistency_proof_between_two_sizes(
    client: TestClient, reviewer: dict[str, str]
) -> None:
    service = client.server.app[LOG]
    leaves = [leaf for _, _, leaf in await service._store.read_log_records(0, ENTRIES)]  # type: ignore[attr-defined]
    response = await client.get(
        "/v1/log/proof/consistency", params={"first": "100", "second": "300"}, headers=reviewer
    )
    doc = await response.json()
    assert (doc["first"], doc["second"]) == (100, 300)
    merkle.verify_consistency(
        100,
        300,
        [b64(h) for h in doc["hashes"]],
        merkle.root_from_leaf_hashes(leaves[:100]),  # type: ignore[arg-type]
        merkle.root_from_leaf_hashes(leaves),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v1/log/entries/300", {}, 404, "not_found"),
        ("/v1/log/entries/-1", {}, 400, "invalid_request"),
        ("/v1/log/entries/1e3", {}, 400, "invalid_request"),
        ("/v1/log/proof/inclusion", {"index": "3"}, 400, "invalid_request"),
        ("/v1/log/proof/inclusion", {"index": "3", "tree_size": "3"}, 400, "invalid_request"),
        ("/v1/log/proof/inclusion", {"index": "3", "tree_size": "301"}, 400, "invalid_request"),
        ("/v1/log/proof/inclusion", {"index": "x", "tree_size": "10"}, 400, "invalid_request"),
        ("/v1/log/proof/inclusion", {"index": "1", "tree_size": "9" * 30}, 400, "invalid_request"),
        ("/v1/log/proof/consistency", {"first": "0", "second": "10"}, 400, "invalid_request"),
        ("/v1/log/proof/consistency", {"first": "20", "second": "10"}, 400, "invalid_request"),
        ("/v1/log/proof/consistency", {"first": "1", "second": "301"}, 400, "invalid_request"),
    ],
)
async def test_bad_parameters_are_problems(
    client: TestClient,
    reviewer: dict[str, str],
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await client.get(path, params=params, headers=reviewer)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    problem = json.loads(await response.text())
    assert problem["type"].endswith("/" + code)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/log/checkpoint",
        "/v1/log/entries/0",
        "/v1/log/proof/inclusion?index=0&tree_size=1",
        "/v1/log/proof/consistency?first=1&second=2",
    ],
)
async def test_reviewer_role_required(
    client: TestClient, headers_for: Callable[[str], dict[str, str]], path: str
) -> None:
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers=headers_for("customer-app"))).status == 403
    # A calling service reads only entries that name it (§4.6): another's is not found.
    others = 404 if "/entries/" in path else 403
    assert (await client.get(path, headers=headers_for("sales-service"))).status == others
    assert (await client.get(path, headers=headers_for("reviewer-bob"))).status == 200


@pytest.fixture
def headers_for(config: Config) -> Callable[[str], dict[str, str]]:
    return lambda caller: headers(config, caller)
