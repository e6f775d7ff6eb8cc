"""Reading the disclosure log of an app under test, as its own readers do."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.web.keys import LOG, STORE


async def logged(app: web.Application, disclosure_id: str) -> list[dict[str, Any]]:
    """The entries of one disclosure, once what the app has queued is committed.

    Outcome and refusal entries commit while the answer goes back (gateway.disclosure.flow);
    the app's own read routes wait for them the same way (gateway.web.log_settled).
    """
    await app[LOG].settle()
    rows = await app[STORE].log_entries_for_disclosure(disclosure_id)
    return [json.loads(raw) for _, raw in rows]
