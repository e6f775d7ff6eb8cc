"""Consents, restriction and the subject's profile over HTTP (CONTRACT §4.3, §4.7).

What the policy reads about a subject before a disclosure: a consent is recorded or
withdrawn, processing is restricted or not, the date of birth is set. Recording and
withdrawing a consent and setting a restriction are first `action` entries of the
disclosure log (gateway.log.actions; a restriction's reason only as its keyed hash).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.disclosure.flow import Gateway
from gateway.errors import NotFoundError
from gateway.log.actions import ActionLog, Person, target
from gateway.policy import dpv
from gateway.policy.facts import (
    Consent,
    check_consent_to_record,
    invalid,
    parse_consent,
    parse_date,
    profile_of_birth,
)
from gateway.rights.outbox import NoticeOutbox
from gateway.rights.withdrawal import check_consent_of, send_withdrawal_notices
from gateway.store import Store
from gateway.subject_id import check_subject_id
from gateway.web.http import body_of, json_response, path_subject, person_of
from gateway.web.keys import ACTIONS, GATEWAY, NOTICES, STORE
from gateway.web.routes.consent_records import (
    consent_of_record,
    get_consent_context,
    json_ld_response,
    prefers_json_ld,
    record_document,
    records_document,
)


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
    who = await person_of(request, "consent_writer")
    body = await body_of(request, also=f"{dpv.MEDIA_TYPE} for a W3C DPV consent record")
    gw = request.app[GATEWAY]
    now = gw.clock()
    consent_id = f"c-{uuid.uuid4()}"
    as_record = request.content_type == dpv.MEDIA_TYPE
    if as_record:
        consent = consent_of_record(
            body,
            consent_id=consent_id,
            now=now,
            controller=gw.config.controller,
            known_partners=gw.partners,
            policy_version=gw.config.policy.version,
        )
    else:
        if isinstance(body, dict) and ("id" in body or "withdrawn_at" in body):
            raise invalid(
                "'id' and 'withdrawn_at' are set by the gateway; withdraw with "
                "POST /v1/consents/{id}/withdraw"
            )
        consent = check_consent_to_record(
            parse_consent(body, consent_id=consent_id, now=now),
            known_partners=gw.partners,
            policy_version=gw.config.policy.version,
            now=now,
        )
    await request.app[ACTIONS].record(
        who, "consent_given", at=now, subject=consent.subject, consent_id=consent.id
    )
    await request.app[STORE].add_consent(consent)
    if as_record:
        return json_ld_response(record_document(request, consent, subject=consent.subject), 201)
    return json_response(consent_json(consent, subject=consent.subject), status=201)


async def withdrawing_subject(request: web.Request) -> str | None:
    """The optional body of a withdrawal, `{"subject": "<id>"}`: not needed (the log names
    the partners to tell, gateway.rights.withdrawal); when given, checked against the
    consent, and the act is then recorded against the subject (its report lists it)."""
    if not request.can_read_body:
        return None
    body = await body_of(request)
    if not isinstance(body, dict) or set(body) - {"subject"}:
        raise invalid('body must be empty or {"subject": "<the subject id of the consent>"}')
    if "subject" not in body:
        return None
    return check_subject_id(body["subject"], "'subject'")


async def withdraw_and_tell(
    gw: Gateway,
    store: Store,
    actions: ActionLog,
    who: Person,
    consent_id: str,
    subject: str | None,
    outbox: NoticeOutbox | None,
) -> dict[str, Any] | None:
    """A withdrawal after `check_consent_of`, as POST /v1/consents/{id}/withdraw and
    `gateway consent withdraw` make it: the act recorded, the consent withdrawn, every
    partner that received data under it told. The answer, None when the consent is gone."""
    # Named, the subject is the act's target (its keyed reference): its report lists it.
    if subject is not None:
        await actions.record(who, "consent_withdrawn", subject=subject, consent_id=consent_id)
    else:
        await actions.record(
            who,
            "consent_withdrawn",
            target=target("consent", consent_id[:200]),
            consent_id=consent_id,
        )
    # The withdrawal is committed before the answer: every disclosure that starts after
    # it, on any instance, reads it (policy VII.4).
    consent = await store.withdraw_consent(consent_id, gw.clock())
    if consent is None:
        return None
    answer = consent_json(consent, subject=subject)
    # The first attempt of every notice is made before the answer (a failed one waits in
    # the outbox): the answer says what each partner was told.
    notices = await send_withdrawal_notices(
        gw, store, gw.log_keys, who.id, consent, outbox=outbox, subject=subject
    )
    answer["notices"] = notices.as_json()
    return answer


async def withdraw_consent(request: web.Request) -> web.Response:
    who = await person_of(request, "consent_writer")
    consent_id = request.match_info["consent_id"]
    subject = await withdrawing_subject(request)
    store = request.app[STORE]
    await check_consent_of(store, consent_id, subject)
    gw = request.app[GATEWAY]
    answer = await withdraw_and_tell(
        gw, store, request.app[ACTIONS], who, consent_id, subject, request.app.get(NOTICES)
    )
    if answer is None:
        raise NotFoundError("no consent with this id")
    return json_response(answer)


async def get_subject_consents(request: web.Request) -> web.Response:
    who = await person_of(request, ("consent_writer", "rights_officer", "reviewer"))
    subject = path_subject(request)
    await request.app[ACTIONS].record(who, "read_subject_consents", subject=subject)
    consents = await request.app[STORE].consents_for_subject(subject)
    if prefers_json_ld(request.headers.get("Accept")):
        return json_ld_response(records_document(request, list(consents), subject=subject))
    return json_response({"consents": [consent_json(c, subject=subject) for c in consents]})


async def put_restriction(request: web.Request) -> web.Response:
    who = await person_of(request, ("consent_writer", "rights_officer"))
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
    now = request.app[GATEWAY].clock()
    action = "restrict" if body["restricted"] else "lift_restriction"
    await request.app[ACTIONS].record(who, action, at=now, subject=subject, text=reason)
    await request.app[STORE].set_restriction(subject, body["restricted"], reason, now)
    return json_response({"subject": subject, "restricted": body["restricted"]})


async def put_profile(request: web.Request) -> web.Response:
    who = await person_of(request, ("consent_writer", "rights_officer"))
    subject = path_subject(request)
    body = await body_of(request)
    if not isinstance(body, dict) or set(body) != {"date_of_birth"}:
        raise invalid('body must be {"date_of_birth": "YYYY-MM-DD"}')
    born = parse_date(body["date_of_birth"], "date_of_birth")
    await request.app[ACTIONS].record(who, "set_profile", subject=subject)
    await request.app[STORE].set_profile(subject, profile_of_birth(born))
    return json_response({"subject": subject, "date_of_birth": "set"})


def add_consent_routes(app: web.Application) -> None:
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
    app.router.add_get(dpv.CONTEXT_PATH, get_consent_context, name="consent_context")
