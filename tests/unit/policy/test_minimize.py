"""minimize(): every transform of CONTRACT §2, and the property that output only shrinks."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import vocabulary as v
from gateway.errors import GatewayError
from gateway.policy.minimize import (
    age_band,
    apply_transform,
    derive_pseudonym_key,
    mask,
    minimize,
    plan_fields,
    pseudonym,
    truncate_ip,
)

TODAY = date(2026, 11, 24)
MASTER = b"\x01" * 32
KEY = derive_pseudonym_key(MASTER, "lao-credit-bureau")


def test_keep_year_mask_pseudonym():
    fields = {"name": "keep", "date_of_birth": "year", "phone": "mask", "uuid": "pseudonym"}
    data = {
        "name": "Somchai",
        "date_of_birth": "1990-04-02",
        "phone": "+85620555123",
        "uuid": "u-1",
        "password": "pw",
        "nickname": "S",
    }
    plan = plan_fields(data, fields, "p/op")
    out = minimize(data, plan, pseudonym_key=KEY, today=TODAY)
    assert out["name"] == "Somchai"
    assert out["date_of_birth"] == 1990
    assert out["phone"] == "********5123"
    assert out["uuid"] == pseudonym(KEY, "u-1") and out["uuid"] != "u-1"
    assert set(out) == {"name", "date_of_birth", "phone", "uuid"}
    assert set(plan.withheld) == {"password", "nickname"}


def test_pseudonym_stable_per_partner_unlinkable_across():
    other = derive_pseudonym_key(MASTER, "adreach")
    assert pseudonym(KEY, "u-1") == pseudonym(KEY, "u-1")
    assert pseudonym(KEY, "u-1") != pseudonym(other, "u-1")
    assert derive_pseudonym_key(b"\x02" * 32, "lao-credit-bureau") != KEY


@pytest.mark.parametrize(
    "born,band",
    [
        ("2013-01-01", "0-13"),
        ("2010-01-01", "14-17"),
        ("2005-01-01", "18-24"),
        ("1995-01-01", "25-34"),
        ("1985-01-01", "35-44"),
        ("1975-01-01", "45-54"),
        ("1965-01-01", "55-64"),
        ("1950-01-01", "65+"),
    ],
)
def test_age_band(born, band):
    assert age_band(date.fromisoformat(born), TODAY) == band


def test_age_band_birthday_edge():
    assert age_band(date(2008, 11, 25), TODAY) == "14-17"  # turns 18 tomorrow
    assert age_band(date(2008, 11, 24), TODAY) == "18-24"


def test_mask_short_values_fully():
    assert mask("1234") == "****"
    assert mask("12345") == "*2345"


@pytest.mark.parametrize(
    "ip,out",
    [
        ("192.0.2.77", "192.0.2.0"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::"),
    ],
)
def test_truncate_ip(ip, out):
    assert truncate_ip("ip_address", ip) == out


def test_bad_values_refused_without_echo():
    with pytest.raises(GatewayError) as exc:
        truncate_ip("ip_address", "SECRET-not-an-ip")
    assert exc.value.code == "invalid_request" and "SECRET" not in exc.value.detail
    with pytest.raises(GatewayError) as exc:
        apply_transform("date_of_birth", "year", "SECRET", KEY, TODAY)
    assert "SECRET" not in exc.value.detail


def test_drop_and_nested_payment_records():
    fields = {
        "payment_records": "keep",
        "amount": "keep",
        "card_token": "mask",
        "transaction_id": "drop",
        "email": "drop",
    }
    data = {
        "email": "a@b",
        "payment_records": [
            {
                "amount": 10,
                "currency": "LAK",
                "card_token": "tok_123456789",
                "transaction_id": "t1",
                "cvv": "123",
            }
        ],
    }
    plan = plan_fields(data, fields, "p/op")
    out = minimize(data, plan, pseudonym_key=KEY, today=TODAY)
    assert out == {"payment_records": [{"amount": 10, "card_token": "*********6789"}]}
    assert {
        "email",
        "payment_records.currency",
        "payment_records.transaction_id",
        "payment_records.cvv",
    } == set(plan.withheld)


def test_null_values_pass_as_null():
    plan = plan_fields({"uuid": None}, {"uuid": "pseudonym"}, "p/op")
    assert minimize({"uuid": None}, plan, pseudonym_key=KEY, today=TODAY) == {"uuid": None}


# --- property: minimized output ⊆ the operation's fields, never password/special/unknown ---

scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))
field_names = st.sampled_from([*sorted(v.FIELDS), "shoe_size", "Name", "password ", "__proto__"])
safe_transforms = {  # transforms valid on any field
    "keep": lambda f: True,
    "pseudonym": lambda f: True,
    "mask": lambda f: True,
    "drop": lambda f: True,
}


@st.composite
def operation_fields(draw: Any) -> dict[str, str]:
    names = draw(
        st.lists(
            st.sampled_from(sorted(v.FIELDS - v.NEVER_DISCLOSED - {"payment_records"})), max_size=12
        )
    )
    return {n: draw(st.sampled_from(sorted(safe_transforms))) for n in names}


@settings(max_examples=300, deadline=None)
@given(fields=operation_fields(), data=st.dictionaries(field_names, scalar, max_size=15))
def test_minimized_output_only_shrinks(fields, data):
    plan = plan_fields(data, fields, "p/op")
    out = minimize(data, plan, pseudonym_key=KEY, today=TODAY)
    assert set(out) <= {f for f, t in fields.items() if t != "drop"}
    assert set(out) <= set(data)
    assert "password" not in out
    assert all(name in v.FIELDS for name in out)
    assert set(plan.withheld) | set(plan.disclosed) == set(data)
    for name, value in out.items():
        if fields[name] == "pseudonym" and data[name] is not None:
            assert value != data[name] or data[name] == ""
