"""Disclosures and decisions over HTTP (CONTRACT §4.1, §4.2): parse, call the flow, render.

A disclosure's answer is built as a `StoredResponse` (`disclosed_answer`, or the refusal's
problem+json), so a repeat with the same Idempotency-Key gets the same answer again.
"""

from __future__ import annotations

from aiohttp import web

from gateway.crypto.acknowledgement import ACK_STATUS_HEADER
from gateway.disclosure.flow import Disclosed, disclose_once, evaluate
from gateway.policy.request import parse_disclosure_request
from gateway.store.records import StoredResponse
from gateway.web.http import body_of, caller_of, json_response, refusal_answer, response_of
from gateway.web.keys import GATEWAY, STORE
from gateway.web.routes.receipts import receipt_link


async def post_disclosure(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request, "discloser")
    answer = await disclose_once(
        request.app[GATEWAY],
        request.app[STORE],
        caller,
        lambda: body_of(request),
        key=request.headers.get("Idempotency-Key"),
        render=disclosed_answer,
        refusal=refusal_answer,
    )
    return response_of(answer)


def disclosed_answer(result: Disclosed) -> StoredResponse:
    """The partner's answer with what the caller needs to know of the disclosure."""
    headers = {
        "Content-Type": result.content_type or "application/octet-stream",
        "Disclosure-Id": result.disclosure_id,
        "Disclosure-Fields": ",".join(result.fields),
    }
    if result.acknowledgement is not None:
        headers[ACK_STATUS_HEADER] = result.acknowledgement
    if 200 <= result.status < 300:
        # Sent, with an intent entry in the log: where its receipt will be (§4.6).
        headers["Link"] = receipt_link(result.disclosure_id)
    return StoredResponse(result.status, headers, result.body)


async def post_decision(request: web.Request) -> web.Response:
    caller = await caller_of(request, "discloser")
    disclosure = parse_disclosure_request(await body_of(request))
    decision = await evaluate(request.app[GATEWAY], caller, disclosure)
    return json_response(decision.as_json())


def add_disclosure_routes(app: web.Application) -> None:
    app.router.add_post("/v1/disclosures", post_disclosure, name="disclosures")
    app.router.add_post("/v1/decisions", post_decision, name="decisions")
