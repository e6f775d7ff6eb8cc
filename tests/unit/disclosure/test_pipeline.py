"""The pipeline with hand-written fakes: the order of its steps, and failing closed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from yarl import URL

from gateway.config.model import Caller, Config
from gateway.crypto.seal import GatewayKeys, PartnerKey, load_partner_key_file
from gateway.disclosure.flow import Gateway, disclose
from gateway.errors import GatewayError, InternalServerError, LogUnavailableError
from gateway.log.entries import LogKeys
from gateway.log.recovery import InFlightLog
from gateway.log.writer import LogWriter
from gateway.outbound.delivery import DeliveryTimedOut, PartnerReply
from gateway.partners.model import Operation, Partner, PartnerState
from gateway.policy.facts import SubjectFacts
from gateway.policy.request import DisclosureRequest
from gateway.problem_catalog import KEY_RECHECK_S, LOG_RETRY_AFTER_S
from gateway.store.records import LogRow

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
            raise LogUnavailableError("disk gone")
        self.journal.events.append(f"log:{entry['kind']}")
        self.entries.append(entry)
        return len(self.entries) - 1

    def append_later(self, entry: Mapping[str, Any]) -> None:
        if entry["kind"] in self.fail_kinds:
            return  # InFlightLog keeps it for later; the answer does not change
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


class JournalledKeys(GatewayKeys):
    """The gateway's real keys, noting when they seal (or failing to)."""

    journal: Journal
    error: GatewayError | None = None

    def seal(self, claims: Mapping[str, Any], **how: Any) -> str:
        self.journal.events.append("seal")
        if self.error is not None:
            raise self.error
        return super().seal(claims, **how)


class JournalledStore:
    """The store under the real InFlightLog and LogWriter: notes when a commit reaches it."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.size = 0

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        self.journal.events.extend(f"store:{json.loads(row.entry)['kind']}" for row in entries)
        await asyncio.sleep(0.01)  # the commit: the loop is free meanwhile
        first, self.size = self.size, self.size + len(entries)
        return list(range(first, self.size))


def gateway(
    config: Config,
    partners: dict[str, Partner],
    log: FakeLog | InFlightLog,
    outbound: FakeOutbound,
    seal_error: GatewayError | None = None,
) -> Gateway:
    key = load_partner_key_file(partners["bcel-payments"].encryption.public_key)  # type: ignore[arg-type]
    keys = JournalledKeys.load(config.keys_dir)
    keys.journal = log.journal if isinstance(log, FakeLog) else Journal()
    keys.error = seal_error
    return Gateway(
        config=config,
        partners=partners,
        facts=FakeFacts(),
        log=log,
        keys=keys,
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
    assert journal.events == ["log:intent", "seal", "send", "log:outcome"]
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
    error = DeliveryTimedOut("timed out", attempts=3, reached_partner=True)
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
    assert result.status == 201 and journal.events == ["log:intent", "seal", "send"]


async def test_the_payload_is_sealed_while_the_intent_commits(config, partners):
    journal = Journal()
    log = InFlightLog(LogWriter(JournalledStore(journal), linger_s=60), "i-1")
    gw = gateway(config, partners, log, FakeOutbound(journal))
    gw.keys.journal = journal  # type: ignore[attr-defined]
    await disclose(gw, CALLER, REQUEST)
    # The real writer hands the intent to the store before the seal starts, and the
    # partner gets nothing until the commit is done; the outcome waits for the next commit.
    assert journal.events == ["store:intent", "seal", "send"]
    await log.settle()
    assert journal.events[-1] == "store:outcome"


async def test_a_seal_that_fails_after_the_intent_gets_a_failed_outcome(config, partners):
    journal = Journal()
    log, outbound = FakeLog(journal), FakeOutbound(journal)
    broken = InternalServerError("cannot seal to a OKP key")
    gw = gateway(config, partners, log, outbound, seal_error=broken)
    with pytest.raises(GatewayError) as exc:
        await disclose(gw, CALLER, REQUEST)
    assert exc.value is broken and outbound.bodies == []
    assert journal.events == ["log:intent", "seal", "log:outcome"]
    outcome = log.entries[-1]
    assert (outcome["outcome"], outcome["attempts"], outcome["problem"]) == (
        "failed",
        0,
        "internal_error",
    )
    assert outcome["maybe_received"] is False


async def test_a_seal_failure_with_no_durable_intent_is_log_unavailable(config, partners):
    journal = Journal()
    log = FakeLog(journal, fail_kinds=frozenset({"intent"}))
    gw = gateway(config, partners, log, FakeOutbound(journal), seal_error=InternalServerError("x"))
    with pytest.raises(GatewayError) as exc:
        await disclose(gw, CALLER, REQUEST)
    assert exc.value.code == "log_unavailable" and log.entries == []


# -- Retry-After: which refusals and failures say when the same call can succeed ----------


class ExpiredKeys:
    """PartnerStates whose every partner has only expired encryption keys."""

    async def state_of(self, partner: Partner) -> PartnerState:
        return PartnerState(keys_expire_at=NOW - timedelta(seconds=1))


def keys_from_url(partners: dict[str, Partner]) -> dict[str, Partner]:
    partner = partners["bcel-payments"]
    encryption = dataclasses.replace(
        partner.encryption, public_key=None, public_key_url="https://keys.example/jwks.json"
    )
    return {**partners, partner.id: dataclasses.replace(partner, encryption=encryption)}


async def test_no_durable_intent_says_when_to_retry(config, partners):
    journal = Journal()
    log = FakeLog(journal, fail_kinds=frozenset({"intent"}))
    with pytest.raises(GatewayError) as exc:
        await disclose(gateway(config, partners, log, FakeOutbound(journal)), CALLER, REQUEST)
    assert exc.value.retry_after_s == LOG_RETRY_AFTER_S


async def test_expired_keys_of_a_jwks_partner_say_when_the_gateway_looks_again(config, partners):
    journal = Journal()
    gw = gateway(config, partners, FakeLog(journal), FakeOutbound(journal))
    gw = dataclasses.replace(
        gw,
        partners=keys_from_url(partners),
        partner_states=ExpiredKeys(),  # type: ignore[arg-type]
    )
    with pytest.raises(GatewayError) as exc:
        await disclose(gw, CALLER, REQUEST)
    assert (exc.value.code, exc.value.retry_after_s) == ("partner_key_expired", KEY_RECHECK_S)


async def test_expired_key_file_and_policy_refusals_have_no_retry_after(config, partners):
    journal = Journal()
    gw = gateway(config, partners, FakeLog(journal), FakeOutbound(journal))
    expired = dataclasses.replace(gw, partner_states=ExpiredKeys())  # type: ignore[arg-type]
    with pytest.raises(GatewayError) as exc:
        await disclose(expired, CALLER, REQUEST)
    assert (exc.value.code, exc.value.retry_after_s) == ("partner_key_expired", None)
    refused = DisclosureRequest("bcel-payments", "charge", "marketing", "consent", "s-1", {})
    with pytest.raises(GatewayError) as exc:
        await disclose(gw, CALLER, refused)
    assert (exc.value.code, exc.value.retry_after_s) == ("purpose_not_allowed", None)
