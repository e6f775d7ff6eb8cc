"""A disclosure's receipt over HTTP (CONTRACT §4.6): its intent entry proven in the
witnessed checkpoint, as a C2SP tlog-proof anyone checks offline (``gateway receipt
verify``, ``gateway.log.receipt``).

Who may fetch it: the calling service that made the disclosure, and reviewers. Any other
caller is told the same ``404`` as for an id that does not exist, so disclosure ids of
other services cannot be probed. A refused disclosure has no intent entry, and so no
receipt (``404`` too, saying so to its own caller).

Before a witnessed checkpoint covers the entry the answer is ``202`` with ``Retry-After``
(about the checkpoint interval) and a small JSON body saying when to ask again.
"""

from __future__ import annotations

import math
import re
from typing import Final

from aiohttp import web

from gateway.config.model import Caller
from gateway.errors import NotFoundError
from gateway.log.columns import checked_disclosure
from gateway.log.receipt import CONTENT_TYPE, FILE_EXTENSION, format_receipt
from gateway.log.record import EntryRecord
from gateway.web.http import caller_of, json_response
from gateway.web.keys import GATEWAY, LOG, STORE

__all__ = [
    "RECEIPT_ROLES",
    "add_receipt_routes",
    "may_read_entry",
    "may_read_own_entry",
    "receipt_link",
]

RECEIPT_ROLES: Final = ("discloser", "reviewer")
DEFAULT_RETRY_S: Final = 60
# Disclosure ids are `d-<uuid4>`; anything far from that shape is no disclosure of ours.
_DISCLOSURE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def receipt_link(disclosure_id: str) -> str:
    """The ``Link`` header value a disclosure's answer carries to its receipt."""
    return f'</v1/disclosures/{disclosure_id}/receipt>; rel="receipt"'


def may_read_entry(caller: Caller, entry: EntryRecord) -> bool:
    """Reviewers read every entry; a calling service only the entries that name it."""
    return "reviewer" in caller.roles or entry.caller == caller.id


async def may_read_own_entry(request: web.Request, caller: Caller, entry: EntryRecord) -> bool:
    """``may_read_entry``, and also the outcome of a disclosure the caller made: an outcome
    names no caller, so its disclosure's intent says whose it is. The service that holds a
    receipt reads its outcome too, with the partner's acknowledgement (``gateway receipt
    verify --outcome``)."""
    if may_read_entry(caller, entry):
        return True
    if entry.kind != "outcome" or not _DISCLOSURE_ID.fullmatch(entry.disclosure_id):
        return False
    entries = await checked_disclosure(request.app[STORE], entry.disclosure_id)
    return any(e.kind == "intent" and e.caller == caller.id for e in entries)


async def _intent_of(request: web.Request, caller: Caller, disclosure_id: str) -> EntryRecord:
    if not _DISCLOSURE_ID.fullmatch(disclosure_id):
        # Not repeated in the answer: it is no id the gateway gave.
        raise NotFoundError("no such disclosure: expected the Disclosure-Id of an answer")
    unknown = NotFoundError(
        f"no disclosure {disclosure_id!r} made by this caller; a receipt is for the calling "
        "service that made the disclosure (or a reviewer)"
    )
    entries = await checked_disclosure(request.app[STORE], disclosure_id)
    if not entries or not may_read_entry(caller, entries[0]):
        raise unknown
    intent = next((e for e in entries if e.kind == "intent"), None)
    if intent is None:
        raise NotFoundError(
            f"disclosure {disclosure_id!r} was refused: nothing was sent, so there is no "
            "receipt (its refusal is in the log)"
        )
    return intent


def _retry_after_s(request: web.Request) -> int:
    gateway = request.config_dict.get(GATEWAY)
    interval = DEFAULT_RETRY_S if gateway is None else gateway.config.log.checkpoint_interval_s
    return max(1, math.ceil(interval))


async def get_receipt(request: web.Request) -> web.Response:
    caller = await caller_of(request, RECEIPT_ROLES)
    disclosure_id = request.match_info["disclosure_id"]
    intent = await _intent_of(request, caller, disclosure_id)
    service = request.app[LOG]
    checkpoint = await service.witnessed_checkpoint()
    if checkpoint is None or checkpoint.size <= intent.index:
        retry = _retry_after_s(request)
        response = json_response(
            {
                "status": "pending",
                "disclosure_id": disclosure_id,
                "index": intent.index,
                "detail": "no witnessed checkpoint covers this disclosure's entry yet; "
                f"ask again in {retry} seconds",
                "retry_after": retry,
            },
            status=202,
        )
        response.headers["Retry-After"] = str(retry)
        return response
    proof = await service.inclusion_proof(intent.index, checkpoint.size)
    text = format_receipt(intent.index, proof.hashes, checkpoint.note)
    return web.Response(
        text=text,
        headers={
            "Content-Type": CONTENT_TYPE,
            "Content-Disposition": f'attachment; filename="{disclosure_id}{FILE_EXTENSION}"',
            "Link": f'</v1/log/entries/{intent.index}>; rel="entry"',
        },
    )


def add_receipt_routes(app: web.Application) -> None:
    """Register §4.6; the app must hold the STORE, the LOG and AUTH."""
    app.router.add_get(
        "/v1/disclosures/{disclosure_id}/receipt", get_receipt, name="disclosure_receipt"
    )
