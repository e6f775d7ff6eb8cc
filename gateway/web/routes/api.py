"""JSON API handlers (CONTRACT §4.1–4.3, 4.7): parse, call the pipeline or store, render.

Answers a repeat with the same Idempotency-Key gets again are built as `StoredResponse`
values (`disclosed_answer`, `refusal_answer`, `json_answer`) and sent by `response_of`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.callers.tokens import CallerAuthenticator, require_role
from gateway.config.model import Caller
from gateway.disclosure.flow import Disclosed, Gateway, disclose_once, evaluate
from gateway.errors import ForbiddenError, GatewayError, NotFoundError
from gateway.observe.app_log import bind
from gateway.policy.facts import (
    Consent,
    check_consent_to_record,
    invalid,
    parse_consent,
    parse_date,
    profile_of_birth,
)
from gateway.policy.request import parse_disclosure_request
from gateway.problem_catalog import LOG_RETRY_AFTER_S
from gateway.store.base import Store, StoredResponse
from gateway.subject_id import check_subject_id
from gateway.web.problems import problem_response, read_json
from gateway.web.tls import certificate_caller_id

GATEWAY = web.AppKey("gateway", Gateway)
AUTH = web.AppKey("auth", CallerAuthenticator)
STORE = web.AppKey("store", Store)


async def caller_of(request: web.Request, role: str | tuple[str, ...]) -> Caller:
    """The authenticated caller (bearer token, else a verified client certificate) holding
    one of `role`."""
    authorization = request.headers.get("Authorization")
    common_name = None if authorization else certificate_caller_id(request)
    if common_name is not None:
        found = request.app[GATEWAY].config.callers.get(common_name)
        if found is None:
            raise ForbiddenError(
                "the client certificate's subject is not a "
                "configured caller ([[callers]] id = certificate CN)",
            )
        caller = found
    else:
        caller = await request.app[AUTH].authenticate(authorization)
    roles = (role,) if isinstance(role, str) else role
    if not any(r in caller.roles for r in roles):
        require_role(caller, roles[0])
    bind(caller=caller.id)
    return caller


async def body_of(request: web.Request) -> Any:
    server = request.app[GATEWAY].config.server
    return await read_json(request, max_depth=server.max_json_depth, max_body=server.max_body_bytes)


def path_subject(request: web.Request) -> str:
    """The `{subject}` of a /v1/subjects/… path, checked against the one subject-id grammar."""
    return check_subject_id(request.match_info["subject"], "the subject id in the path")


def json_response(value: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode("utf-8"), content_type="application/json"
    )


# -- disclosures --------------------------------------------------------------


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
    return StoredResponse(result.status, headers, result.body)


def refusal_answer(error: GatewayError) -> StoredResponse:
    """A refusal as problem+json, as an answer an Idempotency-Key repeat gets again."""
    rendered = problem_response(error)
    assert isinstance(rendered.body, bytes)
    return StoredResponse(rendered.status, dict(rendered.headers), rendered.body)


def json_answer(value: object, status: int = 200) -> StoredResponse:
    body = json.dumps(value).encode("utf-8")
    return StoredResponse(status, {"Content-Type": "application/json"}, body)


def response_of(answer: StoredResponse) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


async def post_decision(request: web.Request) -> web.Response:
    caller = await caller_of(request, "discloser")
    disclosure = parse_disclosure_request(await body_of(request))
    decision = await evaluate(request.app[GATEWAY], caller, disclosure)
    return json_response(decision.as_json())


# -- consents, restriction, profile ---------------------------------------------


def consent_json(consent: Consent, *, subject: str | None) -> dict[str, Any]:
    """A consent as answered. `subject` is the id the request named (the store keeps only
    a keyed reference): None leaves it out, for a consent named by its own id."""

    def when(value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    shown = {} if subject is None else {"subject": subject}
    return {
        "id": consent.id,
        **shown,
        "purposes": sorted(consent.purposes),
        "partners": sorted(consent.partners),
        "partner_categories": sorted(consent.partner_categories),
        "special_categories": sorted(consent.special_categories),
        "policy_version": consent.policy_version,
        "obtained_at": when(consent.obtained_at),
        "expires_at": when(consent.expires_at),
        "withdrawn_at": when(consent.withdrawn_at),
        "method": consent.method,
        "evidence": consent.evidence,
    }


async def post_consent(request: web.Request) -> web.Response:
    await caller_of(request, "consent_writer")
    body = await body_of(request)
    if isinstance(body, dict) and ("id" in body or "withdrawn_at" in body):
        raise invalid(
            "'id' and 'withdrawn_at' are set by the gateway; withdraw with "
            "POST /v1/consents/{id}/withdraw"
        )
    gw = request.app[GATEWAY]
    now = gw.clock()
    consent = check_consent_to_record(
        parse_consent(body, consent_id=f"c-{uuid.uuid4()}", now=now),
        known_partners=gw.partners,
        policy_version=gw.config.policy.version,
        now=now,
    )
    await request.app[STORE].add_consent(consent)
    return json_response(consent_json(consent, subject=consent.subject), status=201)


async def withdraw_consent(request: web.Request) -> web.Response:
    await caller_of(request, "consent_writer")
    consent_id = request.match_info["consent_id"]
    # The withdrawal is committed before this response: every disclosure that starts
    # after it, on any instance, reads it (policy VII.4).
    consent = await request.app[STORE].withdraw_consent(consent_id, request.app[GATEWAY].clock())
    if consent is None:
        raise NotFoundError("no consent with this id")
    return json_response(consent_json(consent, subject=None))


async def get_subject_consents(request: web.Request) -> web.Response:
    await caller_of(request, ("consent_writer", "rights_officer", "reviewer"))
    subject = path_subject(request)
    consents = await request.app[STORE].consents_for_subject(subject)
    return json_response({"consents": [consent_json(c, subject=subject) for c in consents]})


async def put_restriction(request: web.Request) -> web.Response:
    await caller_of(request, ("consent_writer", "rights_officer"))
    subject = path_subject(request)
    body = await body_of(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("restricted"), bool)
        or set(body) - {"restricted", "reason"}
    ):
        raise invalid('body must be {"restricted": true|false, "reason": "…"}')
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 2000:
        raise invalid("'reason' must be a string of at most 2000 characters")
    await request.app[STORE].set_restriction(
        subject, body["restricted"], reason, request.app[GATEWAY].clock()
    )
    return json_response({"subject": subject, "restricted": body["restricted"]})


async def put_profile(request: web.Request) -> web.Response:
    await caller_of(request, ("consent_writer", "rights_officer"))
    subject = path_subject(request)
    body = await body_of(request)
    if not isinstance(body, dict) or set(body) != {"date_of_birth"}:
        raise invalid('body must be {"date_of_birth": "YYYY-MM-DD"}')
    born = parse_date(body["date_of_birth"], "date_of_birth")
    await request.app[STORE].set_profile(subject, profile_of_birth(born))
    return json_response({"subject": subject, "date_of_birth": "set"})


# -- operations -------------------------------------------------------------------


async def get_jwks(request: web.Request) -> web.Response:
    response = json_response(request.app[GATEWAY].keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except GatewayError as exc:
        not_ready = json_response({"status": "unavailable", "storage": exc.detail}, status=503)
        # The store is tried afresh on every request: ask again when a disclosure would.
        not_ready.headers["Retry-After"] = f"{LOG_RETRY_AFTER_S:.0f}"
        return not_ready
    return json_response(
        {
            "status": "ready",
            "storage": "ok",
            "signing_keys": len(request.app[GATEWAY].keys.jwks()["keys"]),
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/disclosures", post_disclosure, name="disclosures")
    app.router.add_post("/v1/decisions", post_decision, name="decisions")
    app.router.add_post("/v1/consents", post_consent, name="consents")
    app.router.add_post(
        "/v1/consents/{consent_id}/withdraw", withdraw_consent, name="consent_withdraw"
    )
    app.router.add_get(
        "/v1/subjects/{subject}/consents", get_subject_consents, name="subject_consents"
    )
    app.router.add_put(
        "/v1/subjects/{subject}/restriction", put_restriction, name="subject_restriction"
    )
    app.router.add_put("/v1/subjects/{subject}/profile", put_profile, name="subject_profile")
    app.router.add_get("/.well-known/jwks.json", get_jwks, name="jwks")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
