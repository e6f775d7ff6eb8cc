"""HTTP access to the disclosure log (CONTRACT §4.6): checkpoint, entries, proofs, key.

All but ``GET /v1/log/key`` need the reviewer role. Hashes are base64 and proofs list
them in RFC 9162 order, so any RFC 9162 verifier (or ``gateway log verify-proof``)
checks them against a checkpoint with only the public key.
"""

from __future__ import annotations

import json
import re
from typing import Final

from aiohttp import web

from gateway.errors import InvalidRequestError
from gateway.log.offline import b64
from gateway.web.http import caller_of, json_response
from gateway.web.keys import LOG

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
    await caller_of(request, REVIEWER)
    index = _number(request.match_info["index"], "index")
    number, entry, leaf = await request.app[LOG].record(index)
    return json_response(
        {
            "index": number,
            "leaf_hash": None if leaf is None else b64(leaf),
            "entry": json.loads(entry),
        }
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
    response = _text(request.app[LOG].signer.verifier_key + "\n")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def add_log_routes(app: web.Application) -> None:
    """Register §4.6; the app must hold a LogService under LOG (and AUTH for callers)."""
    app.router.add_get("/v1/log/checkpoint", get_checkpoint, name="log_checkpoint")
    app.router.add_get("/v1/log/entries/{index}", get_entry, name="log_entry")
    app.router.add_get("/v1/log/proof/inclusion", get_inclusion_proof, name="log_inclusion")
    app.router.add_get("/v1/log/proof/consistency", get_consistency_proof, name="log_consistency")
    app.router.add_get("/v1/log/key", get_key, name="log_key")
