"""Reading the disclosure log of an app under test, as its own readers do; rows to fill one."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.log.entries import outcome_entry, row_of
from gateway.store.records import LogRow
from gateway.web.keys import LOG, STORE


async def logged(app: web.Application, disclosure_id: str) -> list[dict[str, Any]]:
    """The entries of one disclosure, once what the app has queued is committed.

    Outcome and refusal entries commit while the answer goes back (gateway.disclosure.flow);
    the app's own read routes wait for them the same way (gateway.web.log_settled).
    """
    await app[LOG].settle()
    rows = await app[STORE].log_entries_for_disclosure(disclosure_id)
    return [json.loads(raw) for _, raw in rows]


def sent_entry(i: int, at: datetime) -> dict[str, Any]:
    """The outcome entry of disclosure d-I, sent to lao-credit-bureau at the first attempt."""
    return outcome_entry(
        disclosure_id=f"d-{i}",
        outcome="sent",
        at=at,
        partner="lao-credit-bureau",
        partner_status=201,
        attempts=1,
    )


def sent_rows(
    start: int, end: int, at: datetime, apart: timedelta = timedelta(seconds=1)
) -> list[LogRow]:
    """The rows of `sent_entry` d-START … d-(END-1), d-I at `at` + I × `apart`."""
    return [row_of(sent_entry(i, at + i * apart)) for i in range(start, end)]
