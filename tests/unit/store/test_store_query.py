"""LogQuery (one log search as a value, checked once) and the SQL built from it (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.store.records import DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, LogColumns, LogQuery
from gateway.store.search_sql import Dialect, search_sql, where

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_an_empty_query_finds_every_row_a_page_at_a_time() -> None:
    query = LogQuery()
    assert (query.subject_refs, query.partner, query.kinds, query.outcome) == (None,) * 4
    assert (query.since, query.until, query.after_index) == (None, None, None)
    assert query.limit == DEFAULT_SEARCH_LIMIT
    assert not query.matches_nothing


@pytest.mark.parametrize("limit", [0, -1, MAX_SEARCH_LIMIT + 1])
def test_a_limit_outside_one_page_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match=f"limit must be between 1 and {MAX_SEARCH_LIMIT}"):
        LogQuery(limit=limit)


@pytest.mark.parametrize("limit", [1, MAX_SEARCH_LIMIT])
def test_a_limit_within_one_page_is_kept(limit: int) -> None:
    assert LogQuery(limit=limit).limit == limit


@pytest.mark.parametrize("name", ["since", "until"])
def test_a_time_without_a_time_zone_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a timezone-aware datetime"):
        LogQuery(**{name: datetime(2026, 11, 24, 9)})  # naive: refused


@pytest.mark.parametrize("until", [AT, AT - HOUR])
def test_an_empty_or_reversed_time_range_is_refused(until: datetime) -> None:
    with pytest.raises(ValueError, match="since must be before until"):
        LogQuery(since=AT, until=until)


def test_a_time_range_is_kept_and_may_be_open_on_either_side() -> None:
    assert (LogQuery(since=AT, until=AT + HOUR).since, LogQuery(until=AT).until) == (AT, AT)
    assert LogQuery(since=AT).since == AT


def test_times_in_other_zones_are_compared_as_instants() -> None:
    vientiane = AT.astimezone(timezone(timedelta(hours=7)))  # 16:00 there, 09:00 UTC
    with pytest.raises(ValueError, match="since must be before until"):
        LogQuery(since=vientiane, until=AT)
    assert LogQuery(since=AT - HOUR, until=vientiane).until == AT


@pytest.mark.parametrize("name", ["subject_refs", "kinds"])
def test_a_bare_string_for_a_list_filter_is_refused(name: str) -> None:
    # A string is a sequence of one-letter strings: it would search for each letter.
    with pytest.raises(TypeError, match=f"{name} must be a list of values, not one string"):
        LogQuery(**{name: "intent"})


def test_a_list_filter_keeps_each_value_once_in_the_order_given() -> None:
    query = LogQuery(subject_refs=["b", "a", "b"], kinds=iter(["refused", "intent"]))
    assert (query.subject_refs, query.kinds) == (("b", "a"), ("refused", "intent"))


def test_a_single_value_is_a_list_of_one() -> None:
    assert LogQuery(subject_ref="a", kind="intent") == LogQuery(
        subject_refs=["a"], kinds=["intent"]
    )
    assert LogQuery(subject_ref="a").subject_refs == ("a",)


def test_a_single_value_with_a_list_matches_what_both_admit() -> None:
    both = LogQuery(subject_ref="a", subject_refs=["b", "a"], kind="intent", kinds=["intent"])
    assert (both.subject_refs, both.kinds, both.matches_nothing) == (("a",), ("intent",), False)
    apart = LogQuery(subject_ref="a", subject_refs=["b"])
    assert (apart.subject_refs, apart.matches_nothing) == ((), True)
    assert LogQuery(kind="intent", kinds=[]).matches_nothing


@pytest.mark.parametrize("name", ["subject_refs", "kinds"])
def test_a_list_of_no_values_matches_nothing(name: str) -> None:
    assert LogQuery(**{name: []}).matches_nothing


def test_the_query_is_frozen_and_pages_on_as_a_new_value() -> None:
    first = LogQuery(subject_refs=["a"], partner="p", since=AT, limit=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.limit = 20  # type: ignore[misc]
    second = first.after(41)
    assert (first.after_index, second.after_index) == (None, 41)
    assert dataclasses.replace(second, after_index=None) == first
    assert hash(second.after(41)) == hash(second)


def test_the_repr_leaves_subject_references_out() -> None:
    text = repr(LogQuery(subject_refs=["ref-of-someone"], partner="p"))
    assert "ref-of-someone" not in text
    assert "partner='p'" in text


def columns(**values: object) -> LogColumns:
    base = LogColumns("intent", "d-1", "r", "p", AT, "service_provision", "contract", None)
    return base._replace(**values)


def test_a_row_is_checked_against_every_filter_in_order() -> None:
    assert LogQuery().first_mismatch(columns()) is None
    every = LogQuery(
        subject_refs=["r", "s"],
        partner="p",
        kinds=["intent", "refused"],
        purpose="service_provision",
        legal_basis="contract",
        since=AT,
        until=AT + HOUR,
        after_index=99,  # the index is the row's place, not one of its values
    )
    assert every.first_mismatch(columns()) is None
    assert every.first_mismatch(columns(subject_ref=None)) == "subject_ref"
    assert every.first_mismatch(columns(partner="q", kind="outcome")) == "partner"
    assert every.first_mismatch(columns(kind="outcome", purpose="x")) == "kind"
    assert every.first_mismatch(columns(purpose="x", legal_basis="x")) == "purpose"
    assert every.first_mismatch(columns(legal_basis="x", time=AT - HOUR)) == "legal_basis"
    assert LogQuery(outcome="sent").first_mismatch(columns()) == "outcome"
    assert LogQuery(outcome="sent").first_mismatch(columns(outcome="sent")) is None


def test_the_time_range_includes_since_and_excludes_until() -> None:
    query = LogQuery(since=AT, until=AT + HOUR)
    assert query.first_mismatch(columns(time=AT)) is None
    assert query.first_mismatch(columns(time=AT - timedelta(microseconds=1))) == "time"
    assert query.first_mismatch(columns(time=AT + HOUR)) == "time"
    assert LogQuery(subject_refs=[]).first_mismatch(columns()) == "subject_ref"


class Numbered(Dialect):
    """A dialect of numbered placeholders that binds a list as one value and times as text."""

    def placeholder(self, position: int) -> str:
        return f":{position}"

    def any_of(self, column: str, values: Sequence[str], position: int) -> tuple[str, list[object]]:
        return f"{column} IN :{position}", [tuple(values)]

    def time(self, value: datetime) -> object:
        return value.isoformat()

    def column(self, name: str, *, by_subject: bool, in_window: bool = False) -> str:
        return f"~{name}" if by_subject and name != "p.subject_ref" else name


def test_the_sql_has_a_condition_for_each_filter_given_in_a_fixed_order() -> None:
    sql = search_sql(
        LogQuery(
            until=AT + HOUR,
            outcome="sent",
            legal_basis="contract",
            purpose="service_provision",
            kinds=["outcome", "refused"],
            partner="p",
            since=AT,
            after_index=7,
            limit=5,
        ),
        Numbered(),
    )
    assert sql is not None
    assert sql.subject == ()
    assert sql.others == (
        "p.partner = :1",
        "p.kind IN :2",
        "p.purpose = :3",
        "p.legal_basis = :4",
        "p.outcome = :5",
        "p.logged_at >= :6",
        "p.logged_at < :7",
        "p.idx > :8",
    )
    assert sql.params == (
        "p",
        ("outcome", "refused"),
        "service_provision",
        "contract",
        "sent",
        AT.isoformat(),
        (AT + HOUR).isoformat(),
        7,
        5,
    )
    assert sql.limit == ":9"


def test_the_subject_condition_is_kept_apart_and_one_value_is_an_equality() -> None:
    one = search_sql(LogQuery(subject_ref="r", kind="intent"), Numbered())
    assert one is not None
    assert (one.subject, one.others, one.params, one.limit) == (
        ("p.subject_ref = :1",),
        ("~p.kind = :2",),
        ("r", "intent", DEFAULT_SEARCH_LIMIT),
        ":3",
    )
    assert one.conditions == ("p.subject_ref = :1", "~p.kind = :2")
    several = search_sql(LogQuery(subject_refs=["r", "s"]), Numbered())
    assert several is not None
    assert (several.subject, several.others, several.params) == (
        ("p.subject_ref IN :1",),
        (),
        (("r", "s"), DEFAULT_SEARCH_LIMIT),
    )


def test_no_filter_is_no_where_clause_and_no_values_is_no_sql() -> None:
    everything = search_sql(LogQuery(limit=3), Numbered())
    assert everything is not None
    assert (everything.conditions, everything.params, everything.limit) == ((), (3,), ":1")
    assert where(everything.conditions) == ""
    assert where(("a = :1", "b = :2")) == " WHERE a = :1 AND b = :2"
    assert search_sql(LogQuery(subject_refs=[]), Numbered()) is None
    assert search_sql(LogQuery(kind="intent", kinds=["refused"]), Numbered()) is None
