"""How a refused disclosure is logged: one `refused` entry, answered with its id.

A step of the flow before the intent runs under `refusal_logged`: whatever it raises is
logged as a refusal naming the step. A request refused before it has a disclosure id (a
body that does not read or parse, an idempotency key in conflict) is logged under
`early_refusal_logged`. After the intent the outcome entry records a failure instead
(`gateway.disclosure.flow`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from gateway.config.model import Caller
from gateway.disclosure.gateway import Gateway, new_disclosure_id
from gateway.disclosure.limits import SHED_CODES
from gateway.errors import GatewayError, error_for
from gateway.log.entries import refused_entry, refused_without_request
from gateway.partners.model import Partner
from gateway.policy.decide import Decision
from gateway.policy.request import DisclosureRequest, FieldNamesRefused
from gateway.problem_catalog import KEY_RECHECK_S


@dataclass(frozen=True)
class Arrival:
    """A disclosure before its decision: enough to log a refusal of it."""

    id: str
    at: datetime
    caller: Caller
    request: DisclosureRequest
    partners: Mapping[str, Partner]  # one table for the whole request, whatever a reload does
    partner: Partner | None  # None: no partner of that id (the decision refuses it)


class PolicyRefusal(Exception):
    """The decision refused: logged with its reasons, answered with its problem."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.problem)
        self.decision = decision


_P = ParamSpec("_P")
_T = TypeVar("_T")
_Step = Callable[Concatenate[Gateway, Arrival, _P], Awaitable[_T]]


def refusal_logged(step: str) -> Callable[[_Step[_P, _T]], _Step[_P, _T]]:
    """A step before the intent: whatever it raises (a policy refusal, a field that cannot
    be transformed, a partner key that cannot be fetched or has expired) is logged as one
    `refused` entry naming `step`, and answered with the disclosure's id. After the
    intent, the outcome entry records a failure instead."""

    def wrap(run: _Step[_P, _T]) -> _Step[_P, _T]:
        async def logged(gw: Gateway, arrival: Arrival, /, *args: _P.args, **kw: _P.kwargs) -> _T:
            try:
                return await run(gw, arrival, *args, **kw)
            except Exception as exc:
                _log_refusal(gw, arrival, exc, step)
                if isinstance(exc, PolicyRefusal):
                    problem, detail = str(exc.decision.problem), exc.decision.detail
                    raise error_for(
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


def _refusal_retry_after(problem: str, partner: Partner | None) -> float | None:
    """Of the policy's refusals only partner_key_expired can pass later by itself: when the
    partner publishes a key at its JWKS URL, which the gateway looks at every
    KEY_RECHECK_S while all keys have expired. A key file waits for an operator."""
    if problem == "partner_key_expired" and partner is not None:
        return KEY_RECHECK_S if partner.encryption.public_key_url is not None else None
    return None


def _refusal_decision(exc: Exception, step: str) -> Decision:
    """What the refused entry records for `exc`, raised at `step`: a policy refusal's own
    reasons; for anything else the step and the problem code only, since a detail may
    quote what the caller sent (a field name, a placeholder value)."""
    if isinstance(exc, PolicyRefusal):
        return exc.decision
    if isinstance(exc, FieldNamesRefused):
        reason = f"{exc.count} malformed field name(s) in 'data' refused"
    else:
        code = exc.code if isinstance(exc, GatewayError) else "internal_error"
        reason = f"refused at step '{step}', before anything was sent: {code}"
    problem = exc.code if isinstance(exc, GatewayError) else "internal_error"
    return Decision(False, problem, (reason,), {}, (), needs_review=False)


def _log_refusal(gw: Gateway, arrival: Arrival, exc: Exception, step: str) -> None:
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
    gw.log.append_later(entry)


@contextmanager
def early_refusal_logged(gw: Gateway, caller: Caller) -> Iterator[None]:
    """A refusal without a disclosure id (none was logged yet) is logged as one `refused`
    entry holding nothing of the body: who was refused, when, and the code."""
    try:
        yield
    except GatewayError as exc:
        # A request shed by a load limit decided nothing and is counted, not logged.
        if exc.disclosure_id is None and exc.code not in SHED_CODES:
            exc.disclosure_id = new_disclosure_id()
            gw.log.append_later(
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
