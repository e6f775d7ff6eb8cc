"""The log's byte format: canonical JSON (sorted keys, no spaces, UTF-8) and UTC times.

These bytes are what the Merkle leaf hash covers (CONTRACT §5), so they must be
reproducible by anyone from the parsed entry: ``canonical_json(json.loads(b)) == b``
for every entry the gateway writes (no floats, only str/int/bool/null/list/dict).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["canonical_entry", "canonical_json", "timestamp"]


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def canonical_entry(entry: Mapping[str, Any]) -> bytes:
    """`canonical_json` of a log entry, about ten times faster (every entry is encoded on
    the hot path). Entries hold no floats, and for such values orjson's sorted, compact
    UTF-8 is byte for byte `canonical_json`'s (tests/unit/test_canonical.py). What orjson
    refuses (an integer beyond 64 bits, a lone surrogate) takes the slow way, to the same
    bytes or the same error."""
    try:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return canonical_json(entry)


def timestamp(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z, e.g. ``2026-11-24T09:00:00.000Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
