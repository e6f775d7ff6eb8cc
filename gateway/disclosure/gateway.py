"""What a disclosure is given and what it answers.

`Gateway` holds every collaborator of the flow (`gateway.disclosure.flow`), each named by the
small Protocol the flow needs of it; the composition root (`web.app.create_app`) builds it
once. `Disclosed` is a disclosure's answer as the web layer renders it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from yarl import URL

from gateway.config.model import Config
from gateway.crypto.seal import GatewayKeys, PartnerKey
from gateway.disclosure.limits import Admission
from gateway.log.entries import LogKeys
from gateway.observe.metrics import Metrics
from gateway.outbound.delivery import PartnerReply
from gateway.partners.model import Operation, Partner, PartnerState
from gateway.policy.decide import Decision
from gateway.policy.facts import SubjectFacts


class FactsSource(Protocol):
    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts: ...


class DisclosureLog(Protocol):
    async def append(self, entry: Mapping[str, Any]) -> int: ...
    def append_later(self, entry: Mapping[str, Any]) -> None: ...


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
    # The load limits looked at before anything is logged (gateway.disclosure.limits);
    # the default sheds nothing.
    admission: Admission = field(default_factory=Admission)


@dataclass(frozen=True)
class Disclosed:
    """A disclosure's answer: the partner's reply (opened when it was sealed) and what the
    caller is told of the disclosure (its id, the fields sent, the decision)."""

    disclosure_id: str
    status: int
    content_type: str
    body: bytes
    fields: tuple[str, ...]
    decision: Decision
    # What became of the partner's acknowledgement, for the Disclosure-Acknowledgement-Status
    # header (`ack_status`); None: its file asks for none.
    acknowledgement: str | None = None


def ack_status(ack: tuple[str, str | None] | None) -> str | None:
    """The caller's view of an outcome's `ack`: "valid", "missing", or
    "invalid; reason=<code>" (the token itself stays in the log)."""
    if ack is None:
        return None
    value, reason = ack
    if reason is None:
        return "valid"
    return value if value == reason else f"{value}; reason={reason}"


def new_disclosure_id() -> str:
    return f"d-{uuid.uuid4()}"
