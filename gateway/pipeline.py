"""The disclosure pipeline: one request from an internal service to one partner.

Reads top to bottom (STYLE §8): decide → minimize → log intent (durable; the
payload is signed and encrypted while it commits) → send with retries → log
outcome → answer. Only the intent is waited for: outcome and refusal entries
record what already happened, so they commit while the answer goes back (readers
in this instance wait for them, see ``gateway.web.app.log_settled``).
Authentication and idempotency happen in the web layer before this;
collaborators arrive as one `Gateway` value built by the composition root.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from yarl import URL

from gateway.config import Caller, Config
from gateway.crypto import GatewayKeys, PartnerKey, claims_for
from gateway.errors import GatewayError
from gateway.facts import SubjectFacts
from gateway.log.entries import (
    LogKeys,
    intent_entry,
    outcome_entry,
    refused_entry,
    refused_without_request,
)
from gateway.logs import bind
from gateway.metrics import Metrics
from gateway.minimize import FieldPlan, minimize
from gateway.outbound import DeliveryError, PartnerReply, build_url
from gateway.partners import NO_PARTNER_STATE, Operation, Partner, PartnerState, current
from gateway.policy import Decision, decide
from gateway.problem_catalog import KEY_RECHECK_S, LOG_RETRY_AFTER_S
from gateway.request import DisclosureRequest, FieldNamesRefused, check_field_names

JOSE = "application/jose"


class FactsSource(Protocol):
    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts: ...


class DisclosureLog(Protocol):
    async def append(self, entry: Mapping[str, Any]) -> int: ...
    def append_soon(self, entry: Mapping[str, Any]) -> None: ...


class PartnerStates(Protocol):
    async def state_of(self, partner: Partner) -> PartnerState: ...


class PartnerKeys(Protocol):
    async def key_for(self, partner: Partner, kid: str | None = None) -> PartnerKey: ...


class Delivery(Protocol):
    async def deliver(
        self,
        partner: Partner,
        operation: Operation,
        *,
        body: bytes,
        content_type: str,
        url: URL,
        disclosure_id: str,
    ) -> PartnerReply: ...


@dataclass(frozen=True)
class Gateway:
    """Everything a disclosure needs, wired once by `web.app.create_app`."""

    config: Config
    partners: Mapping[str, Partner]
    facts: FactsSource
    log: DisclosureLog
    keys: GatewayKeys
    partner_keys: PartnerKeys
    outbound: Delivery
    log_keys: LogKeys
    pseudonym_key: Callable[[str], bytes]
    clock: Callable[[], datetime]
    metrics: Metrics = field(default_factory=Metrics)
    # Suspensions and key expiry (gateway.lifecycle.PartnerStates); None: nothing known.
    partner_states: PartnerStates | None = None


@dataclass(frozen=True)
class Disclosed:
    disclosure_id: str
    status: int
    content_type: str
    body: bytes
    fields: tuple[str, ...]
    decision: Decision


def new_disclosure_id() -> str:
    return f"d-{uuid.uuid4()}"


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


async def disclose(
    gw: Gateway,
    caller: Caller,
    request: DisclosureRequest,
    *,
    facts: SubjectFacts | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> Disclosed:
    """Decide → minimize → log intent (durable), sealing while it commits → send →
    queue the outcome entry → answer."""
    disclosure_id = new_disclosure_id()
    now = gw.clock()
    partners = current(gw.partners)  # one table for the whole request, whatever a reload does
    partner = partners.get(request.partner)
    bind(disclosure_id=disclosure_id, partner=partner.id if partner is not None else None)
    # Every refusal before the intent, whatever step raised it (a policy refusal, a field
    # that cannot be transformed, a partner key that cannot be fetched or has expired),
    # is one `refused` entry; after the intent, the outcome entry records it.
    step = "decide"
    try:
        decision = await evaluate(gw, caller, request, facts, partners=partners)
        if not decision.allowed or partner is None:
            raise _PolicyRefusal(decision)
        operation = partner.operations[request.operation]
        step = "minimize"
        minimized = minimize(
            request.data,
            FieldPlan(decision.disclosed, decision.withheld_reasons),
            pseudonym_key=gw.pseudonym_key(partner.id),
            today=now.date(),
        )
        step = "partner_url"
        url = build_url(partner, operation, minimized)  # a bad placeholder is refused here
        step = "partner_key"
        recipient = await gw.partner_keys.key_for(partner)
    except Exception as exc:
        _log_refusal(gw, disclosure_id, caller, request, partner, exc, step, now)
        if isinstance(exc, _PolicyRefusal):
            problem, detail = str(exc.decision.problem), exc.decision.detail
            raise GatewayError(
                problem,
                detail,
                disclosure_id=disclosure_id,
                retry_after_s=_refusal_retry_after(problem, partner),
            ) from None
        if isinstance(exc, GatewayError) and exc.disclosure_id is None:
            exc.disclosure_id = disclosure_id
        raise
    intent = intent_entry(
        disclosure_id=disclosure_id,
        caller=caller.id,
        request=request,
        partner=partner,
        operation=operation,
        decision=decision,
        minimized=minimized,
        at=now,
        keys=gw.log_keys,
        policy_version=gw.config.policy.version,
    )
    sealed = await _seal_while_intent_commits(
        gw,
        request,
        partner,
        intent,
        functools.partial(
            _seal,
            gw,
            partner,
            recipient,
            request,
            decision,
            minimized,
            disclosure_id,
            now,
            extra_claims,
        ),
    )
    reply = await _deliver(gw, partner, operation, request, sealed, url, disclosure_id)
    content_type, body = reply.content_type, reply.body
    if content_type.split(";")[0].strip() == JOSE:
        body, content_type = _open_reply(gw, body, disclosure_id), "application/json"
    fields = tuple(name for name in decision.disclosed if "." not in name)
    return Disclosed(disclosure_id, reply.status, content_type, body, fields, decision)


def _refusal_retry_after(problem: str, partner: Partner | None) -> float | None:
    """Of the policy's refusals only partner_key_expired can pass later by itself: when the
    partner publishes a key at its JWKS URL, which the gateway looks at every
    KEY_RECHECK_S while all keys have expired. A key file waits for an operator."""
    if problem == "partner_key_expired" and partner is not None:
        return KEY_RECHECK_S if partner.encryption.public_key_url is not None else None
    return None


async def _seal_while_intent_commits(
    gw: Gateway,
    request: DisclosureRequest,
    partner: Partner,
    intent: Mapping[str, Any],
    seal: Callable[[], bytes],
) -> bytes:
    """Seal while the intent commits, then wait for it: nothing leaves before it is durable.

    The store's thread (SQLite) or server (PostgreSQL) writes and syncs the intent while
    this thread does the crypto, so a disclosure pays for the longer of the two, not both.
    A seal that fails after the intent committed gets a `failed` outcome (nothing sent).
    """
    committing = asyncio.ensure_future(_log_intent(gw, intent))
    # Two turns of the loop: one for the entry to join the writer's queue, one for the
    # writer's commit to reach the store (tests/unit/test_pipeline.py checks the order).
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        sealed = seal()
    except Exception as exc:
        await committing  # log_unavailable instead, if the intent did not commit either
        problem = exc.code if isinstance(exc, GatewayError) else "internal_error"
        _record_outcome(
            gw,
            request,
            partner,
            str(intent["disclosure_id"]),
            started,
            "failed",
            0,
            problem=problem,
            maybe_received=False,
        )
        if isinstance(exc, GatewayError) and exc.disclosure_id is None:
            exc.disclosure_id = str(intent["disclosure_id"])  # logged: its outcome says so
        raise
    await committing
    return sealed


def _open_reply(gw: Gateway, body: bytes, disclosure_id: str) -> bytes:
    """The partner's sealed answer opened; an answer that does not open is refused with the
    disclosure's id (it was sent, and its outcome entry says so)."""
    try:
        return gw.keys.open_response(body)
    except GatewayError as exc:
        exc.disclosure_id = disclosure_id
        raise


def _seal(
    gw: Gateway,
    partner: Partner,
    recipient: PartnerKey,
    request: DisclosureRequest,
    decision: Decision,
    minimized: Mapping[str, Any],
    disclosure_id: str,
    now: datetime,
    extra_claims: Mapping[str, Any] | None,
) -> bytes:
    """The compact JWE of the signed JWT (CONTRACT §4.1) for the partner's key."""
    extra = dict(extra_claims or {})
    if decision.bound_by_policy_version:
        extra["bound_by_policy_version"] = decision.bound_by_policy_version
    claims = claims_for(
        issuer=gw.config.log.origin,
        partner_id=partner.id,
        disclosure_id=disclosure_id,
        purpose=request.purpose,
        legal_basis=request.legal_basis,
        data=minimized,
        now=now,
        extra=extra,
    )
    enc = partner.encryption
    token = gw.keys.seal(
        claims, sign_alg=enc.sign_alg, recipient=recipient, alg=enc.alg, enc=enc.enc
    )
    return token.encode("ascii")


async def _deliver(
    gw: Gateway,
    partner: Partner,
    operation: Operation,
    request: DisclosureRequest,
    sealed: bytes,
    url: URL,
    disclosure_id: str,
) -> PartnerReply:
    """Send with retries, then log the outcome (and count it) whatever happened."""
    started = time.perf_counter()
    try:
        reply = await gw.outbound.deliver(
            partner, operation, body=sealed, content_type=JOSE, url=url, disclosure_id=disclosure_id
        )
    except DeliveryError as exc:
        exc.disclosure_id = disclosure_id
        _record_outcome(
            gw,
            request,
            partner,
            disclosure_id,
            started,
            "failed",
            exc.attempts,
            problem=exc.code,
            maybe_received=exc.reached_partner,
        )
        raise
    _record_outcome(
        gw,
        request,
        partner,
        disclosure_id,
        started,
        "sent",
        reply.attempts,
        partner_status=reply.status,
    )
    return reply


def _record_outcome(
    gw: Gateway,
    request: DisclosureRequest,
    partner: Partner,
    disclosure_id: str,
    started: float,
    outcome: str,
    attempts: int,
    **details: Any,
) -> None:
    # The partner has answered: the answer goes back while the outcome entry commits
    # (gateway.log.recovery.InstanceLog.append_soon keeps it if the store is away).
    gw.log.append_soon(
        outcome_entry(
            disclosure_id=disclosure_id,
            outcome=outcome,
            at=gw.clock(),
            partner=partner.id,
            attempts=attempts,
            **details,
        )
    )
    gw.metrics.delivered(
        partner.id,
        request.purpose,
        request.legal_basis,
        outcome,
        time.perf_counter() - started,
        attempts,
    )


async def _log_intent(gw: Gateway, entry: Mapping[str, Any]) -> None:
    """Fail closed: if the intent is not durable, nothing is sent."""
    started = time.perf_counter()
    try:
        await gw.log.append(entry)
    except GatewayError as exc:
        raise GatewayError(
            "log_unavailable",
            "the disclosure log cannot be written, so nothing was sent; retry when the "
            "store is back (GET /readyz)",
            disclosure_id=str(entry["disclosure_id"]),
            retry_after_s=LOG_RETRY_AFTER_S,
        ) from exc
    gw.metrics.log_append_seconds.observe(time.perf_counter() - started)


def log_early_refusal(gw: Gateway, caller: Caller, exc: GatewayError) -> str:
    """Log a refusal of an authenticated caller's disclosure raised before the pipeline had
    a request (a body that does not parse, an Idempotency-Key in conflict); its disclosure
    id. The entry holds nothing of the body: only who was refused, when, and the code."""
    disclosure_id = new_disclosure_id()
    gw.log.append_soon(
        refused_without_request(
            disclosure_id=disclosure_id,
            caller=caller.id,
            problem=exc.code,
            reason=f"refused before the request was read: {exc.code}",
            at=gw.clock(),
            policy_version=gw.config.policy.version,
        )
    )
    return disclosure_id


class _PolicyRefusal(Exception):
    """The decision refused: logged with its reasons, answered with its problem."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.problem)
        self.decision = decision


def _refusal_decision(exc: Exception, step: str) -> Decision:
    """What the refused entry records for `exc`, raised at `step`: a policy refusal's own
    reasons; for anything else the step and the problem code only, since a detail may
    quote what the caller sent (a field name, a placeholder value)."""
    if isinstance(exc, _PolicyRefusal):
        return exc.decision
    if isinstance(exc, FieldNamesRefused):
        reason = f"{exc.count} malformed field name(s) in 'data' refused"
    else:
        code = exc.code if isinstance(exc, GatewayError) else "internal_error"
        reason = f"refused at step '{step}', before anything was sent: {code}"
    problem = exc.code if isinstance(exc, GatewayError) else "internal_error"
    return Decision(False, problem, (reason,), {}, (), needs_review=False)


def _log_refusal(
    gw: Gateway,
    disclosure_id: str,
    caller: Caller,
    request: DisclosureRequest,
    partner: Partner | None,
    exc: Exception,
    step: str,
    now: datetime,
) -> None:
    # Nothing leaves on a refusal, so the answer does not wait for its entry to commit.
    entry = refused_entry(
        disclosure_id=disclosure_id,
        caller=caller.id,
        request=request,
        partner=partner,
        decision=_refusal_decision(exc, step),
        at=now,
        keys=gw.log_keys,
        policy_version=gw.config.policy.version,
    )
    if isinstance(exc, FieldNamesRefused):
        entry["rejected_field_names"] = exc.count
    gw.log.append_soon(entry)
