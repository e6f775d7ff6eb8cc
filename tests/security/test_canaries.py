"""The security suite (issue 6 item 5), on SQLite and on PostgreSQL.

Canaries: one recognisable value in every personal field of a disclosure — every field
of the vocabulary, the special categories (sent with an explicit consent), the values
inside `payment_records`, a value that ends up in a partner URL path, and the subject
id — go through the gateway to every sandbox partner, in allowed disclosures, dry runs,
refusals (consent missing or withdrawn, caller outside its allowlist), invalid bodies
and partner failures. Afterwards no canary may appear:

- in the store: every table of the SQLite file (and the raw file and its WAL) or of
  the PostgreSQL schema — the subject id included, in every table: the store keeps
  keyed references and sealed text (gateway.crypto.at_rest), and so does free text given to
  the gateway (consent evidence, a restriction's reason, a profile's date of birth, a
  lawful request's instrument and subject list, a suspension's reason);
- in the application log output, captured at DEBUG through the gateway's own log
  handler for the whole flow, nor in the message of any record a gateway module logs;
- in /metrics, or in the body or headers of any response.

Authentication matrix: the refusals of the egress issue (no token, expired, wrong
audience, wrong issuer, alg none, HS256 keyed with the public key, unknown kid, a
caller outside its allowlist or without the role), through HTTP on both stores: each
is refused with the right problem, and nothing reaches a partner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.jwk import ECKey

from gateway import vocabulary as v
from gateway.config.model import Config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.keyring import KeyPaths
from gateway.crypto.seal import GatewayKeys
from gateway.observe.app_log import setup_logging
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster, start_sandboxes
from gateway.store import sqlite_path
from gateway.web.app import create_app

if TYPE_CHECKING:
    from conftest import Backend

# Needles: what must never show up. Strings carry a tail that survives `mask` (the last
# four characters) and occurs in no base64, hex or JSON the gateway writes.
TAIL = "!~!~"
MARK = "CNRY"
DOB, VISIT, IP, AMOUNT = "1987-06-05", "2021-07-08T09:10:11Z", "203.0.113.177", 987654.321
DATA_NEEDLES = (MARK, TAIL, DOB, "2021-07-08", IP, "987654.321")
SUBJECT = f"s-SUBJCANARY-{uuid.uuid4().hex[:8]}"
SUBJECT_NEEDLE = "SUBJCANARY"
TEXT_NEEDLE = "TXTCANARY"  # free text a person typed: evidence, reasons, notes

SPECIAL_VALUES: dict[str, Any] = {
    "date_of_birth": DOB,
    "visit_time": VISIT,
    "ip_address": IP,
    "amount": AMOUNT,
    "payment_records": [
        {
            "amount": AMOUNT,
            "currency": f"{MARK}cur{TAIL}",
            "card_token": f"{MARK}card{TAIL}",
            "transaction_id": f"{MARK}tx{TAIL}",
            "note": f"{MARK}note{TAIL}",  # not a payment key: withheld
        }
    ],
}
DATA = {name: SPECIAL_VALUES.get(name, f"{MARK}_{name}_{TAIL}") for name in sorted(v.FIELDS)}

POLICY = "2024-09-30"


def disclosure(
    partner: str, operation: str, purpose: str, basis: str, subject: str = SUBJECT, **data: Any
) -> dict[str, Any]:
    return {
        "partner": partner,
        "operation": operation,
        "purpose": purpose,
        "legal_basis": basis,
        "subject": subject,
        "data": {**DATA, **data},
    }


# (caller, partner, operation, purpose, basis): every partner, every kind of transform.
ROUTES = [
    ("sales-service", "lanexang-insurance", "health_underwriting", "service_provision", "consent"),
    ("sales-service", "lanexang-insurance", "quote", "service_provision", "contract"),
    ("sales-service", "lao-credit-bureau", "credit_check", "service_provision", "consent"),
    ("sales-service", "veriid", "verify_identity", "safety_security", "contract"),
    ("payments-service", "bcel-payments", "charge", "service_provision", "contract"),
    # transaction_id is a placeholder of this operation's path: the canary goes into a URL.
    ("payments-service", "bcel-payments", "refund", "user_support", "contract"),
    ("payments-service", "mekong-collections", "open_case", "service_provision", "contract"),
    ("marketing-service", "adreach", "audience_upload", "marketing", "consent"),
    ("marketing-service", "insight-analytics", "usage_events", "research_development", "consent"),
    ("legal-desk", "vientiane-police", "lawful_disclosure", "safety_security", "vital_interest"),
]
ALLOWED = [(caller, disclosure(*route)) for caller, *route in ROUTES]


@dataclass
class Seen:
    """Everything that left the gateway towards callers: bodies and headers."""

    responses: list[str] = field(default_factory=list)

    def add(self, status: int, headers: Any, body: bytes) -> None:
        self.responses.append(f"{status} {dict(headers)!r} {body.decode('utf-8', 'replace')}")


def found_in(text: str, needles: tuple[str, ...] = DATA_NEEDLES) -> list[str]:
    return [needle for needle in needles if needle in text]


@pytest.fixture
def app_log() -> Iterator[tuple[io.StringIO, list[logging.LogRecord]]]:
    """The gateway's own log handler at DEBUG into a buffer, plus every raw record."""
    stream = io.StringIO()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    level = root.level
    handler = setup_logging("json", level=logging.DEBUG, stream=stream)
    keep = Keep(logging.DEBUG)
    root.addHandler(keep)
    try:
        yield stream, records
    finally:
        root.removeHandler(keep)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        logging.captureWarnings(False)


@pytest.fixture
async def sandboxes(config: Config, partners: dict[str, Partner]) -> AsyncIterator[SandboxCluster]:
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    cluster = await start_sandboxes(
        partners, config.keys_dir, jwks, {}, ports=dict.fromkeys(partners, 0)
    )
    yield cluster
    await cluster.close()


@pytest.fixture
async def gateway(
    config: Config, backend: Backend, sandboxes: SandboxCluster
) -> AsyncIterator[TestClient]:
    url = backend.url if backend.name == "postgresql" else f"sqlite:///{backend.root}/gateway.db"
    app = create_app(replace(config, storage_url=url), partners=sandboxes.partners, env={})
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def dump_store(backend: Backend) -> dict[str, str]:
    """Every table of the store as text (bytes decoded), by table name; for SQLite also
    the raw database file and its write-ahead log."""
    tables: dict[str, str] = {}

    def show(value: Any) -> str:
        if isinstance(value, memoryview):
            value = bytes(value)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)

    if backend.name == "sqlite":
        path = Path(sqlite_path(f"sqlite:///{backend.root}/gateway.db", backend.root))
        with sqlite3.connect(path) as conn:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for name in names:
                rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
                tables[name] = "\n".join(" | ".join(show(c) for c in row) for row in rows)
        for raw in (path, path.with_name(path.name + "-wal")):
            if raw.exists():
                tables[f"file:{raw.name}"] = raw.read_bytes().decode("utf-8", "replace")
        return tables
    assert backend.admin is not None and backend.schema is not None
    names = [
        r[0]
        for r in await backend.admin.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            backend.schema,
        )
    ]
    for name in names:
        rows = await backend.admin.fetch(f'SELECT * FROM "{backend.schema}"."{name}"')
        tables[name] = "\n".join(" | ".join(show(c) for c in row.values()) for row in rows)
    return tables


async def test_no_canary_leaves_in_the_store_logs_metrics_or_error_bodies(
    gateway: TestClient,
    sandboxes: SandboxCluster,
    backend: Backend,
    config: Config,
    app_log: tuple[io.StringIO, list[logging.LogRecord]],
) -> None:
    seen = Seen()
    tokens = {c: issue_dev_token(config.keys_dir, config.auth, c) for c in config.callers}

    async def call(method: str, path: str, caller: str, body: Any = None, **headers: str) -> int:
        response = await gateway.request(
            method,
            path,
            json=body,
            headers={"Authorization": f"Bearer {tokens[caller]}", **headers},
        )
        seen.add(response.status, response.headers, await response.read())
        return response.status

    consent = {
        "subject": SUBJECT,
        "purposes": ["service_provision", "marketing", "research_development"],
        "partners": ["lanexang-insurance", "lao-credit-bureau", "adreach", "insight-analytics"],
        "special_categories": ["health_status"],
        "policy_version": POLICY,
        "method": "app",
        "evidence": f"signed form {TEXT_NEEDLE}",
    }
    assert await call("POST", "/v1/consents", "customer-app", consent) == 201
    # Free text and a date of birth about another subject, and a lawful request naming both.
    other = f"s-SUBJCANARY-o-{uuid.uuid4().hex[:6]}"
    restriction = {"restricted": True, "reason": f"letter {TEXT_NEEDLE}"}
    assert (
        await call("PUT", f"/v1/subjects/{other}/restriction", "privacy-office", restriction) == 200
    )
    profile = {"date_of_birth": DOB}
    assert await call("PUT", f"/v1/subjects/{other}/profile", "privacy-office", profile) == 200
    lawful = {
        "authority": "Vientiane Police",
        "reference": "CASE-1",
        "instrument": f"court order {TEXT_NEEDLE}",
        "subjects": [SUBJECT, other],
        "partners": ["vientiane-police"],
    }
    assert await call("POST", "/v1/legal-requests", "reviewer-alice", lawful) == 201
    assert await call("GET", f"/v1/subjects/{other}/consents", "reviewer-alice") == 200
    withdrawn_subject = f"s-SUBJCANARY-w-{uuid.uuid4().hex[:6]}"
    response = await gateway.post(
        "/v1/consents",
        json={**consent, "subject": withdrawn_subject},
        headers={"Authorization": f"Bearer {tokens['customer-app']}"},
    )
    withdrawn = await response.json()
    assert await call("POST", f"/v1/consents/{withdrawn['id']}/withdraw", "customer-app") == 200

    for caller, body in ALLOWED:
        assert await call("POST", "/v1/disclosures", caller, body) == 201, body["partner"]
        assert await call("POST", "/v1/decisions", caller, body) == 200
    mekong = ALLOWED[6][1]
    once = {"Idempotency-Key": "order-canary"}
    assert await call("POST", "/v1/disclosures", "payments-service", mekong, **once) == 201
    # The repeat is answered from the idempotency table: nothing is sent again.
    assert await call("POST", "/v1/disclosures", "payments-service", mekong, **once) == 201

    health = ALLOWED[0][1]
    refusals = [
        ("sales-service", {**health, "subject": f"s-SUBJCANARY-none-{uuid.uuid4().hex[:6]}"}, 403),
        ("sales-service", {**ALLOWED[2][1], "subject": withdrawn_subject}, 403),
        ("marketing-service", mekong, 403),  # outside its allowlist
        ("sales-service", {**health, "data": {**DATA, "date_of_birth": f"{MARK}dob{TAIL}"}}, 400),
        ("sales-service", {**health, "data": {**DATA, "name": {"nested": f"{MARK}{TAIL}"}}}, 400),
        (
            "marketing-service",
            {**ALLOWED[8][1], "data": {**DATA, "ip_address": f"{MARK}{TAIL}"}},
            400,
        ),
    ]
    for caller, body, status in refusals:
        assert await call("POST", "/v1/disclosures", caller, body) == status, body
        assert await call("POST", "/v1/decisions", caller, body) in (200, status)

    # Partner failures: every attempt answered 500, then every attempt's connection reset.
    for inject in (lambda p: p.fail_next(3, 500), lambda p: p.reset_next(3)):
        inject(sandboxes.partner("bcel-payments"))
        assert await call("POST", "/v1/disclosures", "payments-service", ALLOWED[5][1]) == 502

    assert await call("GET", f"/v1/subjects/{SUBJECT}/consents", "customer-app") == 200
    # Outside the subject-id grammar ('!', '~'): refused, and the id not repeated.
    assert await call("GET", f"/v1/subjects/{MARK}{TAIL}/consents", "reviewer-alice") == 400
    metrics = await (await gateway.get("/metrics")).text()
    received = sum(len(sandboxes.received(p)) for p in sandboxes.partners)
    assert received == len(ALLOWED) + 1  # the replay sent nothing again
    await gateway.close()  # let the log service finish: final checkpoint, retired instance

    stream, records = app_log
    output = stream.getvalue()
    assert "/v1/disclosures" in output  # the handler did capture the flow
    assert found_in(output, (*DATA_NEEDLES, SUBJECT_NEEDLE, TEXT_NEEDLE)) == [], "app log output"
    for record in records:
        if record.name.startswith("gateway"):
            text = record.getMessage() + repr(record.args) + repr(record.__dict__.get("extra"))
            assert found_in(text, (*DATA_NEEDLES, SUBJECT_NEEDLE, TEXT_NEEDLE)) == [], record.name
    assert found_in(metrics, (*DATA_NEEDLES, SUBJECT_NEEDLE, TEXT_NEEDLE)) == [], "/metrics"
    for response_text in seen.responses:
        if not response_text.startswith("2"):
            assert found_in(response_text, (*DATA_NEEDLES, SUBJECT_NEEDLE)) == [], response_text
        assert found_in(response_text) == [], response_text

    tables = await dump_store(backend)
    assert {"log_entries", "consents", "subjects", "legal_requests"} <= set(tables)
    for name, text in tables.items():
        leaked = found_in(text, (*DATA_NEEDLES, SUBJECT_NEEDLE, TEXT_NEEDLE))
        assert leaked == [], f"{name}: {leaked}"
    # The rows are there (sealed), so the search above did look at something.
    assert "sealed:" in tables["consents"] and "sealed:" in tables["subjects"]


# -- the authentication matrix over HTTP ------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(config: Config, caller: str = "payments-service", **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": config.auth.issuer,
        "aud": config.auth.audience,
        "sub": caller,
        "client_id": caller,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    return {**base, **changes}


def signed(key: ECKey, body: dict[str, Any], kid: str | None = None) -> str:
    header = {"typ": "at+jwt", "alg": "ES256", "kid": kid or key.kid}
    return jws.serialize_compact(header, json.dumps(body).encode(), key, algorithms=["ES256"])


def unsigned(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}.{b64(signature)}"


def hs256_with_public_key(key: ECKey, body: dict[str, Any]) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the issuer's published key."""
    secret = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"typ": "at+jwt", "alg": "HS256", "kid": key.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    return (
        f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    )


def matrix(config: Config) -> dict[str, tuple[Callable[[ECKey], str | None], int, str]]:
    """case -> (Authorization header made with the issuer key, status, problem code)."""
    other = ECKey.generate_key("P-256", {"kid": "not-in-the-jwks"}, private=True)
    return {
        "no token": (lambda k: None, 401, "unauthenticated"),
        "expired": (
            lambda k: "Bearer " + signed(k, claims(config, exp=int(time.time()) - 120)),
            401, "unauthenticated",
        ),
        "wrong aud": (
            lambda k: "Bearer " + signed(k, claims(config, aud="billing")),
            401, "unauthenticated",
        ),
        "wrong iss": (
            lambda k: "Bearer " + signed(k, claims(config, iss="https://evil.example")),
            401, "unauthenticated",
        ),
        "alg none": (
            lambda k: "Bearer "
            + unsigned({"typ": "at+jwt", "alg": "none", "kid": k.kid}, claims(config)),
            401, "unauthenticated",
        ),
        "HS256 keyed with the public key": (
            lambda k: "Bearer " + hs256_with_public_key(k, claims(config)),
            401, "unauthenticated",
        ),
        "unknown kid": (
            lambda k: "Bearer " + signed(other, claims(config)),
            401, "unauthenticated",
        ),
        "caller outside its allowlist": (
            lambda k: "Bearer " + signed(k, claims(config, "marketing-service")),
            403, "forbidden",
        ),
        "caller without the discloser role": (
            lambda k: "Bearer " + signed(k, claims(config, "customer-app")),
            403, "forbidden",
        ),
        "valid (control)": (
            lambda k: "Bearer " + signed(k, claims(config)),
            201, "",
        ),
    }  # fmt: skip


async def test_the_authentication_matrix_holds_over_http(
    gateway: TestClient, sandboxes: SandboxCluster, config: Config
) -> None:
    issuer = ECKey.import_key(json.loads(KeyPaths(config.keys_dir).dev_issuer.read_text()))
    body = disclosure("mekong-collections", "open_case", "service_provision", "contract")
    for case, (make, status, problem) in matrix(config).items():
        header = make(issuer)
        response = await gateway.post(
            "/v1/disclosures",
            json=body,
            headers={} if header is None else {"Authorization": header},
        )
        payload = await response.read()
        assert response.status == status, (case, payload)
        if problem:
            assert response.content_type == "application/problem+json", case
            assert json.loads(payload)["type"].endswith(problem), (case, payload)
            if status == 401:
                assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), case
            assert found_in(payload.decode()) == [], case
        received = len(sandboxes.received("mekong-collections"))
        assert received == (1 if case == "valid (control)" else 0), case
