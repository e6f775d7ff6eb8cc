"""The disclosure pipeline: one request from an internal service to one partner.

Reads top to bottom (STYLE §8): decide → minimize → log intent (durable; the
payload is signed and encrypted while it commits) → send with retries → log
outcome → answer. Only the intent is waited for: outcome and refusal entries
record what already happened, so they commit while the answer goes back (readers
in this instance wait for them, see ``gateway.web.log_settled``).
Authentication happens in the web layer before this, idempotency around it
(`gateway.disclosure.idempotency`); collaborators arrive as one `Gateway` value built by the
composition root (`gateway.disclosure.gateway`), and each disclosure's own values as one
`Attempt`. How a refusal before the intent is logged: `gateway.disclosure.refusals`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from yarl import URL

from gateway.config.model import Caller
from gateway.crypto.acknowledgement import (
    ACK_STATUS_HEADER,
    INVALID,
    MISSING,
    AcknowledgementInvalid,
    check_acknowledgement,
    received_sha256,
)
from gateway.crypto.seal import PartnerKey, claims_for
from gateway.disclosure.gateway import Disclosed, Gateway, ack_status, new_disclosure_id
from gateway.disclosure.idempotency import Refusal, once, request_digest
from gateway.disclosure.refusals import (
    Arrival,
    PolicyRefusal,
    early_refusal_logged,
    refusal_logged,
)
from gateway.disclosure.spans import (
    OUTCOME,
    of_disclosure,
    of_entry,
    of_request,
    of_step,
    step_span,
)
from gateway.errors import GatewayError, LogUnavailableError
from gateway.log.entries import intent_entry, outcome_entry
from gateway.observe.app_log import bind
from gateway.observe.tracing import annotate
from gateway.outbound.delivery import DeliveryError, PartnerReply
from gateway.outbound.partner_url import build_url
from gateway.partners.model import NO_PARTNER_STATE, Operation, Partner, current
from gateway.policy.decide import Decision, decide
from gateway.policy.facts import SubjectFacts
from gateway.policy.minimize import FieldPlan, minimize
from gateway.policy.request import (
    DisclosureRequest,
    check_field_names,
    parse_disclosure_request,
)
from gateway.problem_catalog import LOG_RETRY_AFTER_S
from gateway.store.ports import IdempotencyStore
from gateway.store.records import StoredResponse

# The flow's public surface, with the values it takes and gives (gateway.disclosure.gateway),
# so a handler imports the flow from one place.
__all__ = ["Disclosed", "Gateway", "disclose", "disclose_once", "evaluate"]

JOSE = "application/jose"

log = logging.getLogger(__name__)


async def evaluate(
    gw: Gateway,
    caller: Caller,
    request: DisclosureRequest,
    facts: SubjectFacts | None = None,
    *,
    partners: Mapping[str, Partner] | None = None,
) -> Decision:
    """The decision for `request` against the stored facts (the dry run of §4.2), or
    against `facts` when the gateway itself supplies them (erasure notices).
    `partners` is the table the caller took for this request (default: the one in force)."""
    check_field_names(request.data)  # a malformed name is refused, not decided on
    table = current(gw.partners) if partners is None else partners
    if facts is None:
        facts = await gw.facts.subject_facts(request.subject, request.legal_request)
    partner = table.get(request.partner)
    state = (
        await gw.partner_states.state_of(partner)
        if gw.partner_states is not None and partner is not None
        else NO_PARTNER_STATE
    )
    return decide(request, caller, table, facts, gw.config.policy, gw.clock(), state)


@step_span("disclosure", lambda _gw, _caller, request, **_: of_request(request))
async def disclose(
    gw: Gateway,
    caller: Caller,
    request: DisclosureRequest,
    *,
    facts: SubjectFacts | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> Disclosed:
    """`_disclose` within the partner's load limits: over them, 429 (or 503 when the log's
    commit queue is full) at once, before anything is logged (gateway.disclosure.limits)."""
    with gw.admission.partner_admitted(caller, current(gw.partners).get(request.partner)):
        return await _disclose(gw, caller, request, facts, extra_claims)


async def _disclose(
    gw: Gateway,
    caller: Caller,
    request: DisclosureRequest,
    facts: SubjectFacts | None,
    extra_claims: Mapping[str, Any] | None,
) -> Disclosed:
    """Partner and operation → decide → minimize → seal while the intent commits → deliver →
    log the outcome → answer. The web layer authenticated the caller; each step before the
    intent logs its refusal as one `refused` entry (`refusal_logged`)."""
    arrival = _arrive(gw, caller, request)  # its id and time, the partner table it keeps
    allowed = await _decide(gw, arrival, facts)
    minimized = await _minimize(gw, arrival, allowed)
    url = await _partner_url(gw, arrival, allowed, minimized)
    attempt = await _attempt(gw, arrival, allowed)  # with the partner's key to seal to
    intent = _intent(gw, attempt, minimized)
    seal = functools.partial(_seal, gw, attempt, minimized, extra_claims)
    sealed = await _seal_while_intent_commits(gw, attempt, intent, seal)
    sent = _acknowledged(gw, attempt, sealed, await _deliver(gw, attempt, sealed, url))
    _log_outcome(gw, attempt, sent)
    return _answer(gw, attempt, sent)


@dataclass(frozen=True)
class _Allowed:
    """What the decision allowed: the partner and operation it found, and its reasons."""

    decision: Decision
    partner: Partner
    operation: Operation


@dataclass(frozen=True)
class Attempt:
    """One allowed disclosure on its way out: what its seal, its log entries and its
    delivery name."""

    id: str
    at: datetime
    caller: Caller
    request: DisclosureRequest
    partner: Partner
    operation: Operation
    decision: Decision
    recipient: PartnerKey  # the partner's encryption key the payload is sealed to


@dataclass(frozen=True)
class Sent:
    """What became of a send (or of its seal): the partner's reply, or the failure."""

    started: float  # time.perf_counter() when the step began, for the metrics
    reply: PartnerReply | None = None
    error: Exception | None = None  # a DeliveryError, or what stopped the seal
    # For a partner asking for acknowledgements: what its outcome entry records of its
    # receipt, (the verified token, None) or ("missing" | "invalid", the reason code).
    ack: tuple[str, str | None] | None = None


def _arrive(gw: Gateway, caller: Caller, request: DisclosureRequest) -> Arrival:
    partners = current(gw.partners)
    arrival = Arrival(
        new_disclosure_id(), gw.clock(), caller, request, partners, partners.get(request.partner)
    )
    bind(disclosure_id=arrival.id, partner=arrival.partner.id if arrival.partner else None)
    annotate(lambda: of_disclosure(arrival))
    return arrival


@step_span("decide", of_step)
@refusal_logged("decide")
async def _decide(gw: Gateway, arrival: Arrival, facts: SubjectFacts | None) -> _Allowed:
    request = arrival.request
    decision = await evaluate(gw, arrival.caller, request, facts, partners=arrival.partners)
    if not decision.allowed or arrival.partner is None:
        raise PolicyRefusal(decision)
    return _Allowed(decision, arrival.partner, arrival.partner.operations[request.operation])


@step_span("minimize", of_step)
@refusal_logged("minimize")
async def _minimize(gw: Gateway, arrival: Arrival, allowed: _Allowed) -> dict[str, Any]:
    decision = allowed.decision
    return minimize(
        arrival.request.data,
        FieldPlan(decision.disclosed, decision.withheld_reasons),
        pseudonym_key=gw.pseudonym_key(allowed.partner.id),
        today=arrival.at.date(),
    )


@refusal_logged("partner_url")
async def _partner_url(
    gw: Gateway, arrival: Arrival, allowed: _Allowed, minimized: Mapping[str, Any]
) -> URL:
    return build_url(allowed.partner, allowed.operation, minimized)  # a bad placeholder: refused


@refusal_logged("partner_key")
async def _attempt(gw: Gateway, arrival: Arrival, allowed: _Allowed) -> Attempt:
    recipient = await gw.partner_keys.key_for(allowed.partner)
    a = arrival
    return Attempt(
        a.id,
        a.at,
        a.caller,
        a.request,
        allowed.partner,
        allowed.operation,
        allowed.decision,
        recipient,
    )


def _intent(gw: Gateway, attempt: Attempt, minimized: Mapping[str, Any]) -> dict[str, Any]:
    return intent_entry(
        disclosure_id=attempt.id,
        caller=attempt.caller.id,
        request=attempt.request,
        partner=attempt.partner,
        operation=attempt.operation,
        decision=attempt.decision,
        minimized=minimized,
        at=attempt.at,
        keys=gw.log_keys,
        policy_version=gw.config.policy.version,
    )


async def _seal_while_intent_commits(
    gw: Gateway, attempt: Attempt, intent: Mapping[str, Any], seal: Callable[[], bytes]
) -> bytes:
    """Seal while the intent commits, then wait for it: nothing leaves before it is durable.

    The store's thread (SQLite) or server (PostgreSQL) writes and syncs the intent while
    this thread does the crypto, so a disclosure pays for the longer of the two, not both.
    A seal that fails after the intent committed gets a `failed` outcome (nothing sent).
    """
    committing = asyncio.ensure_future(_log_intent(gw, intent))
    # Two turns of the loop: one for the entry to join the writer's queue, one for the
    # writer's commit to reach the store (tests/unit/disclosure/test_pipeline.py checks the order).
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        sealed = seal()
    except Exception as exc:
        await committing  # log_unavailable instead, if the intent did not commit either
        _log_outcome(gw, attempt, Sent(started, error=exc))
        if isinstance(exc, GatewayError) and exc.disclosure_id is None:
            exc.disclosure_id = attempt.id  # logged: its outcome says so
        raise
    await committing
    return sealed


@step_span("seal", of_step)
def _seal(
    gw: Gateway,
    attempt: Attempt,
    minimized: Mapping[str, Any],
    extra_claims: Mapping[str, Any] | None,
) -> bytes:
    """The compact JWE of the signed JWT (CONTRACT §4.1) for the partner's key."""
    extra = dict(extra_claims or {})
    if attempt.decision.bound_by_policy_version:
        extra["bound_by_policy_version"] = attempt.decision.bound_by_policy_version
    claims = claims_for(
        issuer=gw.config.log.origin,
        partner_id=attempt.partner.id,
        disclosure_id=attempt.id,
        purpose=attempt.request.purpose,
        legal_basis=attempt.request.legal_basis,
        data=minimized,
        now=attempt.at,
        extra=extra,
    )
    enc = attempt.partner.encryption
    token = gw.keys.seal(
        claims, sign_alg=enc.sign_alg, recipient=attempt.recipient, alg=enc.alg, enc=enc.enc
    )
    return token.encode("ascii")


async def _deliver(gw: Gateway, attempt: Attempt, sealed: bytes, url: URL) -> Sent:
    """Send with retries: the partner's reply, or the failure (raised by `_answer`, after
    `_log_outcome` has recorded it)."""
    started = time.perf_counter()
    try:
        reply = await gw.outbound.deliver(
            attempt.partner,
            attempt.operation,
            body=sealed,
            content_type=JOSE,
            url=url,
            disclosure_id=attempt.id,
        )
    except DeliveryError as exc:
        exc.disclosure_id = attempt.id
        return Sent(started, error=exc)
    return Sent(started, reply=reply)


def _acknowledged(gw: Gateway, attempt: Attempt, sealed: bytes, sent: Sent) -> Sent:
    """`sent` with the partner's acknowledgement checked, when its file asks for one and it
    accepted the disclosure (a 2xx: a refusal acknowledges nothing). A missing or invalid
    one does not undo the delivery — the partner did receive it — it is recorded, counted
    and told to the caller."""
    reply = sent.reply
    partner = attempt.partner
    if reply is None or partner.acknowledgement != "jws" or not 200 <= reply.status < 300:
        return sent
    try:
        ack = check_acknowledgement(
            reply.acknowledgement,
            disclosure_id=attempt.id,
            sent_sha256=received_sha256(sealed),
            keys=partner.acknowledgement_keys,
        )
    except AcknowledgementInvalid as exc:
        result = MISSING if exc.reason == MISSING else INVALID
        # Ids and a reason code only: the detail may quote what the partner sent.
        log.warning(
            "partner %s acknowledgement of %s %s (%s)", partner.id, attempt.id, result, exc.reason
        )
        gw.metrics.acknowledged(partner.id, result, exc.reason)
        return dataclasses.replace(sent, ack=(result, exc.reason))
    gw.metrics.acknowledged(partner.id, "valid", "")
    return dataclasses.replace(sent, ack=(ack.token, None))


@step_span(
    "outcome",
    lambda _gw, attempt, sent: of_disclosure(
        attempt, **{OUTCOME: "sent" if sent.reply is not None else "failed"}
    ),
)
def _log_outcome(gw: Gateway, attempt: Attempt, sent: Sent) -> None:
    """The outcome entry, and the metrics, of a send or of a seal that failed."""
    reply, error = sent.reply, sent.error
    details: dict[str, Any]
    if reply is not None:
        attempts, details = reply.attempts, {"partner_status": reply.status}
    else:
        failed = error if isinstance(error, DeliveryError) else None
        attempts = failed.attempts if failed is not None else 0
        details = {
            "problem": error.code if isinstance(error, GatewayError) else "internal_error",
            "maybe_received": failed.reached_partner if failed is not None else False,
        }
    outcome = "sent" if reply is not None else "failed"
    # The partner has answered: the answer goes back while the outcome entry commits
    # (gateway.log.recovery.InFlightLog.append_later keeps it if the store is away).
    gw.log.append_later(
        outcome_entry(
            disclosure_id=attempt.id,
            outcome=outcome,
            at=gw.clock(),
            partner=attempt.partner.id,
            attempts=attempts,
            ack=sent.ack,
            **details,
        )
    )
    request = attempt.request
    seconds = time.perf_counter() - sent.started
    gw.metrics.delivered(
        attempt.partner.id, request.purpose, request.legal_basis, outcome, seconds, attempts
    )


def _answer(gw: Gateway, attempt: Attempt, sent: Sent) -> Disclosed:
    """The partner's reply as the caller gets it (a sealed one opened), or the failure."""
    if sent.reply is None:
        assert sent.error is not None
        raise sent.error
    reply = sent.reply
    content_type, body = reply.content_type, reply.body
    if content_type.split(";")[0].strip() == JOSE:
        try:
            body, content_type = gw.keys.open_response(body), "application/json"
        except GatewayError as exc:  # it was sent, and its outcome entry says so
            exc.disclosure_id = attempt.id
            raise
    fields = tuple(name for name in attempt.decision.disclosed if "." not in name)
    return Disclosed(
        attempt.id,
        reply.status,
        content_type,
        body,
        fields,
        attempt.decision,
        acknowledgement=ack_status(sent.ack),
    )


@step_span("intent_commit", of_entry)
async def _log_intent(gw: Gateway, entry: Mapping[str, Any]) -> None:
    """Fail closed: if the intent is not durable, nothing is sent."""
    started = time.perf_counter()
    try:
        await gw.log.append(entry)
    except GatewayError as exc:
        raise LogUnavailableError(
            "the disclosure log cannot be written, so nothing was sent; retry when the "
            "store is back (GET /readyz)",
            disclosure_id=str(entry["disclosure_id"]),
            retry_after_s=LOG_RETRY_AFTER_S,
        ) from exc
    gw.metrics.log_append_seconds.observe(time.perf_counter() - started)


async def disclose_once(
    gw: Gateway,
    keys: IdempotencyStore,
    caller: Caller,
    read_body: Callable[[], Awaitable[object]],
    *,
    key: str | None,
    render: Callable[[Disclosed], StoredResponse],
    refusal: Refusal,
) -> StoredResponse:
    """POST /v1/disclosures for an authenticated caller: read → parse → disclose, once per
    Idempotency-Key (`disclosure.idempotency`). A refusal before the pipeline has a request (a
    body that does not read or parse, a key in conflict) is logged here, once; the
    pipeline logs its own. `render` and `refusal` are the web layer's: the answer as bytes."""

    async def answer() -> StoredResponse:
        with early_refusal_logged(gw, caller):
            request = parse_disclosure_request(body)
        return render(await disclose(gw, caller, request))

    # The caller's limits before anything is read, the partner's before the Idempotency-Key
    # is looked at: a shed request is neither logged nor kept, and costs no store write.
    with gw.admission.caller_admitted(caller), early_refusal_logged(gw, caller):
        body = await read_body()
        gw.admission.check_partner(caller, _partner_named(gw, body))
        digest = request_digest(body) if key is not None else ""  # no key: nothing to bind
        return await once(
            keys,
            caller.id,
            key,
            digest,
            answer,
            refusal=refusal,
            kept_headers=(
                "Content-Type",
                "Disclosure-Id",
                "Disclosure-Fields",
                ACK_STATUS_HEADER,
            ),
            what="disclosure",
        )


def _partner_named(gw: Gateway, body: object) -> Partner | None:
    """The partner a disclosure body names, if it names one in force; the parse that
    refuses a body comes later, under the Idempotency-Key."""
    name = body.get("partner") if isinstance(body, dict) else None
    return current(gw.partners).get(name) if isinstance(name, str) else None
