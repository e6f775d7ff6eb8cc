"""The record of processing's arithmetic (gateway.rights.ropa): declared beside counted,
drift, what `partners tighten` removes — pure, on hand-made counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import InvalidRequestError
from gateway.partners.model import Operation, Partner
from gateway.rights.ropa import (
    DEFAULT_WINDOW,
    RopaReport,
    build_rows,
    data_map,
    never_sent_by_operation,
    report_csv,
    report_json,
    report_text,
    window_of,
)
from gateway.store.records import RopaCounts, RopaFieldCount, RopaRowCount
from gateway.vocabulary import CATEGORY_OF_FIELD

T0 = datetime(2026, 3, 1, tzinfo=UTC)
T1 = datetime(2026, 3, 9, tzinfo=UTC)


def operation(name: str, purposes: set[str], bases: set[str], fields: dict[str, str]) -> Operation:
    return Operation(name, "POST", f"/{name}", frozenset(purposes), frozenset(bases), fields)


@pytest.fixture
def ads(partners: dict[str, Partner]) -> Partner:
    base = partners["adreach"]
    return replace(
        base,
        operations={
            "upload": operation(
                "upload",
                {"marketing"},
                {"consent", "contract"},
                {"email": "pseudonym", "cookie": "keep", "app_id": "keep", "name": "drop"},
            ),
            "erasure": operation("erasure", {"legal"}, {"legal_obligation"}, {"email": "keep"}),
        },
    )


def counted(
    key: tuple[str, str, str, str], n: int, fields: dict[str, int], consents: tuple[int, int]
) -> RopaCounts:
    return RopaCounts(
        rows=(RopaRowCount(*key, n, T0, T1, *consents),),
        fields=tuple(RopaFieldCount(*key, f, c) for f, c in fields.items()),
    )


def test_every_declared_pairing_is_a_row_with_its_drift(ads: Partner) -> None:
    counts = counted(
        ("adreach", "upload", "marketing", "consent"), 10, {"email": 10, "cookie": 4}, (5, 2)
    )
    rows = {(r.operation, r.legal_basis): r for r in build_rows({"adreach": ads}, counts)}
    assert set(rows) == {
        ("upload", "consent"),
        ("upload", "contract"),
        ("erasure", "legal_obligation"),
    }
    used = rows[("upload", "consent")]
    assert used.disclosures == 10 and used.disclosed_fields == {"cookie": 4, "email": 10}
    assert used.never_sent == ("app_id",)  # `name` is declared drop: never sent by design
    assert used.drift == ("fields_never_sent",)
    assert (used.first_disclosure, used.last_disclosure) == (T0, T1)
    assert used.category == ads.category and used.retention_days == ads.retention_days
    assert rows[("upload", "contract")].drift == ("never_used",)
    assert rows[("erasure", "legal_obligation")].drift == ("operation_never_used",)


@pytest.mark.parametrize(
    ("consents", "withdrawn", "mostly"), [(4, 2, False), (4, 3, True), (1, 1, True), (0, 0, False)]
)
def test_mostly_withdrawn_is_more_than_half(
    ads: Partner, consents: int, withdrawn: int, mostly: bool
) -> None:
    key = ("adreach", "upload", "marketing", "consent")
    fields = {"email": 3, "cookie": 3, "app_id": 3}
    (row,) = [
        r
        for r in build_rows({"adreach": ads}, counted(key, 3, fields, (consents, withdrawn)))
        if r.disclosures
    ]
    assert row.consents_mostly_withdrawn is mostly
    assert ("consents_mostly_withdrawn" in row.drift) is mostly


def test_a_contract_row_is_never_consent_drift(ads: Partner) -> None:
    key = ("adreach", "upload", "marketing", "contract")
    rows = build_rows({"adreach": ads}, counted(key, 2, {"email": 2}, (2, 2)))
    assert all("consents_mostly_withdrawn" not in r.drift for r in rows)


def test_traffic_the_files_no_longer_declare(ads: Partner) -> None:
    counts = counted(("adreach", "old_feed", "marketing", "consent"), 2, {"email": 2}, (0, 0))
    gone = counted(("gone-partner", "feed", "marketing", "consent"), 1, {"uuid": 1}, (0, 0))
    merged = RopaCounts(counts.rows + gone.rows, counts.fields + gone.fields)
    rows = {(r.partner, r.operation): r for r in build_rows({"adreach": ads}, merged)}
    assert rows[("adreach", "old_feed")].drift == ("not_declared",)
    assert rows[("adreach", "old_feed")].declared_fields == {}
    assert rows[("gone-partner", "feed")].category is None


def test_tighten_takes_the_union_over_purposes_and_bases(ads: Partner) -> None:
    one = counted(("adreach", "upload", "marketing", "consent"), 3, {"email": 3}, (3, 0))
    two = counted(("adreach", "upload", "marketing", "contract"), 1, {"cookie": 1}, (0, 0))
    rows = build_rows({"adreach": ads}, RopaCounts(one.rows + two.rows, one.fields + two.fields))
    report = RopaReport(T0, T1, rows)
    # erasure was never used: not tightened (it would lose every field).
    assert never_sent_by_operation(report, ads) == {"upload": ("app_id",)}


def test_a_notice_route_used_only_by_field_less_notices_is_not_drift(ads: Partner) -> None:
    # Withdrawal notices name disclosure ids, no field: a window with only those must not
    # make `email` look unneeded, or tighten would break the next erasure notice.
    key = ("adreach", "erasure", "legal", "legal_obligation")
    rows = {r.operation: r for r in build_rows({"adreach": ads}, counted(key, 4, {}, (0, 0)))}
    assert rows["erasure"].never_sent == ("email",)  # shown as a fact
    assert rows["erasure"].drift == ()  # but not as drift
    assert never_sent_by_operation(RopaReport(T0, T1, tuple(rows.values())), ads) == {}
    routed = replace(ads, notice_operation="upload")  # its own withdrawal route: kept too
    assert routed.notice_operations == {"erasure", "upload"}
    again = build_rows({"adreach": routed}, counted(key, 4, {}, (0, 0)))
    assert never_sent_by_operation(RopaReport(T0, T1, again), routed) == {}


def test_renderings_carry_the_drift(ads: Partner) -> None:
    key = ("adreach", "upload", "marketing", "consent")
    report = RopaReport(T0, T1, build_rows({"adreach": ads}, counted(key, 2, {"email": 2}, (2, 2))))
    (first,) = [r for r in report_json(report)["rows"] if r["disclosures"]]
    assert first["disclosed_fields"] == {"email": 2}
    assert first["first_disclosure"] == "2026-03-01T00:00:00Z"
    assert "app_id cookie" in report_csv(report)
    text = report_text(report)
    assert "consents:    2 (2 withdrawn)" in text and "DRIFT:       fields_never_sent, " in text


def test_window_defaults_and_refusals() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert window_of(None, None, now) == (now - DEFAULT_WINDOW, now)
    assert window_of("2026-01-01", None, now)[0] == datetime(2026, 1, 1, tzinfo=UTC)
    until = window_of(None, "2026-06-01T00:00:00Z", now)[1]
    assert until == datetime(2026, 6, 1, tzinfo=UTC)
    for bad in ("yesterday", "2026-02-30", "2026-01-01T00:00:00"):
        with pytest.raises(InvalidRequestError, match="YYYY-MM-DD"):
            window_of(bad, None, now)
    with pytest.raises(InvalidRequestError, match="before"):
        window_of("2026-06-01", "2026-06-01", now)
    assert window_of(None, None, now)[1] - window_of(None, None, now)[0] == timedelta(days=365)


def test_the_data_map_groups_fields_by_data_category(ads: Partner) -> None:
    key = ("adreach", "upload", "marketing", "consent")
    counts = counted(key, 4, {"email": 4, "cookie": 1}, (0, 0))
    undeclared = counted(("adreach", "old", "marketing", "consent"), 1, {"phone": 1}, (0, 0))
    merged = RopaCounts(counts.rows + undeclared.rows, counts.fields + undeclared.fields)
    report = RopaReport(T0, T1, build_rows({"adreach": ads}, merged))
    (row,) = data_map(report, CATEGORY_OF_FIELD)
    assert row.partner == "adreach" and row.disclosures == 5
    contact, device, usage = row.cells["contact"], row.cells["device"], row.cells["usage"]
    assert contact.declared == ("email",) and contact.sent == {"email": 4, "phone": 1}
    assert contact.undeclared == ("phone",) and contact.never_sent == ()
    assert device.declared == ("app_id",) and device.never_sent == ("app_id",)
    assert usage.sent == {"cookie": 1}
    assert "identity" not in row.cells  # `name` is declared drop
