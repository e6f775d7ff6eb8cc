"""Lawful requests and subject rights over HTTP (CONTRACT §4.4, §4.5).

Every call needs an authenticated caller with the right role (policy VII:
"we will screen and verify all requests"), and every act and every read of a subject's
data is first an `action` entry of the disclosure log (gateway.log.actions): who, which
credential, what, when; if that entry cannot be written the call fails and nothing is done.
"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import InvalidRequestError, NotFoundError
from gateway.log.actions import Person, lawful_request_text, target
from gateway.rights import lawful_requests as legal_requests
from gateway.rights import subjects as rights
from gateway.web.http import (
    body_of,
    caller_of,
    credential_of,
    json_answer,
    json_response,
    path_subject,
    person_of,
    refusal_answer,
    response_of,
)
from gateway.web.keys import ACTIONS, GATEWAY, NOTICES, STORE

REGISTRARS = ("rights_officer", "reviewer")


async def post_legal_request(request: web.Request) -> web.Response:
    who = await person_of(request, REGISTRARS)
    gw = request.app[GATEWAY]
    record = legal_requests.parse_legal_request(
        await body_of(request), registered_by=who.id, known_partners=gw.partners, now=gw.clock()
    )
    await request.app[ACTIONS].record(
        who,
        "register_lawful_request",
        target=target("lawful_request", record.id),
        legal_request_id=record.id,
        text=lawful_request_text(record),
    )
    await request.app[STORE].add_legal_request(record)
    return json_response(legal_requests.legal_request_json(record), status=201)


async def approve_legal_request(request: web.Request) -> web.Response:
    who = await person_of(request, "reviewer")
    record = await legal_requests.approve(
        request.app[STORE],
        request.match_info["request_id"],
        who.id,
        request.app[GATEWAY].clock(),
        actions=request.app[ACTIONS],
        credential=who.credential,
    )
    return json_response(legal_requests.legal_request_json(record))


async def reject_legal_request(request: web.Request) -> web.Response:
    """A reviewer rejects a pending request, with a reason (`{"reason": "…"}`)."""
    who = await person_of(request, "reviewer")
    body = await body_of(request)
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise InvalidRequestError('a rejection must be a JSON object {"reason": "…"}')
    record = await legal_requests.reject(
        request.app[STORE],
        request.match_info["request_id"],
        who.id,
        body.get("reason"),
        request.app[GATEWAY].clock(),
        actions=request.app[ACTIONS],
        credential=who.credential,
    )
    return json_response(legal_requests.legal_request_json(record))


async def get_legal_request(request: web.Request) -> web.Response:
    await caller_of(request, REGISTRARS)
    record = await request.app[STORE].get_legal_request(request.match_info["request_id"])
    if record is None:
        raise NotFoundError("no such lawful request")
    return json_response(legal_requests.legal_request_json(record))


async def list_legal_requests(request: web.Request) -> web.Response:
    """Newest received first; `?status=pending|approved|rejected`."""
    await caller_of(request, REGISTRARS)
    records = await legal_requests.list_requests(request.app[STORE], request.query.get("status"))
    return json_response(
        {
            "legal_requests": [
                legal_requests.legal_request_json(r, with_subjects=False) for r in records
            ]
        }
    )


RIGHTS_READERS = ("rights_officer", "reviewer")


async def get_subject_disclosures(request: web.Request) -> web.Response:
    """VII.1 access and VII.5 portability: every recipient of the subject's data."""
    who = await person_of(request, RIGHTS_READERS)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequestError("format must be 'json' or 'csv'")
    gw = request.app[GATEWAY]
    subject = path_subject(request)
    await request.app[ACTIONS].record(who, "read_subject_report", subject=subject)
    rows = await rights.subject_report(request.app[STORE], gw.log_keys, gw.partners, subject)
    if fmt == "csv":
        return web.Response(
            text=rights.report_csv(rows),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="disclosures.csv"'},
        )
    acts = await rights.subject_actions(request.app[STORE], gw.log_keys, subject)
    return json_response({"subject": subject, "disclosures": rows, "actions": acts})


async def post_erasure(request: web.Request) -> web.StreamResponse:
    """VII.2: notify every partner that received the subject's data; an erasure also
    removes the gateway's own copy (rights.erase_own_copy). With an `Idempotency-Key`, a
    repeat answers the first result again and sends no notice."""
    officer = await caller_of(request, "rights_officer")
    who = Person(officer.id, credential_of(request, officer))
    subject = path_subject(request)
    body = await body_of(request)
    asked = body.get("kind") if isinstance(body, dict) else None
    action = "rectification_requested" if asked == "rectification" else "erasure_requested"
    await request.app[ACTIONS].record(who, action, subject=subject)
    answer = await rights.erase_or_rectify_once(
        request.app[GATEWAY],
        request.app[STORE],
        officer,
        subject,
        body,
        key=request.headers.get("Idempotency-Key"),
        render=lambda result: json_answer(result.as_json()),
        refusal=refusal_answer,
        outbox=request.app.get(NOTICES),
    )
    return response_of(answer)


def add_rights_routes(app: web.Application) -> None:
    app.router.add_get(
        "/v1/subjects/{subject}/disclosures", get_subject_disclosures, name="subject_disclosures"
    )
    app.router.add_post("/v1/subjects/{subject}/erasure", post_erasure, name="subject_erasure")
    app.router.add_post("/v1/legal-requests", post_legal_request, name="legal_requests")
    app.router.add_get("/v1/legal-requests", list_legal_requests, name="legal_requests_list")
    app.router.add_get("/v1/legal-requests/{request_id}", get_legal_request, name="legal_request")
    app.router.add_post(
        "/v1/legal-requests/{request_id}/approve",
        approve_legal_request,
        name="legal_request_approve",
    )
    app.router.add_post(
        "/v1/legal-requests/{request_id}/reject",
        reject_legal_request,
        name="legal_request_reject",
    )
