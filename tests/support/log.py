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


def sent_rows(start: int, end: int, at: datetime) -> list[LogRow]:
    """Outcome rows of disclosures d-START … d-(END-1), each sent to lao-credit-bureau at
    the first attempt, one second apart from `at`."""
    return [
        row_of(
            outcome_entry(
                disclosure_id=f"d-{i}",
                outcome="sent",
                at=at + timedelta(seconds=i),
                partner="lao-credit-bureau",
                partner_status=201,
                attempts=1,
            )
        )
        for i in range(start, end)
    ]
