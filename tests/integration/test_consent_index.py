"""An intent's consent id in the log's projection (schema 16), on SQLite and PostgreSQL: a
store of schema 15 gets it from its entries' bytes in the upgrade (and the entries above
the mark from the projector), a withdrawal's recipients are found through it as before,
and `gateway log verify` names a consent_id edited in the projection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.old_schema import store_at_schema

from gateway.canonical import canonical_json, timestamp
from gateway.log import merkle
from gateway.log.audit import audit_store
from gateway.log.columns import SearchIndexDamaged
from gateway.log.service import LogSigner
from gateway.rights.withdrawal import received_under
from gateway.store import Store, open_store
from gateway.store.projection import columns_of_bytes
from gateway.store.records import LogRow
from gateway.store.statements import numbered

if TYPE_CHECKING:
    from conftest import Backend

ORIGIN = "gateway.test/disclosures"
SIGNER = LogSigner(ORIGIN, Ed25519PrivateKey.generate())
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SINCE = T0 - timedelta(days=1)


def intent(n: int, partner: str, consent_id: object, basis: str = "consent", **more: Any):
    return {
        "v": 1,
        "kind": "intent",
        "time": timestamp(T0 + timedelta(minutes=n)),
        "disclosure_id": f"d-{n}",
        "partner": partner,
        "purpose": "service_provision",
        "legal_basis": basis,
        "consent_id": consent_id,
        "subject_ref": f"ref-{n}",
        **more,
    }


def outcome(n: int, partner: str, value: str, **more: Any):
    return {
        "v": 1,
        "kind": "outcome",
        "time": timestamp(T0 + timedelta(minutes=n, seconds=1)),
        "disclosure_id": f"d-{n}",
        "partner": partner,
        "outcome": value,
        **more,
    }


ENTRIES: Final[list[dict[str, Any]]] = [
    intent(1, "sent-to", "c-1"),
    outcome(1, "sent-to", "sent"),
    intent(2, "refused-by", "c-1"),
    outcome(2, "refused-by", "failed", partner_status=422),
    intent(3, "timed-out", "c-1"),
    outcome(3, "timed-out", "failed", maybe_received=True),
    intent(4, "other-consent", "c-2"),
    outcome(4, "other-consent", "sent"),
    intent(5, "on-contract", None, basis="contract"),
    # A value the projection keeps as U+FFFD elsewhere in the entry (jsonb refuses it),
    # and in the consent id itself.
    intent(6, "odd-purpose", "c-1", purpose="a\x00b"),
    intent(7, "odd-consent", "c-\x00x"),
    intent(8, "numeric-consent", 7),  # not a string: no consent_id column
    {  # an act names a consent without disclosing under it
        "v": 1,
        "kind": "action",
        "time": timestamp(T0 + timedelta(minutes=9)),
        "disclosure_id": "",
        "actor": "dpo",
        "credential": "tok",
        "action": "consent_withdrawn",
        "target": "consent:c-1",
        "consent_id": "c-1",
    },
    # Above the schema-15 projection's mark: projected after the upgrade.
    intent(10, "late", "c-1"),
    outcome(10, "late", "sent"),
]
PROJECTED: Final = 13  # entries projected before the upgrade; the last two above the mark

RECIPIENTS_OF_C1 = {
    "sent-to": ["d-1"],
    "timed-out": ["d-3"],
    "odd-purpose": ["d-6"],
    "late": ["d-10"],
}


def _rows() -> list[tuple[int, bytes, bytes]]:
    return [
        (i, data, merkle.leaf_hash(data))
        for i, data in enumerate(canonical_json(e) for e in ENTRIES)
    ]


def _projected(rows: Sequence[tuple[int, bytes, bytes]]) -> list[tuple[object, ...]]:
    """Schema 15's projected rows (no consent_id) of the entries below the mark."""
    values = []
    for i, data, _ in rows[:PROJECTED]:
        c = columns_of_bytes(data)
        values.append((i, *c[:5], c.purpose, c.legal_basis, c.outcome))
    return values


_INSERT_ENTRY = "INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)"
_INSERT_ROW = (
    "INSERT INTO log_index (idx, kind, disclosure_id, subject_ref, partner, logged_at, "
    "purpose, legal_basis, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_MARK = "UPDATE log_projection SET projected_size = ? WHERE name = 'search'"


async def _schema_15(backend: Backend) -> None:
    rows = _rows()
    await store_at_schema(
        backend,
        15,
        (_INSERT_ENTRY, rows),
        (_INSERT_ROW, _projected(rows)),
        (_SET_MARK, [(PROJECTED,)]),
    )


async def _consent_ids(backend: Backend, store: Store) -> dict[int, str]:
    sql = "SELECT idx, consent_id FROM log_index WHERE consent_id IS NOT NULL ORDER BY idx"
    if backend.admin is None:
        conn = store._conn  # type: ignore[attr-defined]  # the SQLite adapter's connection
        return {int(i): str(c) for i, c in await conn.execute_fetchall(sql)}
    await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
    return {int(i): str(c) for i, c in await backend.admin.fetch(sql)}


async def _edit(backend: Backend, store: Store, sql: str, *params: object) -> None:
    if backend.admin is None:
        conn = store._conn  # type: ignore[attr-defined]
        await conn.execute(sql, params)
        await conn.commit()
        return
    await backend.admin.execute(f'SET search_path TO "{backend.schema}"')
    await backend.admin.execute(numbered(sql), *params)


async def test_a_store_of_schema_15_finds_the_same_recipients_by_the_consent_index(
    backend: Backend,
) -> None:
    await _schema_15(backend)

    store = await open_store(backend.url, backend.root)  # migrates through schema 16
    try:
        assert 16 in await store.schema_versions()
        found = await received_under(store, "c-1", SINCE)
        assert {p: r.disclosure_ids for p, r in found.items()} == RECIPIENTS_OF_C1
        other = await received_under(store, "c-2", SINCE)
        assert {p: r.disclosure_ids for p, r in other.items()} == {"other-consent": ["d-4"]}
        assert await received_under(store, "c-1", T0 + timedelta(days=1)) == {}
        # Only intents with a string consent id have one, the same from the upgrade's SQL
        # (below the old mark) as from the projector (above it).
        assert await _consent_ids(backend, store) == {
            0: "c-1",
            2: "c-1",
            4: "c-1",
            6: "c-2",
            9: "c-1",
            10: "c-\ufffdx",
            13: "c-1",
        }
        report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
        assert report.ok, report.problems
        assert (report.projected, report.lag) == (len(ENTRIES), 0)
    finally:
        await store.close()


async def test_verify_names_a_consent_id_changed_in_the_projection_and_the_read_refuses_it(
    backend: Backend, store: Store
) -> None:
    await store.append_log_entries([_row(e) for e in ENTRIES])
    await store.project_log()
    # Moved to another consent (its partner would be told of the wrong withdrawal), and
    # given to an outcome (no intent).
    await _edit(backend, store, "UPDATE log_index SET consent_id = ? WHERE idx = ?", "c-2", 0)
    await _edit(backend, store, "UPDATE log_index SET consent_id = ? WHERE idx = ?", "c-1", 1)

    report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
    messages = [p.message for p in report.problems]
    assert len(messages) == 2, messages
    assert messages[0].startswith("entry 0: its search column consent_id does not match")
    assert messages[1].startswith("entry 1: its search column consent_id does not match")
    with pytest.raises(SearchIndexDamaged) as refused:
        await received_under(store, "c-2", SINCE)
    assert (refused.value.index, refused.value.column) == (0, "consent_id")

    await store.rebuild_projection()
    report = await audit_store(store, SIGNER.verifier_key, ORIGIN)
    assert report.ok, report.problems
    found = await received_under(store, "c-1", SINCE)
    assert {p: r.disclosure_ids for p, r in found.items()} == RECIPIENTS_OF_C1


def _row(entry: dict[str, Any]) -> LogRow:
    data = canonical_json(entry)
    return LogRow(data, merkle.leaf_hash(data))
