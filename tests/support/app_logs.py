"""The application's own log lines (gateway.observe.app_log) as a test reads them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gateway.observe.app_log import JsonFormatter, PersonalDataFilter


@contextmanager
def captured_log_lines(level: int = logging.DEBUG) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every record of every logger from `level` on, as the JSON lines `gateway serve`
    writes (its formatter and personal-data filter); the reader gives those so far."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
