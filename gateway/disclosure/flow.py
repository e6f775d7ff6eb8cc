"""The disclosure pipeline: one request from an internal service to one partner.

Reads top to bottom (STYLE §8): decide → minimize → log intent (durable; the
payload is signed and encrypted while it commits) → send with retries → log
outcome → answer. Only the intent is waited for: outcome and refusal entries
record what already happened, so they commit while the answer goes back (readers
in this instance wait for them, see ``gateway.web.app.log_settled``).
Authentication happens in the web layer before this, idempotency around it
(`gateway.disclosure.idempotency`); collaborators arrive as one `Gateway` value built by the
composition root, and each disclosure's own values as one `Attempt`.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from yarl import URL

from gateway.config.model import Caller, Config
from gateway.crypto.seal import GatewayKeys, PartnerKey, claims_for
from gateway.disclosure.idempotency import Refusal, once, request_digest
from gateway.errors import GatewayError
from gateway.log.entries import (
    LogKeys,
    intent_entry,
    outcome_entry,
    refused_entry,
    refused_without_request,
)
from gateway.observe.app_log import bind
from gateway.observe.metrics import Metrics
from gateway.outbound.delivery import DeliveryError, PartnerReply, build_url
from gateway.partners.model import NO_PARTNER_STATE, Operation, Partner, PartnerState, current
from gateway.policy.decide import Decision, decide
from gateway.policy.facts import SubjectFacts
from gateway.policy.minimize import FieldPlan, minimize
from gateway.policy.request import (
    DisclosureRequest,
    FieldNamesRefused,
    check_field_names,
    parse_disclosure_request,
)
from gateway.problem_catalog import KEY_RECHECK_S, LOG_RETRY_AFTER_S
from gateway.store.base import StoredResponse
from gateway.store.ports import IdempotencyStore

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
    # Suspensions and key expiry (gateway.partners.standing.PartnerStates); None: nothing known.
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
    """Partner and operation → decide → minimize → seal while the intent commits → deliver →
    log the outcome → answer. The web layer authenticated the caller; each step before the
    intent logs its refusal as one `refused` entry (`_refusal_logged`)."""
    arrival = _arrive(gw, caller, request)  # its id and time, the partner table it keeps
    allowed = await _decide(gw, arrival, facts)
    minimized = await _minimize(gw, arrival, allowed)
    url = await _partner_url(gw, arrival, allowed, minimized)
    attempt = await _attempt(gw, arrival, allowed)  # with the partner's key to seal to
    intent = _intent(gw, attempt, minimized)
    seal = functools.partial(_seal, gw, attempt, minimized, extra_claims)
    sealed = await _seal_while_intent_commits(gw, attempt, intent, seal)
    sent = await _deliver(gw, attempt, sealed, url)
    _log_outcome(gw, attempt, sent)
    return _answer(gw, attempt, sent)


@dataclass(frozen=True)
class _Arrival:
    """A disclosure before its decision: enough to log a refusal of it."""

    id: str
    at: datetime
    caller: Caller
    request: DisclosureRequest
    partners: Mapping[str, Partner]  # one table for the whole request, whatever a reload does
    partner: Partner | None  # None: no partner of that id (the decision refuses it)


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


def _arrive(gw: Gateway, caller: Caller, request: DisclosureRequest) -> _Arrival:
    partners = current(gw.partners)
    arrival = _Arrival(
        new_disclosure_id(), gw.clock(), caller, request, partners, partners.get(request.partner)
    )
    bind(disclosure_id=arrival.id, partner=arrival.partner.id if arrival.partner else None)
    return arrival


_P = ParamSpec("_P")
_T = TypeVar("_T")
_Step = Callable[Concatenate[Gateway, _Arrival, _P], Awaitable[_T]]


def _refusal_logged(step: str) -> Callable[[_Step[_P, _T]], _Step[_P, _T]]:
    """A step before the intent: whatever it raises (a policy refusal, a field that cannot
    be transformed, a partner key that cannot be fetched or has expired) is logged as one
    `refused` entry naming `step`, and answered with the disclosure's id. After the
    intent, the outcome entry records a failure instead."""

    def wrap(run: _Step[_P, _T]) -> _Step[_P, _T]:
        async def logged(gw: Gateway, arrival: _Arrival, /, *args: _P.args, **kw: _P.kwargs) -> _T:
            try:
                return await run(gw, arrival, *args, **kw)
            except Exception as exc:
                _log_refusal(gw, arrival, exc, step)
                if isinstance(exc, _PolicyRefusal):
                    problem, detail = str(exc.decision.problem), exc.decision.detail
                    raise GatewayError(
                        problem,
                        detail,
                        disclosure_id=arrival.id,
                        retry_after_s=_refusal_retry_after(problem, arrival.partner),
                    ) from None
                if isinstance(exc, GatewayError) and exc.disclosure_id is None:
                    exc.disclosure_id = arrival.id
                raise

        return logged

    return wrap


@_refusal_logged("decide")
async def _decide(gw: Gateway, arrival: _Arrival, facts: SubjectFacts | None) -> _Allowed:
    request = arrival.request
    decision = await evaluate(gw, arrival.caller, request, facts, partners=arrival.partners)
    if not decision.allowed or arrival.partner is None:
        raise _PolicyRefusal(decision)
    return _Allowed(decision, arrival.partner, arrival.partner.operations[request.operation])


@_refusal_logged("minimize")
async def _minimize(gw: Gateway, arrival: _Arrival, allowed: _Allowed) -> dict[str, Any]:
    decision = allowed.decision
    return minimize(
        arrival.request.data,
        FieldPlan(decision.disclosed, decision.withheld_reasons),
        pseudonym_key=gw.pseudonym_key(allowed.partner.id),
        today=arrival.at.date(),
    )


@_refusal_logged("partner_url")
async def _partner_url(
    gw: Gateway, arrival: _Arrival, allowed: _Allowed, minimized: Mapping[str, Any]
) -> URL:
    return build_url(allowed.partner, allowed.operation, minimized)  # a bad placeholder: refused


@_refusal_logged("partner_key")
async def _attempt(gw: Gateway, arrival: _Arrival, allowed: _Allowed) -> Attempt:
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


def _refusal_retry_after(problem: str, partner: Partner | None) -> float | None:
    """Of the policy's refusals only partner_key_expired can pass later by itself: when the
    partner publishes a key at its JWKS URL, which the gateway looks at every
    KEY_RECHECK_S while all keys have expired. A key file waits for an operator."""
    if problem == "partner_key_expired" and partner is not None:
        return KEY_RECHECK_S if partner.encryption.public_key_url is not None else None
    return None


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
    # (gateway.log.recovery.InstanceLog.append_soon keeps it if the store is away).
    gw.log.append_soon(
        outcome_entry(
            disclosure_id=attempt.id,
            outcome=outcome,
            at=gw.clock(),
            partner=attempt.partner.id,
            attempts=attempts,
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
    return Disclosed(attempt.id, reply.status, content_type, body, fields, attempt.decision)


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
        with _early_refusal_logged(gw, caller):
            request = parse_disclosure_request(body)
        return render(await disclose(gw, caller, request))

    with _early_refusal_logged(gw, caller):
        body = await read_body()
        digest = request_digest(body)
        return await once(
            keys,
            caller.id,
            key,
            digest,
            answer,
            refusal=refusal,
            kept_headers=("Content-Type", "Disclosure-Id", "Disclosure-Fields"),
            what="disclosure",
        )


@contextmanager
def _early_refusal_logged(gw: Gateway, caller: Caller) -> Iterator[None]:
    """A refusal without a disclosure id (none was logged yet) is logged as one `refused`
    entry holding nothing of the body: who was refused, when, and the code."""
    try:
        yield
    except GatewayError as exc:
        if exc.disclosure_id is None:
            exc.disclosure_id = new_disclosure_id()
            gw.log.append_soon(
                refused_without_request(
                    disclosure_id=exc.disclosure_id,
                    caller=caller.id,
                    problem=exc.code,
                    reason=f"refused before the request was read: {exc.code}",
                    at=gw.clock(),
                    policy_version=gw.config.policy.version,
                )
            )
        raise


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


def _log_refusal(gw: Gateway, arrival: _Arrival, exc: Exception, step: str) -> None:
    # Nothing leaves on a refusal, so the answer does not wait for its entry to commit.
    entry = refused_entry(
        disclosure_id=arrival.id,
        caller=arrival.caller.id,
        request=arrival.request,
        partner=arrival.partner,
        decision=_refusal_decision(exc, step),
        at=arrival.at,
        keys=gw.log_keys,
        policy_version=gw.config.policy.version,
    )
    if isinstance(exc, FieldNamesRefused):
        entry["rejected_field_names"] = exc.count
    gw.log.append_soon(entry)
