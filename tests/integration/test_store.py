"""The storage port against real databases: every test runs on SQLite and on PostgreSQL.

Fixtures live in tests/integration/conftest.py. What is checked is what the rest of the
gateway relies on: consents and subject facts round-trip, the four-eyes rule on lawful
requests, idempotency keys that exactly one request wins, a disclosure log whose
indexes stay gapless under concurrent appenders (and across instances), keyset search,
emergency justifications written once, idempotent migrations, and a failing database
surfacing as StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.errors import GatewayError
from gateway.policy.facts import Consent, LegalRequest, profile_of_birth
from gateway.store import Store, open_store, sqlite_path
from gateway.store.postgres import PostgresStore
from gateway.store.records import (
    IdempotencyClaim,
    JustificationRecord,
    LegalRequestRecord,
    LogQuery,
    LogRow,
    StoredResponse,
    StoreUnavailable,
)
from gateway.store.sqlite import MIGRATIONS, SqliteStore

if TYPE_CHECKING:  # the fixture's type; pytest loads conftest.py itself
    from conftest import Backend

T0 = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
LEAF = bytes(32)  # opaque to the store: gateway.log computes real leaf hashes
SCHEMA_VERSIONS = [m.version for m in MIGRATIONS]  # the same in both adapters


def consent(
    consent_id: str,
    subject: str = "subject-a",
    *,
    obtained_at: datetime = T0,
    withdrawn_at: datetime | None = None,
) -> Consent:
    return Consent(
        id=consent_id,
        subject=subject,
        purposes=frozenset({"service_provision", "safety_security"}),
        partners=frozenset({"lao-credit-bureau"}),
        partner_categories=frozenset({"credit_bureau"}),
        special_categories=frozenset({"health_status"}),
        policy_version="2024-09-30",
        obtained_at=obtained_at,
        expires_at=obtained_at + timedelta(days=365),
        withdrawn_at=withdrawn_at,
        method="app",
        evidence="screen v3, checkbox 2",
    )


REQUEST = LegalRequestRecord(
    id="LR-2026-0007",
    authority="Ministry of Public Security",
    reference="MPS/2026/114",
    instrument="court order",
    subjects=frozenset({"subject-a", "subject-b"}),
    partners=frozenset({"police-portal"}),
    received_at=T0,
    registered_by="clerk",
)


def legal_request(request_id: str = REQUEST.id, received_at: datetime = T0) -> LegalRequestRecord:
    return replace(REQUEST, id=request_id, received_at=received_at)


def row(
    disclosure_id: str,
    kind: str = "intent",
    *,
    subject_ref: str | None = "ref-a",
    partner: str | None = "lao-credit-bureau",
    time: datetime = T0,
) -> LogRow:
    # The store projects the search columns from the entry's bytes (schema 14): they hold
    # every value the columns copy.
    members = {"disclosure_id": disclosure_id, "kind": kind, "time": time.isoformat()}
    members |= {"subject_ref": subject_ref, "partner": partner}
    entry = json.dumps({k: v for k, v in members.items() if v is not None}).encode()
    return LogRow(entry, LEAF)


# -- consents, restriction, profile -----------------------------------------------------


async def test_consents_round_trip_and_list_by_subject(store: Store) -> None:
    later = consent("c-2", obtained_at=T0 + timedelta(hours=1))
    await store.add_consent(later)
    await store.add_consent(consent("c-1"))
    await store.add_consent(consent("c-3", subject="subject-b"))

    assert await store.get_consent("c-2") == later
    assert await store.get_consent("nope") is None
    assert [c.id for c in await store.consents_for_subject("subject-a")] == ["c-1", "c-2"]
    assert await store.consents_for_subject("subject-z") == []

    with pytest.raises(GatewayError) as caught:
        await store.add_consent(consent("c-1", subject="subject-b"))
    assert caught.value.code == "conflict"
    assert "subject" not in caught.value.detail


async def test_withdrawing_twice_keeps_the_first_time(store: Store) -> None:
    await store.add_consent(consent("c-1"))
    first = T0 + timedelta(days=1)

    withdrawn = await store.withdraw_consent("c-1", first)
    again = await store.withdraw_consent("c-1", first + timedelta(days=1))

    assert withdrawn is not None and withdrawn.withdrawn_at == first
    assert again is not None and again.withdrawn_at == first
    assert (await store.get_consent("c-1")) == withdrawn
    assert await store.withdraw_consent("unknown", first) is None


async def test_consents_to_lapse_are_the_live_ones_under_an_older_version(store: Store) -> None:
    """Schema 10: what a raised min_consent_version lapses (gateway.rights.lapse), once."""
    await store.add_consent(consent("c-live"))
    await store.add_consent(consent("c-withdrawn", withdrawn_at=T0 + timedelta(days=1)))
    await store.add_consent(replace(consent("c-expired"), expires_at=T0 + timedelta(days=1)))
    await store.add_consent(replace(consent("c-current"), policy_version="2025-03-01"))
    await store.add_consent(consent("c-later", obtained_at=T0 + timedelta(hours=1)))
    now = T0 + timedelta(days=2)

    found = await store.consents_to_lapse("2025-03-01", now)
    assert [c.id for c in found] == ["c-live", "c-later"]
    assert [c.id for c in await store.consents_to_lapse("2025-03-01", now, limit=1)] == ["c-live"]
    assert await store.consents_to_lapse("2024-09-30", now) == []  # nothing older than that

    await store.mark_consent_lapsed("c-live", now)
    await store.mark_consent_lapsed("c-live", now + timedelta(days=1))  # keeps the first
    assert [c.id for c in await store.consents_to_lapse("2025-03-01", now)] == ["c-later"]
    # Lapsed is not withdrawn: the consent reads as it was given.
    assert (await store.get_consent("c-live")) == consent("c-live")


async def test_subject_facts_gather_consents_restriction_birth_date_and_request(
    store: Store,
) -> None:
    await store.add_consent(consent("c-1"))
    await store.add_consent(consent("c-2", withdrawn_at=T0 + timedelta(days=2)))
    await store.add_consent(consent("c-other", subject="subject-b"))
    await store.set_restriction("subject-a", True, "objection by letter", T0)
    await store.set_profile("subject-a", profile_of_birth(date(2013, 5, 1)))
    await store.add_legal_request(legal_request())

    facts = await store.subject_facts("subject-a", "LR-2026-0007")

    assert [c.id for c in facts.consents] == ["c-1", "c-2"]
    assert facts.consents[1].withdrawn_at == T0 + timedelta(days=2)
    assert facts.restricted is True
    assert facts.date_of_birth == date(2013, 5, 1)
    assert facts.legal_requests == {
        "LR-2026-0007": LegalRequest(
            "LR-2026-0007",
            "pending",
            frozenset({"subject-a", "subject-b"}),
            frozenset({"police-portal"}),
        )
    }
    assert (await store.subject_facts("subject-a", None)).legal_requests == {}
    assert (await store.subject_facts("subject-a", "LR-unknown")).legal_requests == {}


async def test_subject_facts_of_an_unknown_subject_are_empty(store: Store) -> None:
    facts = await store.subject_facts("nobody", None)

    assert facts.consents == ()
    assert facts.restricted is False
    assert facts.date_of_birth is None
    assert facts.legal_requests == {}


async def test_restriction_and_date_of_birth_are_set_independently(store: Store) -> None:
    await store.set_profile("subject-a", profile_of_birth(date(1990, 4, 2)))
    await store.set_restriction("subject-a", True, "objection", T0)
    await store.set_restriction("subject-a", False, "objection withdrawn", T0)
    await store.set_profile("subject-a", profile_of_birth(date(1990, 4, 3)))
    await store.set_restriction("subject-b", True, "restriction", T0)

    a = await store.subject_facts("subject-a", None)
    b = await store.subject_facts("subject-b", None)

    assert (a.restricted, a.date_of_birth) == (False, date(1990, 4, 3))
    assert (b.restricted, b.date_of_birth) == (True, None)


# -- lawful requests -------------------------------------------------------------------


async def test_lawful_request_needs_two_distinct_reviewers_other_than_the_registrant(
    store: Store,
) -> None:
    await store.add_legal_request(legal_request())

    by_registrant = await store.approve_legal_request("LR-2026-0007", "clerk", T0)
    by_alice = await store.approve_legal_request("LR-2026-0007", "alice", T0 + timedelta(1))
    with pytest.raises(GatewayError) as caught:
        await store.approve_legal_request("LR-2026-0007", "alice", T0 + timedelta(2))
    assert caught.value.code == "conflict" and "alice already approved" in caught.value.detail
    assert by_registrant is not None and by_registrant.status == "pending"
    assert by_alice is not None and by_alice.status == "pending"
    kept = await store.get_legal_request("LR-2026-0007")
    assert kept is not None and kept.status == "pending"
    assert [a.reviewer_id for a in kept.approvals] == ["clerk", "alice"]
    assert kept.approvals[1].at == T0 + timedelta(1)  # the first time is kept
    assert [r.id for r in await store.list_legal_requests("approved")] == []

    by_bob = await store.approve_legal_request("LR-2026-0007", "bob", T0 + timedelta(3))

    assert by_bob is not None and by_bob.status == "approved"
    assert await store.get_legal_request("LR-2026-0007") == by_bob
    assert by_bob.to_fact() == LegalRequest(
        "LR-2026-0007", "approved", by_bob.subjects, by_bob.partners
    )
    assert (await store.subject_facts("subject-a", "LR-2026-0007")).legal_requests[
        "LR-2026-0007"
    ].status == "approved"


async def test_concurrent_approvals_by_two_reviewers_approve(store: Store) -> None:
    ids = [f"LR-{i}" for i in range(10)]
    for request_id in ids:
        await store.add_legal_request(legal_request(request_id))
    await asyncio.gather(*(store.ping() for _ in range(20)))  # open the pool's connections

    await asyncio.gather(
        *(store.approve_legal_request(i, reviewer, T0) for i in ids for reviewer in ["a", "b"])
    )

    assert [r.id for r in await store.list_legal_requests("approved")] == ids


async def test_lawful_requests_list_get_and_conflict(store: Store) -> None:
    await store.add_legal_request(legal_request("LR-2", received_at=T0 + timedelta(days=1)))
    await store.add_legal_request(legal_request("LR-1"))
    await store.approve_legal_request("LR-1", "alice", T0)
    await store.approve_legal_request("LR-1", "bob", T0)

    assert [r.id for r in await store.list_legal_requests()] == ["LR-1", "LR-2"]
    assert [r.id for r in await store.list_legal_requests("pending")] == ["LR-2"]
    assert [r.id for r in await store.list_legal_requests("approved")] == ["LR-1"]
    assert await store.get_legal_request("LR-2") == legal_request(
        "LR-2", received_at=T0 + timedelta(days=1)
    )
    assert await store.get_legal_request("LR-unknown") is None
    assert await store.approve_legal_request("LR-unknown", "alice", T0) is None
    with pytest.raises(GatewayError) as caught:
        await store.add_legal_request(legal_request("LR-1"))
    assert caught.value.code == "conflict"


# -- idempotency -----------------------------------------------------------------------


async def test_idempotency_claim_complete_replay_mismatch_release(store: Store) -> None:
    assert await store.claim_idempotency("payments", "k1", "h1") == IdempotencyClaim("new")
    assert await store.claim_idempotency("payments", "k1", "h1") == IdempotencyClaim("in_progress")
    assert await store.claim_idempotency("payments", "k1", "h2") == IdempotencyClaim("mismatch")
    # Keys belong to one caller: another caller's identical key is a different key.
    assert await store.claim_idempotency("support", "k1", "h2") == IdempotencyClaim("new")

    await store.complete_idempotency(
        "payments", "k1", 201, {"Disclosure-Id": "d-1"}, b"\x00\xffbody"
    )
    await store.release_idempotency("payments", "k1")  # completed keys are kept

    assert await store.claim_idempotency("payments", "k1", "h1") == IdempotencyClaim(
        "completed", StoredResponse(201, {"Disclosure-Id": "d-1"}, b"\x00\xffbody")
    )
    assert await store.claim_idempotency("payments", "k1", "h2") == IdempotencyClaim("mismatch")

    await store.release_idempotency("support", "k1")
    assert await store.claim_idempotency("support", "k1", "h3") == IdempotencyClaim("new")


async def test_concurrent_claims_of_one_key_have_exactly_one_winner(
    backend: Backend, store: Store
) -> None:
    other = await open_store(backend.url, backend.root)  # a second instance
    try:
        claims = await asyncio.gather(
            *(s.claim_idempotency("payments", "k", "h") for s in [store, other] * 10)
        )
    finally:
        await other.close()

    assert sorted(c.state for c in claims) == ["in_progress"] * 19 + ["new"]


# -- disclosure log --------------------------------------------------------------------


async def test_log_appends_are_gapless_under_concurrent_appenders(store: Store) -> None:
    batches = [[row(f"d-{i}-{j}") for j in range(1 + i % 3)] for i in range(20)]

    assigned = await asyncio.gather(*(store.append_log_entries(b) for b in batches))

    total = sum(len(b) for b in batches)
    assert sorted(i for indexes in assigned for i in indexes) == list(range(total))
    for batch, indexes in zip(batches, assigned, strict=True):
        assert indexes == list(range(indexes[0], indexes[0] + len(batch)))
    assert await store.log_size() == total
    stored = dict(await store.read_log(0, total))
    for batch, indexes in zip(batches, assigned, strict=True):
        assert [stored[i] for i in indexes] == [r.entry for r in batch]


async def test_log_stays_gapless_across_two_instances(backend: Backend, store: Store) -> None:
    other = await open_store(backend.url, backend.root)
    try:
        assigned = await asyncio.gather(
            *(
                s.append_log_entries([row(f"d-{i}"), row(f"d-{i}", "outcome")])
                for i, s in enumerate([store, other] * 10)
            )
        )
        assert await other.log_size() == 40
    finally:
        await other.close()

    assert sorted(i for indexes in assigned for i in indexes) == list(range(40))
    assert all(b == a + 1 for a, b in assigned)


async def test_an_empty_append_assigns_nothing(store: Store) -> None:
    assert await store.append_log_entries([]) == []
    assert await store.log_size() == 0


async def test_read_log_and_entries_of_one_disclosure(store: Store) -> None:
    await store.append_log_entries([row("d-1"), row("d-2")])
    await store.append_log_entries([row("d-1", "outcome"), row("d-3", "refused")])

    assert [i for i, _ in await store.read_log(1, 3)] == [1, 2]
    assert await store.read_log(4, 10) == []
    assert await store.log_entries_for_disclosure("d-1") == [
        (0, row("d-1").entry),
        (2, row("d-1", "outcome").entry),
    ]
    assert await store.log_entries_for_disclosure("d-unknown") == []


async def test_log_search_filters_and_keyset_pagination(store: Store) -> None:
    hour = timedelta(hours=1)
    await store.append_log_entries(
        [
            row("d-0", subject_ref="ref-a", partner="bureau", time=T0),
            row("d-0", "outcome", subject_ref="ref-a", partner="bureau", time=T0),
            row("d-1", subject_ref="ref-b", partner="bureau", time=T0 + hour),
            row("d-2", subject_ref="ref-a", partner="bank", time=T0 + 2 * hour),
            row("d-3", "refused", subject_ref=None, partner=None, time=T0 + 3 * hour),
            row("d-4", subject_ref="ref-a", partner="bureau", time=T0 + 4 * hour),
        ]
    )

    async def indexes(**filters: Any) -> list[int]:
        return [i for i, _ in await store.log_search(LogQuery(**filters))]

    assert await indexes() == [0, 1, 2, 3, 4, 5]
    assert await indexes(subject_ref="ref-a") == [0, 1, 3, 5]
    assert await indexes(partner="bureau") == [0, 1, 2, 5]
    assert await indexes(kind="intent") == [0, 2, 3, 5]
    assert await indexes(subject_ref="ref-a", partner="bureau", kind="intent") == [0, 5]
    assert await indexes(since=T0 + hour, until=T0 + 3 * hour) == [2, 3]
    assert await indexes(subject_ref="ref-a", limit=2) == [0, 1]
    assert await indexes(subject_ref="ref-a", after_index=1, limit=2) == [3, 5]
    assert await indexes(subject_ref="ref-a", after_index=5) == []
    refused = row("d-3", "refused", subject_ref=None, partner=None, time=T0 + 3 * hour)
    assert (await store.log_search(LogQuery(kind="refused")))[0][1] == refused.entry
    with pytest.raises(ValueError, match="limit"):
        await store.log_search(LogQuery(limit=0))
    # Several values match any of them; a single value given with a list matches what
    # both admit; a list of none matches nothing (and both stores agree on each).
    assert await indexes(subject_refs=["ref-b", "ref-a", "ref-b"], kind="intent") == [0, 2, 3, 5]
    assert await indexes(subject_refs=["ref-b"], partner="bureau", kinds=["intent"]) == [2]
    assert await indexes(kinds=["refused", "outcome"]) == [1, 4]
    assert await indexes(subject_ref="ref-a", subject_refs=["ref-a", "ref-b"], limit=3) == [0, 1, 3]
    assert await indexes(subject_ref="ref-a", subject_refs=["ref-b"]) == []
    assert await indexes(kind="intent", kinds=["refused"]) == []
    assert await indexes(subject_refs=[]) == []
    assert await indexes(kinds=[], partner="bureau") == []
    assert await indexes(subject_refs=["ref-a"], since=T0 + hour, after_index=3) == [5]
    assert await indexes(kinds=["intent", "refused"], until=T0 + 3 * hour, after_index=0) == [2, 3]
    # Newest first (the review lists): "after" is older than, so query.after() pages on.
    assert await indexes(newest_first=True) == [5, 4, 3, 2, 1, 0]
    assert await indexes(newest_first=True, subject_ref="ref-a", limit=2) == [5, 3]
    assert await indexes(newest_first=True, subject_ref="ref-a", after_index=3) == [1, 0]
    assert await indexes(newest_first=True, partner="bureau", after_index=2) == [1, 0]
    # Counts: every page of a search (its after_index and limit are not looked at).
    assert await store.log_count(LogQuery()) == 6
    assert await store.log_count(LogQuery(subject_ref="ref-a", after_index=3, limit=1)) == 4
    assert await store.log_count(LogQuery(kinds=["intent", "refused"], partner="bureau")) == 3
    assert await store.log_count(LogQuery(subject_refs=[])) == 0
    newest = LogQuery(newest_first=True, kind="intent", limit=2)
    assert [i for i, _ in await store.log_search(newest.after(3))] == [2, 0]


async def test_intents_without_outcome(store: Store) -> None:
    await store.append_log_entries([row("d-1"), row("d-2"), row("d-3", "refused")])
    await store.append_log_entries([row("d-1", "outcome"), row("d-4")])

    assert await store.intents_without_outcome() == [
        (1, row("d-2").entry),
        (4, row("d-4").entry),
    ]


async def test_checkpoints(store: Store) -> None:
    assert await store.latest_checkpoint() is None
    assert await store.checkpoints() == []

    await store.add_checkpoint(3, "origin\n3\nAAAA\n\n\u2014 key sig\n", T0)
    await store.add_checkpoint(5, "origin\n5\nBBBB\n\n\u2014 key sig\n", T0 + timedelta(1))

    latest = await store.latest_checkpoint()
    assert latest is not None and (latest.size, latest.at) == (5, T0 + timedelta(1))
    assert latest.note.startswith("origin\n5\n")
    assert [c.size for c in await store.checkpoints()] == [3, 5]


async def test_justifications_are_written_once_and_found_in_bulk(store: Store) -> None:
    record = JustificationRecord("d-1", "reviewer-1", "called the ward", T0)
    assert await store.get_justification("d-1") is None
    assert await store.add_justification(record) is True
    # A second justification of the disclosure writes nothing; the first one stays.
    assert await store.add_justification(replace(record, text="other", reviewer_id="r2")) is False
    assert await store.get_justification("d-1") == record
    await store.add_justification(replace(record, disclosure_id="d-777"))
    # More ids than SQLite binds in one IN list: asked in chunks, answered as one set.
    asked = [f"d-{n}" for n in range(1200)]
    assert await store.justified(asked) == {"d-1", "d-777"}
    assert await store.justified([]) == set()


# -- schema and failures ---------------------------------------------------------------


async def test_migrate_twice_is_a_no_op(store: Store) -> None:
    assert isinstance(store, SqliteStore | PostgresStore)
    await store.add_consent(consent("c-1"))

    await store.migrate()
    await store.migrate()

    assert await store.schema_versions() == SCHEMA_VERSIONS
    assert await store.get_consent("c-1") == consent("c-1")
    await store.ping()


async def test_two_instances_migrating_at_once_apply_each_version_once(
    backend: Backend,
) -> None:
    first, second = await asyncio.gather(
        open_store(backend.url, backend.root), open_store(backend.url, backend.root)
    )
    try:
        assert isinstance(first, SqliteStore | PostgresStore)
        assert await first.schema_versions() == SCHEMA_VERSIONS
        assert await second.log_size() == 0
    finally:
        await first.close()
        await second.close()


async def test_a_closed_store_is_unavailable(backend: Backend) -> None:
    opened = await open_store(backend.url, backend.root)
    await opened.close()
    await opened.close()  # idempotent

    with pytest.raises(StoreUnavailable) as caught:
        await opened.ping()
    assert caught.value.code == "log_unavailable" and caught.value.status == 503


def test_sqlite_urls_resolve_against_the_root(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///var/gateway.db", tmp_path) == tmp_path / "var" / "gateway.db"
    assert sqlite_path("sqlite:////srv/gateway.db", tmp_path) == Path("/srv/gateway.db")
    assert sqlite_path("sqlite:///:memory:", tmp_path) == ":memory:"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_an_unreachable_database_raises_store_unavailable(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.name == "postgresql":
        url = f"postgresql://gateway:s3cret@127.0.0.1:{_closed_port()}/test"
    else:
        (tmp_path / "a-file").write_text("not a directory")
        url = "sqlite:///a-file/store/gateway.db"

    with pytest.raises(StoreUnavailable) as caught:
        await open_store(url, tmp_path)

    assert caught.value.code == "log_unavailable"
    assert "s3cret" not in caught.value.detail and "a-file" not in caught.value.detail
    assert "storage.url" in caught.value.detail


async def test_a_database_that_goes_away_raises_store_unavailable(
    backend: Backend, store: Store
) -> None:
    if backend.name == "postgresql":
        assert backend.admin is not None
        await backend.admin.execute(f'DROP SCHEMA "{backend.schema}" CASCADE')
        failing: Store = store
        blocker = None
    else:
        # Another program holds the write lock longer than our busy timeout.
        failing = await SqliteStore.open(backend.root / "store" / "gateway.db", busy_timeout=0.05)
        blocker = sqlite3.connect(backend.root / "store" / "gateway.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await failing.append_log_entries([row("d-1")])
        assert caught.value.status == 503
        assert "ref-a" not in caught.value.detail
    finally:
        if blocker is not None:
            blocker.rollback()
            blocker.close()
            await failing.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_read_cancelled_while_its_transaction_opens_leaves_none_open(
    store: Store,
) -> None:
    # A background task cancelled at shutdown (the review site's audit) was waiting for
    # aiosqlite's thread to run its BEGIN: the thread ran it after the cancellation, and
    # every later statement on the shared connection failed ("cannot start a transaction
    # within a transaction"), so the instance could not retire.
    reading = asyncio.create_task(store.suspension_history(None, 10))
    await asyncio.sleep(0)  # the read now waits for its BEGIN
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading

    await store.register_instance("i-after-cancel", "host", 1)
    await store.retire_instance("i-after-cancel")
    assert await store.suspension_history(None, 10) == []
