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

__all__ = ["canonical_json", "timestamp"]


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def timestamp(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z, e.g. ``2026-11-24T09:00:00.000Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
