"""HTTP access to the disclosure log (CONTRACT §4.6): checkpoint, entries, proofs, key.

All but ``GET /v1/log/key`` and ``GET /v1/log/keys`` (the keys after rotations, with the
checkpoints each signs) need the reviewer role; a calling service (discloser) may also
read the entries that name it, which its receipts prove, and its disclosures' outcomes
(§4.6). Hashes are base64 and proofs list them in RFC 9162 order, so any RFC 9162
verifier (or ``gateway log verify-proof``) checks them against a checkpoint with only the
public key.
"""

from __future__ import annotations

import json
import re
from typing import Final

from aiohttp import web

from gateway.config.model import Caller
from gateway.errors import InvalidRequestError, NotFoundError
from gateway.log.key_history import key_validity
from gateway.log.offline import b64
from gateway.log.record import EntryRecord, NotAnEntry
from gateway.store.records import LogRecord
from gateway.web.http import caller_of, json_response
from gateway.web.keys import LOG
from gateway.web.routes.receipts import may_read_own_entry

__all__ = ["add_log_routes"]

REVIEWER: Final = "reviewer"
MAX_INDEX: Final = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def _number(text: str | None, name: str) -> int:
    if text is None:
        raise InvalidRequestError(f"query parameter '{name}' is required")
    if not _DIGITS.fullmatch(text) or int(text) > MAX_INDEX:
        raise InvalidRequestError(f"'{name}' must be a whole number from 0 to {MAX_INDEX}")
    return int(text)


def _text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain", charset="utf-8")


async def get_checkpoint(request: web.Request) -> web.Response:
    await caller_of(request, REVIEWER)
    service = request.app[LOG]
    # The first reviewer to ask before the first interval gets one signed now.
    checkpoint = await service.latest_checkpoint() or await service.checkpoint()
    # The newest checkpoint with whatever cosignatures it has gathered so far (c2sp
    # clients want the newest note; a verifier counts the cosignatures its own policy
    # asks for). `LogService.witnessed_checkpoint` is the newest that met the quorum.
    return _text(checkpoint.cosigned or checkpoint.note)


async def get_entry(request: web.Request) -> web.Response:
    # A calling service reads the entries that name it (what its receipts prove, §4.6) and
    # its disclosures' outcomes (the partner's acknowledgement); another's is answered as
    # one that does not exist, so none can be probed.
    caller = await caller_of(request, (REVIEWER, "discloser"))
    index = _number(request.match_info["index"], "index")
    if REVIEWER in caller.roles:
        number, entry, leaf = await request.app[LOG].record(index)
    else:
        number, entry, leaf = await _own_entry(request, caller, index)
    return json_response(
        {
            "index": number,
            "leaf_hash": None if leaf is None else b64(leaf),
            "entry": json.loads(entry),
        }
    )


async def _own_entry(request: web.Request, caller: Caller, index: int) -> LogRecord:
    try:
        found = await request.app[LOG].record(index)
        if await may_read_own_entry(request, caller, EntryRecord.parse(found[0], found[1])):
            return found
    except (NotFoundError, NotAnEntry):
        pass
    raise NotFoundError(
        f"no log entry with index {index} made by this caller; a calling service reads only "
        "its own disclosures' entries"
    )


async def get_inclusion_proof(request: web.Request) -> web.Response:
    await caller_of(request, REVIEWER)
    index = _number(request.query.get("index"), "index")
    tree_size = _number(request.query.get("tree_size"), "tree_size")
    proof = await request.app[LOG].inclusion_proof(index, tree_size)
    return json_response(
        {
            "index": proof.index,
            "tree_size": proof.tree_size,
            "leaf_hash": b64(proof.leaf_hash),
            "hashes": [b64(h) for h in proof.hashes],
        }
    )


async def get_consistency_proof(request: web.Request) -> web.Response:
    await caller_of(request, REVIEWER)
    first = _number(request.query.get("first"), "first")
    second = _number(request.query.get("second"), "second")
    hashes = await request.app[LOG].consistency_proof(first, second)
    return json_response({"first": first, "second": second, "hashes": [b64(h) for h in hashes]})


async def get_key(request: web.Request) -> web.Response:
    # The current key first (what clients reading one line take), then the keys retired
    # by rotations, newest first: a checkpoint verifies with one of them.
    response = _text("".join(f"{key}\n" for key in request.app[LOG].signer.verifier_keys))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def get_keys(request: web.Request) -> web.Response:
    signer = request.app[LOG].signer
    keys = key_validity(signer.verifier_key, signer.retired)
    response = json_response({"origin": signer.name, "keys": keys})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def add_log_routes(app: web.Application) -> None:
    """Register §4.6; the app must hold a LogService under LOG, AUTH for callers and the
    STORE (whose disclosure an outcome entry is, for a calling service)."""
    app.router.add_get("/v1/log/checkpoint", get_checkpoint, name="log_checkpoint")
    app.router.add_get("/v1/log/entries/{index}", get_entry, name="log_entry")
    app.router.add_get("/v1/log/proof/inclusion", get_inclusion_proof, name="log_inclusion")
    app.router.add_get("/v1/log/proof/consistency", get_consistency_proof, name="log_consistency")
    app.router.add_get("/v1/log/key", get_key, name="log_key")
    app.router.add_get("/v1/log/keys", get_keys, name="log_keys")
