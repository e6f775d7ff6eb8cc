"""Partner lifecycle (issue 9), the pure and in-process parts: the three refusals of
decide() and their order, agreement and key-expiry warnings, the suspension cache,
the Suspensions service, the partner key cache's expiry and scheduled refresh and the
live tables. The Reloader's tests are in tests/unit/ops/test_reload.py."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc.jwk import OKPKey

from gateway.config.model import Caller, PolicyConfig, load_config
from gateway.crypto.seal import PartnerKeyCache
from gateway.errors import PROBLEMS, ConfigErrors, GatewayError, LogUnavailableError
from gateway.partners import (
    NO_PARTNER_STATE,
    LiveTable,
    Partner,
    PartnerEncryption,
    PartnerState,
    Suspension,
    SuspensionEvent,
    current,
    load_partners,
)
from gateway.partners.standing import (
    PartnerStates,
    Suspensions,
    agreement_days_left,
    expiry_warnings,
    file_keys_expire_at,
)
from gateway.policy.decide import PROBLEM_ORDER, decide
from gateway.policy.facts import SubjectFacts
from gateway.policy.request import DisclosureRequest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
POLICY = PolicyConfig("2024-09-30", date(2024, 9, 19), date(2024, 9, 30), "2024-09-30")
ANYONE = Caller("svc", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}))
CHARGE = DisclosureRequest(
    "bcel-payments",
    "charge",
    "service_provision",
    "contract",
    "s-1",
    {"uuid": "u-1", "amount": 5, "currency": "LAK"},
)
SUSPENDED = Suspension("bcel-payments", "INC-2026-114 breach at partner", "reviewer-alice", NOW)


def decide_charge(
    partners: dict[str, Partner],
    state: PartnerState = NO_PARTNER_STATE,
    request: DisclosureRequest = CHARGE,
    now: datetime = NOW,
):
    return decide(request, ANYONE, partners, SubjectFacts(), POLICY, now, state)


def with_agreement(partners: dict[str, Partner], last_day: date) -> dict[str, Partner]:
    return {
        **partners,
        "bcel-payments": replace(partners["bcel-payments"], agreement_expires_on=last_day),
    }


# -- decide(): the three refusals and their place in the order ---------------------------


def test_the_unsuspended_partner_in_good_standing_passes(partners):
    assert decide_charge(partners).allowed


def test_suspended_partner_is_refused_and_the_detail_says_how_to_resume(partners):
    decision = decide_charge(partners, PartnerState(suspension=SUSPENDED))
    assert not decision.allowed and decision.problem == "partner_suspended"
    assert PROBLEMS["partner_suspended"][0] == 403
    assert "2026-11-24 12:00 UTC" in decision.detail
    assert "gateway partners resume bcel-payments" in decision.detail
    # The reason and the reviewer stay out of what callers read.
    assert "INC-2026" not in decision.detail and "alice" not in decision.detail


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), True),  # its last day: still covered
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), False),  # the day after: refused
    ],
)
def test_agreement_covers_its_last_day_and_nothing_after(partners, now, allowed):
    decision = decide_charge(with_agreement(partners, date(2026, 12, 31)), now=now)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.problem == "agreement_expired" and PROBLEMS["agreement_expired"][0] == 403
        assert "DPA-2024-003" in decision.detail and "2026-12-31" in decision.detail
        assert "agreement_expires_on" in decision.detail and "reload" in decision.detail


def test_agreement_day_is_the_utc_day(partners):
    # 2027-01-01 06:00 in Vientiane is still 2026-12-31 in UTC: covered.
    from zoneinfo import ZoneInfo

    local = datetime(2027, 1, 1, 6, 0, tzinfo=ZoneInfo("Asia/Vientiane"))
    assert decide_charge(with_agreement(partners, date(2026, 12, 31)), now=local).allowed


def test_partner_whose_keys_all_expired_is_refused_with_503(partners):
    state = PartnerState(keys_expire_at=NOW - timedelta(seconds=1))
    decision = decide_charge(partners, state)
    assert decision.problem == "partner_key_expired"
    assert PROBLEMS["partner_key_expired"][0] == 503
    assert "public_key" in decision.detail
    assert decide_charge(partners, PartnerState(keys_expire_at=NOW + timedelta(seconds=1))).allowed


def test_partner_standing_comes_right_after_partner_and_operation(partners):
    order = list(PROBLEM_ORDER)
    assert order[order.index("unknown_operation") + 1 : order.index("purpose_not_allowed")] == [
        "partner_suspended",
        "agreement_expired",
        "partner_key_expired",
    ]
    everything = PartnerState(suspension=SUSPENDED, keys_expire_at=NOW - timedelta(days=1))
    bad_purpose = replace(CHARGE, purpose="marketing")
    decision = decide_charge(with_agreement(partners, date(2026, 1, 1)), everything, bad_purpose)
    assert decision.problem == "partner_suspended"
    codes = " ".join(decision.reasons)
    assert "suspended" in codes and "agreement" in codes and "encryption key" in codes
    assert "purpose 'marketing'" in codes
    # A caller outside its allowlist still hears `forbidden` first.
    stranger = Caller("x", frozenset({"discloser"}), frozenset({"other"}), frozenset({"*"}))
    refused = decide(CHARGE, stranger, partners, SubjectFacts(), POLICY, NOW, everything)
    assert refused.problem == "forbidden"


def test_unknown_operation_of_a_suspended_partner_names_both(partners):
    decision = decide_charge(
        partners, PartnerState(suspension=SUSPENDED), replace(CHARGE, operation="nope")
    )
    assert decision.problem == "unknown_operation"
    assert any("suspended" in r for r in decision.reasons)


# -- partner files and config ---------------------------------------------------------------


def _partner_file(tmp_path: Path, project: Path, extra: str) -> Path:
    partners_dir = tmp_path / "partners"
    partners_dir.mkdir()
    text = (project / "partners" / "bcel-payments.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("agreement ="))
    lines.insert(at + 1, extra)
    (partners_dir / "bcel-payments.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return partners_dir


def test_agreement_expires_on_is_read_as_a_date(tmp_path, project):
    partners_dir = _partner_file(tmp_path, project, "agreement_expires_on = 2027-03-31")
    loaded = load_partners(partners_dir, project)
    assert loaded["bcel-payments"].agreement_expires_on == date(2027, 3, 31)
    assert agreement_days_left(loaded["bcel-payments"], date(2027, 3, 1)) == 30


@pytest.mark.parametrize("value", ['"2027-03-31"', "2027-03-31T00:00:00Z", "20270331"])
def test_agreement_expires_on_must_be_a_toml_date(tmp_path, project, value):
    partners_dir = _partner_file(tmp_path, project, f"agreement_expires_on = {value}")
    with pytest.raises(ConfigErrors) as caught:
        load_partners(partners_dir, project)
    error = caught.value.errors[0]
    assert "agreement_expires_on' must be a TOML date" in error.message
    text = (partners_dir / "bcel-payments.toml").read_text().splitlines()
    assert error.line == next(i for i, x in enumerate(text, 1) if "agreement_expires_on" in x)


@pytest.mark.parametrize("bad", ["-1", '"30"', "true", "100000"])
def test_warn_days_is_validated_with_its_line(tmp_path, project, bad):
    text = re.sub(r"(?m)^warn_days = .*\n", "", (project / "config.toml").read_text("utf-8"))
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert load_config(path).partner_warn_days == 30  # the default
    path.write_text(text.replace('dir = "partners"', f'dir = "partners"\nwarn_days = {bad}'))
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    error = caught.value.errors[0]
    assert "partners.warn_days must be a whole number of days" in error.message
    assert error.line == text.splitlines().index('dir = "partners"') + 2
    path.write_text(text.replace('dir = "partners"', 'dir = "partners"\nwarn_days = 60'))
    assert load_config(path).partner_warn_days == 60


# -- warnings --------------------------------------------------------------------------------


def test_expiry_warnings_within_the_window_and_after(partners):
    table = {
        **partners,
        "bcel-payments": replace(
            partners["bcel-payments"], agreement_expires_on=date(2026, 12, 10)
        ),
        "veriid": replace(partners["veriid"], agreement_expires_on=date(2026, 11, 1)),
        "adreach": replace(partners["adreach"], agreement_expires_on=date(2027, 6, 1)),
    }
    ends = {"lao-credit-bureau": NOW + timedelta(days=3)}
    warnings = expiry_warnings(table.values(), NOW, 30, lambda p: ends.get(p.id))
    shown = {(w.partner_id, w.what): w for w in warnings}
    assert set(shown) == {
        ("bcel-payments", "agreement"),
        ("veriid", "agreement"),
        ("lao-credit-bureau", "keys"),
    }
    soon = shown["bcel-payments", "agreement"]
    assert (soon.days_left, soon.expired) == (16, False)
    assert "16 day(s) left" in soon.message() and "agreement_expires_on" in soon.message()
    gone = shown["veriid", "agreement"]
    assert gone.expired and gone.days_left == -23
    assert "expired" in gone.message() and "agreement_expired" in gone.message()
    assert "partner_key_expired" in shown["lao-credit-bureau", "keys"].message()


def test_key_file_expiry_is_read_from_exp(tmp_path, partners):
    key = OKPKey.generate_key("X25519", private=False)
    doc = {
        "keys": [
            key.as_dict(use="enc", exp=int(NOW.timestamp())),
            OKPKey.generate_key("X25519", private=False).as_dict(
                use="enc", exp=int(NOW.timestamp()) + 3600
            ),
        ]
    }
    path = tmp_path / "adreach.jwk.json"
    path.write_text(json.dumps(doc))
    partner = partners["adreach"]
    with_file = replace(partner, encryption=replace(partner.encryption, public_key=path))
    assert file_keys_expire_at(with_file) == NOW + timedelta(hours=1)
    path.write_text(json.dumps({"keys": [key.as_dict(use="enc")]}))  # no exp: never expires
    assert file_keys_expire_at(with_file) is None


# -- live tables ----------------------------------------------------------------------------


def test_a_taken_table_does_not_change_when_the_live_one_is_replaced(partners):
    table = LiveTable(partners)
    taken = current(table)
    table.replace({"veriid": partners["veriid"]})
    assert set(taken) == set(partners)
    assert set(table) == {"veriid"} and len(table) == 1 and table["veriid"] == partners["veriid"]
    assert current(partners) is partners  # a plain mapping is its own current table


# -- the suspension cache and the service ------------------------------------------------------


class FakeSuspensionStore:
    """The suspension part of the store port, in memory, counting reads."""

    def __init__(self) -> None:
        self.in_force: dict[str, Suspension] = {}
        self.events: list[SuspensionEvent] = []
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def suspend_partner(self, suspension: Suspension) -> Suspension:
        if suspension.partner_id in self.in_force:
            return self.in_force[suspension.partner_id]
        self.in_force[suspension.partner_id] = suspension
        self.events.append(
            SuspensionEvent(
                len(self.events) + 1,
                suspension.partner_id,
                "suspend",
                suspension.reason,
                suspension.by,
                suspension.at,
            )
        )
        return suspension

    async def resume_partner(
        self, partner_id: str, actor: str, reason: str, at: datetime
    ) -> Suspension | None:
        lifted = self.in_force.pop(partner_id, None)
        if lifted is not None:
            self.events.append(
                SuspensionEvent(len(self.events) + 1, partner_id, "resume", reason, actor, at)
            )
        return lifted

    async def partner_suspensions(self) -> dict[str, Suspension]:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        return dict(self.in_force)

    async def suspension_history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]:
        return list(reversed(self.events))[:limit]


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_suspensions_are_read_at_most_once_per_ttl(partners):
    store, ticks = FakeSuspensionStore(), Ticks()
    states = PartnerStates(store, ttl_s=0.5, clock=ticks)
    bcel = partners["bcel-payments"]
    assert (await states.state_of(bcel)).suspension is None
    store.in_force["bcel-payments"] = SUSPENDED  # written by another instance
    ticks.now += 0.49
    assert (await states.state_of(bcel)).suspension is None
    assert store.reads == 1
    ticks.now += 0.02  # the copy is 0.51 s old: read again
    assert (await states.state_of(bcel)).suspension == SUSPENDED
    assert store.reads == 2


async def test_concurrent_requests_share_one_read(partners):
    store = FakeSuspensionStore()
    store.gate = asyncio.Event()
    states = PartnerStates(store, ttl_s=0.5, clock=Ticks())
    waiting = [asyncio.create_task(states.state_of(partners["veriid"])) for _ in range(20)]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(*waiting)
    assert store.reads == 1


async def test_a_store_that_cannot_be_read_fails_the_request(partners):
    class Down(FakeSuspensionStore):
        async def partner_suspensions(self) -> dict[str, Suspension]:
            raise LogUnavailableError("database gone")

    with pytest.raises(GatewayError) as caught:
        await PartnerStates(Down()).state_of(partners["veriid"])
    assert caught.value.code == "log_unavailable"


async def test_service_suspends_once_records_who_and_invalidates_the_cache(partners, caplog):
    store, ticks = FakeSuspensionStore(), Ticks()
    states = PartnerStates(store, ttl_s=60, clock=ticks)
    service = Suspensions(store, partners, lambda: NOW, states)
    assert (await states.state_of(partners["veriid"])).suspension is None
    with caplog.at_level(logging.WARNING, logger="gateway.lifecycle"):
        found, made = await service.suspend("veriid", " INC-7 key leak ", "reviewer-bob")
    assert made and found == Suspension("veriid", "INC-7 key leak", "reviewer-bob", NOW)
    # This instance sees it at once, however long its TTL.
    assert (await states.state_of(partners["veriid"])).suspension == found
    again, made_again = await service.suspend("veriid", "second click", "reviewer-alice")
    assert again == found and not made_again
    assert "veriid suspended by reviewer-bob" in caplog.text
    assert "INC-7" not in caplog.text  # the free-text reason stays in the store
    assert await service.resume("veriid", "reviewer-alice", "partner rotated its keys") == found
    assert await service.resume("veriid", "reviewer-alice") is None
    assert [(e.action, e.actor) for e in await service.history()] == [
        ("resume", "reviewer-alice"),
        ("suspend", "reviewer-bob"),
    ]


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 2001, "bell\x07"])
async def test_suspension_needs_a_reason(partners, reason):
    service = Suspensions(FakeSuspensionStore(), partners, lambda: NOW)
    with pytest.raises(GatewayError) as caught:
        await service.suspend("veriid", reason, "reviewer-bob")
    assert caught.value.code == "invalid_request"


async def test_unknown_partner_cannot_be_suspended(partners):
    service = Suspensions(FakeSuspensionStore(), partners, lambda: NOW)
    with pytest.raises(GatewayError) as caught:
        await service.suspend("no-such-partner", "typo", "reviewer-bob")
    assert caught.value.code == "unknown_partner" and "veriid" in caught.value.detail


# -- partner keys: expiry, refetch, scheduled refresh -------------------------------------------


class JwksPartner:
    def __init__(self) -> None:
        self.keys: list[dict[str, object]] = []
        self.fetches = 0
        self.app = web.Application()
        self.app.router.add_get("/jwks.json", self.jwks)

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def jwks_url() -> AsyncIterator[tuple[JwksPartner, str]]:
    fake = JwksPartner()
    server = TestServer(fake.app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield fake, str(server.make_url("/jwks.json"))
    finally:
        await server.close()


def _x25519(exp: datetime | None = None) -> dict[str, object]:
    extra = {} if exp is None else {"exp": int(exp.timestamp())}
    return dict(
        OKPKey.generate_key("X25519", private=False, auto_kid=True).as_dict(use="enc", **extra)
    )


async def test_expired_jwks_key_is_never_used_and_is_refused_as_partner_key_expired(
    partners, jwks_url
):
    fake, url = jwks_url
    ticks = Ticks()
    ticks.now = NOW.timestamp()
    partner = replace(
        partners["adreach"],
        encryption=PartnerEncryption("ECDH-ES+A256KW", "A256GCM", "ES256", None, url),
        timeout_s=2.0,
    )
    fake.keys = [_x25519(NOW + timedelta(seconds=60))]
    async with aiohttp.ClientSession() as session:
        cache = PartnerKeyCache(session, ttl=3600, min_refetch=30, clock=ticks)
        assert await cache.keys_expire_at(partner) is None  # nothing fetched yet: unknown
        await cache.key_for(partner)
        assert await cache.keys_expire_at(partner) == NOW + timedelta(seconds=60)
        ticks.now += 61  # the only key expired; the partner has not rotated yet
        with pytest.raises(GatewayError) as caught:
            await cache.key_for(partner)
        assert caught.value.code == "partner_key_expired" and caught.value.status == 503
        fetched = fake.fetches
        assert await cache.keys_expire_at(partner) == NOW + timedelta(seconds=60)
        assert fake.fetches == fetched  # refetched at most every min_refetch seconds
        fresh = _x25519()
        fake.keys = [fresh]  # the partner publishes a new key
        ticks.now += 31
        assert await cache.keys_expire_at(partner) is None  # refetched: a key without exp
        assert (await cache.key_for(partner)).kid == fresh["kid"]


async def test_scheduled_refresh_fetches_and_a_failure_keeps_the_keys(partners, jwks_url):
    fake, url = jwks_url
    partner = replace(
        partners["adreach"],
        encryption=PartnerEncryption("ECDH-ES+A256KW", "A256GCM", "ES256", None, url),
        timeout_s=2.0,
    )
    first = _x25519()
    fake.keys = [first]
    async with aiohttp.ClientSession() as session:
        cache = PartnerKeyCache(session, ttl=3600)
        await cache.refresh(partner)
        assert fake.fetches == 1
        rotated = _x25519()
        fake.keys = [rotated]
        await cache.refresh(partner)  # what the background task does every KEY_REFRESH_S
        assert (await cache.key_for(partner)).kid == rotated["kid"]
        assert fake.fetches == 2  # served from the refreshed copy
        fake.keys = []
        with pytest.raises(GatewayError):
            await cache.refresh(partner)
        assert (await cache.key_for(partner)).kid == rotated["kid"]
        await cache.refresh(partners["veriid"])  # a key file: nothing to refresh


async def test_expired_key_file_is_refused_as_partner_key_expired(tmp_path, partners):
    path = tmp_path / "veriid.jwk.json"
    expired = dict(
        OKPKey.generate_key("X25519", private=False).as_dict(use="enc", exp=int(NOW.timestamp()))
    )
    path.write_text(json.dumps(expired))
    veriid = partners["veriid"]
    partner = replace(
        veriid, encryption=replace(veriid.encryption, alg="ECDH-ES+A256KW", public_key=path)
    )
    ticks = Ticks()
    ticks.now = NOW.timestamp()
    async with aiohttp.ClientSession() as session:
        cache = PartnerKeyCache(session, clock=ticks)
        assert await cache.keys_expire_at(partner) == NOW
        with pytest.raises(GatewayError) as caught:
            await cache.key_for(partner)
        assert caught.value.code == "partner_key_expired"
        cache.forget_files()
        path.write_text(json.dumps(_x25519()))  # a reload brings a new file
        assert await cache.keys_expire_at(partner) is None
