"""Attacks on the trust in the disclosure log (issue "Close the trust holes…", items 2, 4, 10).

Item 2 — the search columns: whoever can write the database edits the columns a row
keeps beside its entry (subject reference, partner, kind, time, purpose, legal basis,
outcome, disclosure id) and leaves the entry bytes and every hash alone. `gateway log
verify` must name the entry and the column (exit 1), the review page's periodic full
verification must turn red, and searches and the subject's report must refuse rather
than hide a disclosure or show another subject's. Both stores.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.cli import run_cli_in_thread
from support.log import logged as logged_entries

import gateway.web.review.log_backend
from gateway.config.model import Caller, load_config
from gateway.crypto.dev_tokens import issue_dev_token
from gateway.crypto.seal import GatewayKeys, PartnerKey, load_partner_key_file
from gateway.crypto.subject_keys import LogKeys
from gateway.disclosure.flow import Gateway, disclose
from gateway.errors import (
    GatewayError,
    InternalServerError,
    PartnerKeyExpiredError,
    PartnerUnavailableError,
)
from gateway.log.entries import outcome_entry, row_of
from gateway.log.search import Query, search
from gateway.log.service import LogService, LogSigner
from gateway.outbound.delivery import PartnerReply
from gateway.partners.model import Partner
from gateway.policy.facts import SubjectFacts
from gateway.policy.request import DisclosureRequest
from gateway.rights.subjects import subject_report
from gateway.store import Store, open_store
from gateway.web.app import create_app
from gateway.web.keys import GATEWAY, LOG, STORE
from gateway.web.review.log_backend import LogReviewBackend

if TYPE_CHECKING:
    from conftest import Backend

ALICE = "CANARY-subject-alice-7781"
BOB = "CANARY-subject-bob-3390"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@dataclass
class Logged:
    root: Path
    backend: Backend
    store: Store
    service: LogService
    keys: LogKeys

    async def cli(self, *args: str) -> tuple[int, str]:
        return await run_cli_in_thread(self.root, *args)

    async def sql(self, sql: str, *params: object) -> None:
        """Run SQL behind the gateway's back (`?` placeholders), as an attacker would,
        once every entry is projected (the search columns are in `log_index`)."""
        await self.store.project_log()
        if self.backend.admin is None:
            await self.store._conn.execute(sql, params)  # type: ignore[attr-defined]
            return
        for n in range(1, len(params) + 1):
            sql = sql.replace("?", f"${n}", 1)
        await self.backend.admin.execute(f'SET search_path TO "{self.backend.schema}"')
        await self.backend.admin.execute(sql, *params)

    def ref(self, subject: str, at: datetime) -> str:
        return self.keys.subject_ref(subject, at)


def intent(i: int, subject_ref: str, at: datetime) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "intent",
        "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "disclosure_id": f"d-{i}",
        "caller": "svc",
        "partner": "lao-credit-bureau",
        "partner_category": "credit_bureau",
        "operation": "credit_check",
        "purpose": "credit_assessment",
        "legal_basis": "contract",
        "subject_ref": subject_ref,
        "fields": {"full_name": "keep"},
        "withheld": [],
    }


@pytest.fixture
async def logged(project: Path, backend: Backend) -> AsyncIterator[Logged]:
    """Ten disclosures (even ones Alice's, odd ones Bob's), each intent + sent outcome, a
    refusal of Alice's at the end, and a checkpoint over all of it. Entry 2k is the
    intent of d-k, 2k+1 its outcome, 20 the refusal."""
    root = backend.root
    shutil.copytree(project / "keys", root / "keys")
    (root / "partners").symlink_to(project / "partners")
    text = (project / "config.toml").read_text()
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{backend.url}"')
    (root / "config.toml").write_text(text)
    config = load_config(root / "config.toml")
    store = await open_store(backend.url, root)
    keys = LogKeys.load(config.keys_dir)
    service = LogService(store, LogSigner.load(config.keys_dir, config.log.origin))
    rows = []
    for i in range(10):
        at = T0 + timedelta(seconds=i)
        rows.append(row_of(intent(i, keys.subject_ref(ALICE if i % 2 == 0 else BOB, at), at)))
        rows.append(
            row_of(
                outcome_entry(
                    disclosure_id=f"d-{i}",
                    outcome="sent",
                    at=at + timedelta(milliseconds=500),
                    partner="lao-credit-bureau",
                    partner_status=200,
                    attempts=1,
                )
            )
        )
    refused = intent(10, keys.subject_ref(ALICE, T0), T0 + timedelta(seconds=10))
    refused.update(kind="refused", problem="consent_required", reasons=["no consent"])
    rows.append(row_of(refused))
    await service.append_rows(rows)
    await service.checkpoint()
    try:
        yield Logged(root, backend, store, service, keys)
    finally:
        await service.stop(final_checkpoint=False)
        await store.close()


def _time_value(logged: Logged, at: datetime) -> object:
    # The stores keep the time as they keep it: text in SQLite, timestamptz in PostgreSQL.
    return at if logged.backend.admin is not None else at.isoformat(timespec="microseconds")


# (column, the entry edited, the forged value: a function of the fixture)
EDITS: list[tuple[str, str, int, Any]] = [
    ("subject_ref", "subject_ref", 0, lambda lg: lg.ref(BOB, T0)),  # Alice's → Bob's
    ("subject_ref", "subject_ref", 2, lambda lg: None),  # hidden from every subject
    ("partner", "partner", 4, lambda lg: "vientiane-police"),
    ("kind", "kind", 6, lambda lg: "outcome"),  # an intent that no longer looks like one
    ("time", "logged_at", 8, lambda lg: _time_value(lg, T0 - timedelta(days=400))),
    ("purpose", "purpose", 10, lambda lg: "marketing"),
    ("legal_basis", "legal_basis", 12, lambda lg: "consent"),
    ("outcome", "outcome", 3, lambda lg: "failed"),  # sent → failed
    ("outcome", "outcome", 20, lambda lg: None),  # a refusal that no longer looks refused
    ("disclosure_id", "disclosure_id", 5, lambda lg: "d-9"),  # outcome moved to another
]


@pytest.mark.parametrize(
    ("column", "sql_column", "index", "forged"),
    EDITS,
    ids=[f"{c}-{i}" for c, _, i, _ in EDITS],
)
async def test_verify_names_the_entry_and_column_of_an_edited_search_column(
    logged: Logged, column: str, sql_column: str, index: int, forged: Any
) -> None:
    code, out = await logged.cli("log", "verify")
    assert code == 0, out

    await logged.sql(
        f"UPDATE log_index SET {sql_column} = ? WHERE idx = ?",
        forged(logged),
        index,
    )
    code, out = await logged.cli("log", "verify")
    assert code == 1, out
    assert f"TAMPERED: entry {index}: its search column {column} does not match" in out
    assert f"first bad index: {index}\n" in out
    assert ALICE not in out and BOB not in out

    code, out = await logged.cli("log", "verify", "--json")
    assert code == 1 and f'"start": {index}' in out


async def test_a_report_never_shows_another_subjects_disclosure(
    logged: Logged, partners: dict[str, Partner]
) -> None:
    """Alice's disclosure d-0 moved to Bob's reference in the index: Bob's report refuses
    (503) instead of listing it; Alice's, which can no longer find it, is what verify
    catches (above)."""
    before = await subject_report(logged.store, logged.keys, partners, BOB)
    assert [r["disclosure_id"] for r in before] == ["d-1", "d-3", "d-5", "d-7", "d-9"]

    await logged.sql("UPDATE log_index SET subject_ref = ? WHERE idx = 0", logged.ref(BOB, T0))
    with pytest.raises(GatewayError) as refused:
        await subject_report(logged.store, logged.keys, partners, BOB)
    assert refused.value.code == "log_unavailable" and refused.value.status == 503
    assert "log entry 0" in refused.value.detail and "subject_ref" in refused.value.detail
    assert BOB not in refused.value.detail and ALICE not in refused.value.detail

    code, out = await logged.cli("log", "search", "--subject", BOB)
    assert code != 0 and "log entry 0" in out and "d-0" not in out


@pytest.mark.parametrize(
    ("sql_column", "index", "value", "query"),
    [
        ("outcome", 3, "failed", Query(outcome="failed")),  # a sent disclosure shown failed
        ("partner", 2, "vientiane-police", Query(partner="vientiane-police")),
        ("purpose", 4, "marketing", Query(purpose="marketing")),
        ("legal_basis", 6, "consent", Query(legal_basis="consent")),
        ("kind", 1, "refused", Query(outcome="refused")),  # an outcome passed off as refused
    ],
    ids=["outcome", "partner", "purpose", "legal_basis", "kind"],
)
async def test_a_search_refuses_a_row_whose_columns_lie(
    logged: Logged, sql_column: str, index: int, value: str, query: Query
) -> None:
    await logged.sql(
        f"UPDATE log_index SET {sql_column} = ? WHERE idx = ?",
        value,
        index,
    )
    with pytest.raises(GatewayError) as refused:
        _ = [found async for found in search(logged.store, query)]
    assert refused.value.code == "log_unavailable"
    assert f"log entry {index}" in refused.value.detail


async def test_an_intent_cut_from_its_outcomes_is_refused_not_shown_pending(
    logged: Logged,
) -> None:
    """The intent's disclosure id column changed: its outcome lookup would come back
    without it, and the report would show a sent disclosure as pending."""
    await logged.sql("UPDATE log_index SET disclosure_id = 'd-x' WHERE idx = 0")
    refs = [logged.ref(ALICE, T0)]
    with pytest.raises(GatewayError) as refused:
        _ = [found async for found in search(logged.store, Query(subject_refs=refs))]
    assert refused.value.code == "log_unavailable" and "disclosure_id" in refused.value.detail


async def test_the_review_pages_periodic_verification_turns_red(logged: Logged) -> None:
    review = LogReviewBackend(logged.store, logged.service, logged.keys, lambda: T0)
    await review.audit()
    assert (await review.integrity()).ok is True

    await logged.sql("UPDATE log_index SET subject_ref = NULL WHERE idx = 4")
    await review.audit()
    status = await review.integrity()
    assert status.ok is False
    assert "entry 4" in status.detail and "subject_ref" in status.detail


async def test_a_long_logs_periodic_verification_runs_in_a_worker_and_turns_red(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the serving process, the audit of 330,000 entries put the soak's p99 at 2 s, and
    # the rows' leaves sent back from a pool of workers grew its RSS by 160 MiB.
    monkeypatch.setattr(gateway.web.review.log_backend, "PARALLEL_FROM", 10)

    async def not_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a long log audited in the serving process")

    monkeypatch.setattr(gateway.web.review.log_backend, "audit_store", not_here)
    opener = functools.partial(open_store, logged.backend.url, logged.root)
    review = LogReviewBackend(logged.store, logged.service, logged.keys, lambda: T0, opener=opener)
    await review.audit()
    status = await review.integrity()
    assert status.ok is True, status.detail
    assert "recomputed 21 entries" in status.detail

    await logged.sql("UPDATE log_index SET partner = 'elsewhere' WHERE idx = 6")
    await review.audit()
    status = await review.integrity()
    assert status.ok is False
    assert "entry 6" in status.detail and "partner" in status.detail


async def test_an_untouched_log_still_answers(logged: Logged, partners: dict[str, Partner]) -> None:
    report = await subject_report(logged.store, logged.keys, partners, ALICE)
    assert [r["disclosure_id"] for r in report] == ["d-0", "d-2", "d-4", "d-6", "d-8"]
    assert {r["outcome"] for r in report} == {"sent"}
    refused = [f async for f in search(logged.store, Query(outcome="refused"))]
    assert [f.index for f in refused] == [20]
    sent = [f async for f in search(logged.store, Query(outcome="sent"))]
    assert len(sent) == 10


# -- item 4: caller-chosen field names never reach the log -----------------------------
#
# A field name is the caller's text: an e-mail address was logged as one, and a 500 KB
# name was accepted. Only vocabulary names enter an entry; other well-formed names are
# counted (`withheld_unknown`); malformed ones are a 400 whose refused entry counts them.

EMAIL_NAME = "jane.canary@example.com"
MALFORMED: list[tuple[str, dict[str, Any], int]] = [
    ("an e-mail address", {EMAIL_NAME: "x", "uuid": "u"}, 1),
    ("upper case", {"Email": "x"}, 1),
    ("a space", {"full name": "x"}, 1),
    ("a hyphen", {"card-number": "x"}, 1),
    ("non-ASCII", {"tên_khách": "x"}, 1),
    ("a leading digit", {"1st_name": "x"}, 1),
    ("empty", {"": "x"}, 1),
    ("65 characters", {"a" * 65: "x"}, 1),
    ("100 KB", {"b" * 100_000: "x"}, 1),
    ("a payment_records key", {"payment_records": {"Card-Number": "4111", "amount": 5}}, 1),
    (
        "keys in a list of payment_records",
        {"payment_records": [{"CANARY@x.la": 1}, {"ok_name": 2, "Bad Key": 3}]},
        2,
    ),
    ("three at once", {"A": 1, "B": 2, "c.d": 3, "uuid": "u"}, 3),
]


def _app_config(config: Any, backend: Backend) -> Any:
    url = backend.url if backend.name == "postgresql" else f"sqlite:///{backend.root}/gw.db"
    return replace(config, storage_url=url)


@pytest.fixture
async def app_client(config: Any, backend: Backend) -> AsyncIterator[Any]:
    """The real gateway app (no partner runs: every request here is refused before one)."""
    client = TestClient(TestServer(create_app(_app_config(config, backend), env=dict(os.environ))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def _bearer(config: Any, caller: str = "payments-service") -> dict[str, str]:
    token = issue_dev_token(config.keys_dir, config.auth, caller, ttl_s=600)
    return {"Authorization": f"Bearer {token}"}


def _charge(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "partner": "bcel-payments",
        "operation": "charge",
        "purpose": "service_provision",
        "legal_basis": "contract",
        "subject": "CANARY-subject-carol-5512",
        "data": data,
    }


async def _all_log_bytes(client: Any) -> bytes:
    await client.server.app[LOG].settle()
    store = client.server.app[STORE]
    return b"\n".join(raw for _, raw in await store.read_log(0, await store.log_size()))


@pytest.mark.parametrize(
    ("data", "count"), [(d, n) for _, d, n in MALFORMED], ids=[name for name, _, _ in MALFORMED]
)
async def test_malformed_field_names_are_a_400_logged_as_a_count(
    app_client: Any, config: Any, data: dict[str, Any], count: int
) -> None:
    r = await app_client.post("/v1/disclosures", json=_charge(data), headers=_bearer(config))
    text = await r.text()
    assert r.status == 400, text
    doc = await r.json(content_type=None)
    assert doc["type"].endswith("/invalid_request")
    assert f"{count} field name(s)" in doc["detail"] and "lower_snake_case" in doc["detail"]
    for name in _malformed(data):
        if name:
            assert name not in text and name not in json.dumps(dict(r.headers))
    entries = await logged_entries(app_client.server.app, doc["disclosure_id"])
    assert [(e["kind"], e["problem"], e["rejected_field_names"]) for e in entries] == [
        ("refused", "invalid_request", count)
    ]
    raw = await _all_log_bytes(app_client)
    for name in _malformed(data):
        if name:
            assert json.dumps(name)[1:-1].encode() not in raw

    dry = await app_client.post("/v1/decisions", json=_charge(data), headers=_bearer(config))
    assert dry.status == 400 and "lower_snake_case" in (await dry.json())["detail"]


def _malformed(data: dict[str, Any]) -> list[str]:
    names = list(data)
    records = data.get("payment_records")
    for record in records if isinstance(records, list) else [records]:
        if isinstance(record, dict):
            names += list(record)
    return [n for n in names if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", n)]


async def test_a_500_kb_field_name_is_refused_without_echo(app_client: Any, config: Any) -> None:
    name = "x" * 500_000
    r = await app_client.post("/v1/disclosures", json=_charge({name: 1}), headers=_bearer(config))
    assert r.status in (400, 413)
    assert name[:1000] not in await r.text()
    assert name[:1000].encode() not in await _all_log_bytes(app_client)


async def test_a_dry_run_echoes_unknown_names_to_their_sender_only(
    app_client: Any, config: Any
) -> None:
    """The caller sent the names: the decision may name them back (it is not the log)."""
    r = await app_client.post(
        "/v1/decisions",
        json=_charge({"favourite_colour": "red", "uuid": "u"}),
        headers=_bearer(config),
    )
    assert r.status == 200
    assert "favourite_colour" in (await r.json())["withheld"]
    assert b"favourite_colour" not in await _all_log_bytes(app_client)


# -- items 4 and 10 through the pipeline, with hand-written fakes ----------------------


class FakeLog:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def append(self, entry: Mapping[str, Any]) -> int:
        self.entries.append(dict(entry))
        return len(self.entries) - 1

    def append_later(self, entry: Mapping[str, Any]) -> None:
        self.entries.append(dict(entry))


class FakeFacts:
    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        return SubjectFacts()


class FakeKeys:
    """The partner's key, or the failure fetching it (a JWKS down, a key found expired)."""

    def __init__(self, key: PartnerKey, error: Exception | None = None) -> None:
        self.key, self.error = key, error

    async def key_for(self, partner: Partner, kid: str | None = None) -> PartnerKey:
        if self.error is not None:
            raise self.error
        return self.key


class FakeOutbound:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def deliver(self, partner: Partner, operation: Any, **how: Any) -> PartnerReply:
        self.sent.append(how["body"])
        return PartnerReply(201, "application/json", b"{}", 1)


def _gateway(
    config: Any,
    partners: dict[str, Partner],
    log: FakeLog,
    outbound: FakeOutbound,
    key_error: Exception | None = None,
) -> Gateway:
    key = load_partner_key_file(partners["bcel-payments"].encryption.public_key)  # type: ignore[arg-type]
    return Gateway(
        config=config,
        partners=partners,
        facts=FakeFacts(),
        log=log,
        keys=GatewayKeys.load(config.keys_dir),
        partner_keys=FakeKeys(key, key_error),
        outbound=outbound,
        log_keys=LogKeys(b"k" * 32),
        pseudonym_key=lambda partner_id: b"p" * 32,
        clock=lambda: T0,
    )


CALLER = Caller("svc", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}))


def _request(operation: str = "charge", **data: Any) -> DisclosureRequest:
    return DisclosureRequest(
        "bcel-payments", operation, "service_provision", "contract", "s-1", data
    )


async def test_only_vocabulary_names_enter_an_intent(config: Any, partners: Any) -> None:
    log, outbound = FakeLog(), FakeOutbound()
    request = _request(
        uuid="u",
        amount=5,
        password="CANARY-P",
        favourite_colour="red",
        jane_canary_example="x",
        payment_records={"amount": 1, "canary_pin": 1234},
    )
    result = await disclose(_gateway(config, partners, log, outbound), CALLER, request)
    assert result.fields == ("uuid", "amount")  # Disclosure-Fields: vocabulary only
    assert outbound.sent
    intent = log.entries[0]
    assert intent["kind"] == "intent"
    assert intent["withheld"] == ["password", "payment_records"]
    assert intent["withheld_unknown"] == 2  # favourite_colour, jane_canary_example
    assert "colour" not in json.dumps(log.entries) and "canary" not in json.dumps(log.entries)


KEY_FAILURES = [
    PartnerUnavailableError("the partner's JWKS could not be fetched"),
    PartnerKeyExpiredError("the partner's key expired"),
    RuntimeError("a bug while fetching the key"),
]


@pytest.mark.parametrize("error", KEY_FAILURES, ids=["jwks-down", "key-expired", "bug"])
async def test_a_refusal_while_sealing_is_logged_once(
    config: Any, partners: Any, error: Exception
) -> None:
    log, outbound = FakeLog(), FakeOutbound()
    gw = _gateway(config, partners, log, outbound, key_error=error)
    with pytest.raises(type(error)) as raised:
        await disclose(gw, CALLER, _request(uuid="u", amount=5))
    code = error.code if isinstance(error, GatewayError) else "internal_error"
    assert [(e["kind"], e["problem"]) for e in log.entries] == [("refused", code)]
    assert log.entries[0]["reasons"] == [
        f"refused at step 'partner_key', before anything was sent: {code}"
    ]
    assert outbound.sent == []
    if isinstance(raised.value, GatewayError):
        assert raised.value.disclosure_id == log.entries[0]["disclosure_id"]


async def test_every_step_before_the_intent_leaves_one_refused_entry(
    config: Any, partners: Any
) -> None:
    log, outbound = FakeLog(), FakeOutbound()
    gw = _gateway(config, partners, log, outbound)
    cases = [
        (_request(uuid="u", date_of_birth="not a date"), "decide"),  # raised while deciding
        (_request("refund", transaction_id="..", amount=1), "partner_url"),  # a bad placeholder
    ]
    for request, step in cases:
        log.entries.clear()
        with pytest.raises(GatewayError) as raised:
            await disclose(gw, CALLER, request)
        assert raised.value.code == "invalid_request" and raised.value.status == 400
        assert [(e["kind"], e["problem"]) for e in log.entries] == [("refused", "invalid_request")]
        assert step in log.entries[0]["reasons"][0]
        assert raised.value.disclosure_id == log.entries[0]["disclosure_id"]
    assert outbound.sent == []


async def test_a_policy_refusal_is_still_logged_once_with_its_reasons(
    config: Any, partners: Any
) -> None:
    log, outbound = FakeLog(), FakeOutbound()
    request = DisclosureRequest("bcel-payments", "charge", "marketing", "consent", "s-1", {})
    with pytest.raises(GatewayError) as raised:
        await disclose(_gateway(config, partners, log, outbound), CALLER, request)
    assert raised.value.code == "purpose_not_allowed"
    assert [(e["kind"], e["problem"]) for e in log.entries] == [("refused", "purpose_not_allowed")]
    assert "marketing" in log.entries[0]["reasons"][0]  # vocabulary, kept


@pytest.mark.parametrize(
    ("partner", "operation"),
    [(EMAIL_NAME, "charge"), ("bcel-payments", EMAIL_NAME)],
    ids=["unknown-partner", "unknown-operation"],
)
async def test_a_made_up_partner_or_operation_id_is_not_logged(
    config: Any, partners: Any, partner: str, operation: str
) -> None:
    log, outbound = FakeLog(), FakeOutbound()
    request = DisclosureRequest(partner, operation, "service_provision", "contract", "s-1", {})
    with pytest.raises(GatewayError):
        await disclose(_gateway(config, partners, log, outbound), CALLER, request)
    assert [e["kind"] for e in log.entries] == ["refused"]
    assert EMAIL_NAME not in json.dumps(log.entries)


async def test_the_subject_report_over_http_refuses_a_lying_index_with_a_503(
    app_client: Any, config: Any, backend: Backend
) -> None:
    """Bob's report over HTTP after Alice's disclosure was moved to Bob's reference in the
    index: a problem+json 503 naming the entry, no 500, no subject in the answer."""
    app = app_client.server.app
    keys = app[GATEWAY].log_keys
    at = datetime.now(UTC).replace(microsecond=0)
    await app[LOG].append_rows([row_of(intent(0, keys.subject_ref(ALICE, at), at))])
    headers = _bearer(config, "privacy-office")
    r = await app_client.get(f"/v1/subjects/{BOB}/disclosures", headers=headers)
    assert r.status == 200 and "d-0" not in await r.text()

    forged = keys.subject_ref(BOB, at)
    if backend.admin is None:
        # Behind the at-rest wrapper, on the adapter's own connection.
        await app[STORE].inner._conn.execute(  # type: ignore[attr-defined]
            "UPDATE log_index SET subject_ref = ? WHERE idx = 0", (forged,)
        )
    else:
        await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
        await backend.admin.execute("UPDATE log_index SET subject_ref = $1 WHERE idx = 0", forged)
    r = await app_client.get(f"/v1/subjects/{BOB}/disclosures", headers=headers)
    text = await r.text()
    assert r.status == 503, text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert "log entry 0" in text and "subject_ref" in text
    assert BOB not in text and ALICE not in text and "d-0" not in text


class FailingSeal(GatewayKeys):
    def seal(self, claims: Mapping[str, Any], **how: Any) -> str:
        raise InternalServerError("the seal failed")


async def test_a_failure_after_the_intent_is_its_outcome_not_a_second_refusal(
    config: Any, partners: Any
) -> None:
    log, outbound = FakeLog(), FakeOutbound()
    gw = replace(_gateway(config, partners, log, outbound), keys=FailingSeal.load(config.keys_dir))
    with pytest.raises(GatewayError) as raised:
        await disclose(gw, CALLER, _request(uuid="u", amount=5))
    assert [(e["kind"], e.get("outcome")) for e in log.entries] == [
        ("intent", None),
        ("outcome", "failed"),
    ]
    # The id marks the failure as logged: the web layer logs no refusal of its own.
    assert raised.value.disclosure_id == log.entries[0]["disclosure_id"]


BAD_BODIES: list[tuple[str, Any]] = [
    ("an unknown key naming a person", {**_charge({"uuid": "u"}), EMAIL_NAME: 1}),
    ("a purpose outside the vocabulary", {**_charge({"uuid": "u"}), "purpose": EMAIL_NAME}),
    ("no data", {k: v for k, v in _charge({}).items() if k != "data"}),
    ("not an object", [EMAIL_NAME]),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[n for n, _ in BAD_BODIES])
async def test_a_body_refused_before_the_pipeline_is_logged_without_its_content(
    app_client: Any, config: Any, body: Any
) -> None:
    r = await app_client.post("/v1/disclosures", json=body, headers=_bearer(config))
    text = await r.text()
    assert r.status == 400, text
    # (The parser names a short bad key or choice back to its sender; the log never.)
    doc = await r.json(content_type=None)
    entries = await logged_entries(app_client.server.app, doc["disclosure_id"])
    assert [(e["kind"], e["problem"], e["caller"]) for e in entries] == [
        ("refused", "invalid_request", "payments-service")
    ]
    assert EMAIL_NAME.encode() not in await _all_log_bytes(app_client)


async def test_an_idempotency_conflict_is_logged_once(app_client: Any, config: Any) -> None:
    headers = {**_bearer(config), "Idempotency-Key": "k-1"}
    first = await app_client.post("/v1/disclosures", json=_charge({"A": 1}), headers=headers)
    assert first.status == 400
    again = await app_client.post("/v1/disclosures", json=_charge({"B": 1}), headers=headers)
    assert again.status == 409
    doc = await again.json(content_type=None)
    entries = await logged_entries(app_client.server.app, doc["disclosure_id"])
    assert [(e["kind"], e["problem"]) for e in entries] == [("refused", "conflict")]


async def test_edited_times_cannot_shrink_the_months_a_report_searches(
    logged: Logged, partners: dict[str, Partner]
) -> None:
    """Every time column moved 400 days back: the report still searches the months of the
    first and last entries' own times, and finds Alice's disclosures; verify names it."""
    await logged.sql(
        "UPDATE log_index SET logged_at = ?", _time_value(logged, T0 - timedelta(days=400))
    )
    report = await subject_report(logged.store, logged.keys, partners, ALICE)
    assert [r["disclosure_id"] for r in report] == ["d-0", "d-2", "d-4", "d-6", "d-8"]
    code, out = await logged.cli("log", "verify")
    assert code == 1 and "first bad index: 0\n" in out and "column time" in out


async def test_a_body_refused_under_an_idempotency_key_is_logged_once_and_replayed(
    app_client: Any, config: Any
) -> None:
    """The stored refusal of a repeat is the first one, with the id of its one entry."""
    headers = {**_bearer(config), "Idempotency-Key": "k-unparsed"}
    body = {k: v for k, v in _charge({}).items() if k != "data"}
    first = await app_client.post("/v1/disclosures", json=body, headers=headers)
    assert first.status == 400
    doc = await first.json(content_type=None)
    entries = await logged_entries(app_client.server.app, doc["disclosure_id"])
    assert [(e["kind"], e["problem"]) for e in entries] == [("refused", "invalid_request")]
    again = await app_client.post("/v1/disclosures", json=body, headers=headers)
    assert again.status == 400 and again.headers["Idempotency-Replayed"] == "true"
    assert again.headers["Disclosure-Id"] == doc["disclosure_id"]
    assert await again.json(content_type=None) == doc
