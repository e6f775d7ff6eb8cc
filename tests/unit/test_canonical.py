"""canonical_entry (orjson) writes exactly the bytes canonical_json (json) writes.

Log entries are Merkle leaves: anyone re-encoding a parsed entry with
canonical_json (`gateway log verify-proof`, gateway.log.offline) must get the
bytes the gateway hashed. Entries hold no floats, so the property is stated for
every float-free JSON value.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canonical import canonical_entry, canonical_json

# Text with what JSON escapes (quotes, backslash, control characters), what it must not
# (DEL, U+2028/2029, non-ASCII, astral characters), but no lone surrogates.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\\x00\x01\x08\t\n\x0c\r\x1f\x7f\u2028\u2029é€😀ລາວ'),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=30,
)
FLOAT_FREE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200)
@given(st.dictionaries(TEXT, FLOAT_FREE, max_size=12))
def test_canonical_entry_is_canonical_json_for_float_free_values(entry: dict[str, Any]) -> None:
    assert canonical_entry(entry) == canonical_json(entry)
    assert canonical_json(json.loads(canonical_entry(entry))) == canonical_entry(entry)


def test_what_orjson_refuses_takes_the_slow_way_to_the_same_bytes() -> None:
    entry = {"kind": "refused", "big": 2**70, "small": -(2**65)}
    assert canonical_entry(entry) == canonical_json(entry)
