"""The pipeline with hand-written fakes: the order of its steps, and failing closed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from yarl import URL

from gateway.config import Caller, Config
from gateway.crypto import GatewayKeys, PartnerKey, load_partner_key_file
from gateway.errors import GatewayError
from gateway.facts import SubjectFacts
from gateway.log.entries import LogKeys
from gateway.outbound import PartnerReply, PartnerTimeout
from gateway.partners import Operation, Partner
from gateway.pipeline import Gateway, disclose
from gateway.request import DisclosureRequest

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
CALLER = Caller("svc", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}))
REQUEST = DisclosureRequest(
    "bcel-payments",
    "charge",
    "service_provision",
    "contract",
    "s-1",
    {"uuid": "CANARY-U", "amount": 5, "currency": "LAK", "password": "CANARY-P"},
)


class Journal:
    """Records the order of what the pipeline did."""

    def __init__(self) -> None:
        self.events: list[str] = []


class FakeFacts:
    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        return SubjectFacts()


class FakeLog:
    def __init__(self, journal: Journal, *, fail_kinds: frozenset[str] = frozenset()) -> None:
        self.journal = journal
        self.fail_kinds = fail_kinds
        self.entries: list[Mapping[str, Any]] = []

    async def append(self, entry: Mapping[str, Any]) -> int:
        if entry["kind"] in self.fail_kinds:
            raise GatewayError("log_unavailable", "disk gone")
        self.journal.events.append(f"log:{entry['kind']}")
        self.entries.append(entry)
        return len(self.entries) - 1

    def append_soon(self, entry: Mapping[str, Any]) -> None:
        if entry["kind"] in self.fail_kinds:
            return  # InstanceLog keeps it for later; the answer does not change
        self.journal.events.append(f"log:{entry['kind']}")
        self.entries.append(entry)


class FakeKeys:
    def __init__(self, key: PartnerKey) -> None:
        self.key = key

    async def key_for(self, partner: Partner, kid: str | None = None) -> PartnerKey:
        return self.key


class FakeOutbound:
    def __init__(self, journal: Journal, error: Exception | None = None) -> None:
        self.journal = journal
        self.error = error
        self.bodies: list[bytes] = []

    async def deliver(
        self,
        partner: Partner,
        operation: Operation,
        *,
        body: bytes,
        content_type: str,
        url: URL,
        disclosure_id: str,
    ) -> PartnerReply:
        self.journal.events.append("send")
        self.bodies.append(body)
        if self.error:
            raise self.error
        return PartnerReply(201, "application/json", b'{"ok":true}', 1)


def gateway(
    config: Config, partners: dict[str, Partner], log: FakeLog, outbound: FakeOutbound
) -> Gateway:
    key = load_partner_key_file(partners["bcel-payments"].encryption.public_key)  # type: ignore[arg-type]
    return Gateway(
        config=config,
        partners=partners,
        facts=FakeFacts(),
        log=log,
        keys=GatewayKeys.load(config.keys_dir),
        partner_keys=FakeKeys(key),
        outbound=outbound,
        log_keys=LogKeys(b"k" * 32),
        pseudonym_key=lambda partner_id: b"p" * 32,
        clock=lambda: NOW,
    )


async def test_intent_is_logged_before_anything_is_sent(config, partners):
    journal = Journal()
    log, outbound = FakeLog(journal), FakeOutbound(journal)
    result = await disclose(gateway(config, partners, log, outbound), CALLER, REQUEST)
    assert journal.events == ["log:intent", "send", "log:outcome"]
    assert result.fields == ("uuid", "amount", "currency")
    assert b"CANARY" not in outbound.bodies[0]  # sealed: no plaintext leaves
    assert "CANARY" not in repr(log.entries)


async def test_no_durable_intent_means_nothing_sent(config, partners):
    journal = Journal()
    log = FakeLog(journal, fail_kinds=frozenset({"intent"}))
    outbound = FakeOutbound(journal)
    with pytest.raises(GatewayError) as exc:
        await disclose(gateway(config, partners, log, outbound), CALLER, REQUEST)
    assert exc.value.code == "log_unavailable" and exc.value.status == 503
    assert exc.value.disclosure_id
    assert outbound.bodies == []


async def test_delivery_failure_logs_failed_outcome(config, partners):
    journal = Journal()
    log = FakeLog(journal)
    error = PartnerTimeout("timed out", attempts=3, reached_partner=True)
    outbound = FakeOutbound(journal, error)
    with pytest.raises(GatewayError) as exc:
        await disclose(gateway(config, partners, log, outbound), CALLER, REQUEST)
    assert exc.value.code == "partner_timeout"
    outcome = log.entries[-1]
    assert (outcome["outcome"], outcome["attempts"], outcome["maybe_received"]) == (
        "failed",
        3,
        True,
    )


async def test_refusal_logged_and_not_sent(config, partners):
    journal = Journal()
    log, outbound = FakeLog(journal), FakeOutbound(journal)
    refused = DisclosureRequest("bcel-payments", "charge", "marketing", "consent", "s-1", {})
    with pytest.raises(GatewayError) as exc:
        await disclose(gateway(config, partners, log, outbound), CALLER, refused)
    assert exc.value.code == "purpose_not_allowed"
    assert journal.events == ["log:refused"]


async def test_lost_outcome_does_not_hide_the_partner_answer(config, partners):
    journal = Journal()
    log = FakeLog(journal, fail_kinds=frozenset({"outcome"}))
    result = await disclose(gateway(config, partners, log, FakeOutbound(journal)), CALLER, REQUEST)
    assert result.status == 201 and journal.events == ["log:intent", "send"]
