"""The spans of a disclosure's steps, and the only attributes they carry.

`step_span(name, attributes)` wraps a step of `gateway.disclosure.flow` in a span of
`gateway.observe.tracing`: while tracing is off it is one call and a test, nothing built.
What a span names of a disclosure (CONTRACT §5, no personal value): its id, and the
partner, operation, purpose and legal basis once they are known to be the gateway's own
words — a partner of the table, an operation of its file, the vocabulary's purposes and
bases (checked when the request was parsed) — never the caller's text as it came, the
subject, or a payload value.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from gateway.observe import tracing
from gateway.observe.tracing import Attributes, AttributeValue
from gateway.partners.model import Partner
from gateway.policy.request import DisclosureRequest

_P = ParamSpec("_P")
_T = TypeVar("_T")

DISCLOSURE_ID = "gateway.disclosure_id"
PARTNER = "gateway.partner"
OPERATION = "gateway.operation"
PURPOSE = "gateway.purpose"
LEGAL_BASIS = "gateway.legal_basis"
OUTCOME = "gateway.outcome"
ATTEMPT = "gateway.delivery.attempt"


class OneDisclosure(Protocol):
    """What an `Arrival` and an `Attempt` both tell of a disclosure."""

    @property
    def id(self) -> str: ...

    @property
    def request(self) -> DisclosureRequest: ...

    @property
    def partner(self) -> Partner | None: ...


def of_disclosure(one: OneDisclosure, **more: AttributeValue) -> dict[str, AttributeValue]:
    """The attributes of `one`: its id; partner and operation when the table has them."""
    request, partner = one.request, one.partner
    attributes: dict[str, AttributeValue] = {
        DISCLOSURE_ID: one.id,
        PURPOSE: request.purpose,
        LEGAL_BASIS: request.legal_basis,
    }
    if partner is not None:
        attributes[PARTNER] = partner.id
        if request.operation in partner.operations:
            attributes[OPERATION] = request.operation
    return attributes | more


def of_request(request: DisclosureRequest) -> dict[str, AttributeValue]:
    """What a request tells before it has an id: its purpose and basis (vocabulary)."""
    return {PURPOSE: request.purpose, LEGAL_BASIS: request.legal_basis}


def of_step(_gw: object, one: OneDisclosure, /, *_args: object, **_kw: object) -> Attributes:
    """The attributes of a step called as `step(gw, arrival_or_attempt, …)`."""
    return of_disclosure(one)


def of_entry(_gw: object, entry: Mapping[str, Any], /) -> dict[str, AttributeValue]:
    """The attributes of a disclosure's intent entry (written after the decision allowed
    it: its partner and operation are the table's)."""
    names = {
        "disclosure_id": DISCLOSURE_ID,
        "partner": PARTNER,
        "operation": OPERATION,
        "purpose": PURPOSE,
        "legal_basis": LEGAL_BASIS,
    }
    return {names[key]: entry[key] for key in names if isinstance(entry.get(key), str)}


def step_span(
    name: str, attributes: Callable[..., Attributes]
) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """Run the decorated step (sync or async) in a span named `name`, with the
    `attributes` its arguments give (called only when tracing is on)."""

    def wrap(step: Callable[_P, _T]) -> Callable[_P, _T]:
        if inspect.iscoroutinefunction(step):
            run = cast(Callable[_P, Awaitable[Any]], step)

            @functools.wraps(step)
            async def traced_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                if not tracing.enabled():
                    return await run(*args, **kwargs)
                with tracing.span(name, lambda: attributes(*args, **kwargs)):
                    return await run(*args, **kwargs)

            return cast(Callable[_P, _T], traced_async)

        @functools.wraps(step)
        def traced(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            if not tracing.enabled():
                return step(*args, **kwargs)
            with tracing.span(name, lambda: attributes(*args, **kwargs)):
                return step(*args, **kwargs)

        return traced

    return wrap
