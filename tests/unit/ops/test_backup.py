"""The pure parts of gateway.ops.backup: the restore's comparison of two logs, which
instances count as a running gateway, the manifest's round trip, and storage.url as the
PostgreSQL client programs take it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.ops.backup import (
    Comparison,
    LogState,
    Manifest,
    _pg_target,
    compare_logs,
    live_instances,
)
from gateway.store.records import InstanceRecord, StoredCheckpoint

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_compare_logs_counts_unsigned_entries_too() -> None:
    cp = StoredCheckpoint(5, "note", T0, 1)
    assert compare_logs(LogState(5, cp), LogState(0, None)) is Comparison.EMPTY
    assert compare_logs(LogState(5, cp), LogState(5, cp)) is Comparison.NOT_OLDER
    assert compare_logs(LogState(7, cp), LogState(6, cp)) is Comparison.NOT_OLDER
    # Entries beyond the latest checkpoint were disclosed: losing them is going back too.
    assert compare_logs(LogState(5, cp), LogState(6, cp)) is Comparison.OLDER
    # A checkpoint the backup never saw, over fewer entries than it holds: the store went
    # on from another history; overwriting it would lose what it signed.
    later = StoredCheckpoint(8, "n", T0, 2)
    assert compare_logs(LogState(9, cp), LogState(8, later)) is Comparison.OLDER
    # Only the empty tree's checkpoint: not empty, but nothing to lose.
    empty_tree = StoredCheckpoint(0, "n", T0, 1)
    assert compare_logs(LogState(0, None), LogState(0, empty_tree)) is Comparison.NOT_OLDER


def test_live_instances_are_those_with_a_fresh_heartbeat_that_did_not_stop() -> None:
    def instance(
        name: str, age_s: float, recovered_at: datetime | None = None, claimed_by: str | None = None
    ) -> InstanceRecord:
        beat = T0 - timedelta(seconds=age_s)
        start = T0 - timedelta(hours=1)
        return InstanceRecord(name, "host", 1, start, beat, claimed_by, recovered_at)

    rows = [
        instance("fresh", 3),
        instance("stale", 30),
        instance("stopped", 1, recovered_at=T0),
        instance("presumed-dead", 1, claimed_by="fresh"),
    ]
    assert [i.id for i in live_instances(rows, T0, 15.0)] == ["fresh"]


def test_the_manifest_round_trips_through_its_json() -> None:
    manifest = Manifest(
        backend="sqlite",
        file_name="b.db",
        sha256="ab" * 32,
        created_at=T0,
        gateway_version="0.2.0",
        schema_version=6,
        origin="gateway.example/log",
        verifier_key="gateway.example/log+01020304+AAAA",
        log=LogState(12, StoredCheckpoint(12, "note\n", T0, 3)),
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert "keys/" in manifest.to_json()["keys"]


def test_storage_url_for_pg_dump_keeps_the_password_off_the_command_line() -> None:
    target = _pg_target(
        "postgresql://gw:s%40cret@db.internal:5433/gateway?search_path=gw&sslmode=require"
        "&statement_timeout=5000"
    )
    assert target.url == "postgresql://gw@db.internal:5433/gateway?sslmode=require"
    assert target.password == "s@cret"
    assert target.schema == "gw"
    plain = _pg_target("postgres://gw@db/gateway")
    assert (plain.url, plain.password, plain.schema) == ("postgresql://gw@db/gateway", None, None)
