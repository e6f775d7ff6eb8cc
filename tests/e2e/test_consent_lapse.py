"""A raised `[policy] min_consent_version` lapses the consents given under an older version,
and the partners that received data under them are told, like a withdrawal (issue #19
item 3): queued in the background at start-up, sent through the outbox, once — across
restarts, while a partner is down, and after a later withdrawal of the same consent."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from e2e.conftest import start_gateway
from e2e.test_withdrawal_notices import (
    SUBJECT,
    UNDER_CONSENT,
    consent_disclosures,
    disclose_under_consent,
)
from support.sandboxes import SANDBOX_SECRETS

from gateway.log.columns import checked_search
from gateway.store.records import LogQuery
from gateway.web.keys import LOG, NOTICES, STORE

RAISED = "2025-03-01"


def notices_to(sandboxes, partner):
    return [r for r in sandboxes.received(partner) if r.notice == "consent_withdrawn"]


def raised(config):
    """The config after the privacy policy's new version, which consents must be given under."""
    policy = replace(
        config.policy,
        version=RAISED,
        notified_on=date(2025, 2, 1),
        effective_on=date(2025, 3, 1),
        min_consent_version=RAISED,
    )
    return replace(config, policy=policy, notices=replace(config.notices, interval_s=3600.0))


async def start(config, sandboxes):
    return await start_gateway(config, partners=sandboxes.partners, env=SANDBOX_SECRETS)


async def lapse_done(client, consent_id):
    """Wait for the start-up lapse: the notices of both consents of the subject queued
    (this one's two, and adreach's under the other) and their first round run; this
    consent's notices."""
    store = client.server.app[STORE]
    for _ in range(400):
        rows = await store.outbox_notices()
        if len(rows) == len(UNDER_CONSENT) + 1 and all(n.attempts >= 1 for n in rows):
            return [n for n in rows if consent_id in n.id]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the lapse did not queue and try its notices: {rows}")


async def lapse_actions(client):
    await client.server.app[LOG].settle()
    rows = await checked_search(client.server.app[STORE], LogQuery(kind="action", limit=1000))
    return [r for r in rows if r.action == "consent_lapsed"]


# policy: VII.4 — a consent that no longer counts reaches the partners like a withdrawal.
async def test_a_raised_minimum_version_tells_the_partners_once(tmp_config, sandboxes, auth):
    first = await start(tmp_config, sandboxes)
    consent_id = await disclose_under_consent(first, auth)
    await first.close()
    assert all(notices_to(sandboxes, p) == [] for p in sandboxes.partners)

    down = sandboxes.partner("lanexang-insurance")
    down.fail_next(down.partner.max_attempts, 503)  # every try of the first attempt
    second = await start(raised(tmp_config), sandboxes)
    try:
        rows = {n.partner: n for n in await lapse_done(second, consent_id)}
        assert rows["lao-credit-bureau"].status == "sent"
        assert (rows["lanexang-insurance"].status, rows["lanexang-insurance"].attempts) == (
            "pending",
            1,
        )
        [notice] = notices_to(sandboxes, "lao-credit-bureau")
        assert notice.about == consent_disclosures(sandboxes, "lao-credit-bureau")
        assert notices_to(sandboxes, "lanexang-insurance") == []
        # adreach received data under the subject's other consent, which lapsed too: its
        # one notice names that consent's disclosure, none of this one's.
        [other] = notices_to(sandboxes, "adreach")
        assert other.about == consent_disclosures(sandboxes, "adreach")
        [act] = [a for a in await lapse_actions(second) if a.consent_id == consent_id]
        assert act.actor == "system:policy" and act.subject_ref is None
        assert act.data["target"] == f"consent:{consent_id}"
        assert act.data["policy_versions"] == {
            "consent": "2024-09-30",
            "min_consent_version": RAISED,
        }
        assert await second.server.app[STORE].consents_to_lapse(RAISED, datetime.now(UTC)) == []
        # The subject report shows each notice and its outcome, found by the subject's id.
        r = await second.get(f"/v1/subjects/{SUBJECT}/disclosures", headers=auth("privacy-office"))
        rows = (await r.json())["disclosures"]
        shown = {(x["partner"], x["outcome"]) for x in rows if x["notice"] == "consent_withdrawn"}
        assert shown == {
            ("lao-credit-bureau", "sent"),
            ("lanexang-insurance", "failed"),
            ("adreach", "sent"),
        }
        # A withdrawal now sends nothing new: one partner told, the other still queued.
        r = await second.post(f"/v1/consents/{consent_id}/withdraw", headers=auth("customer-app"))
        assert r.status == 200, await r.text()
        withdrawn = (await r.json())["notices"]
        assert withdrawn["notified_before"] == ["lao-credit-bureau"]
        [queued] = withdrawn["notices"]
        assert queued["status"] == "queued" and queued["partner"] == "lanexang-insurance"
    finally:
        await second.close()

    # A restart while the partner is still away: the consent is not looked at again.
    third = await start(raised(tmp_config), sandboxes)
    try:
        await asyncio.sleep(0.3)  # the start-up lapse had its chance
        assert len([a for a in await lapse_actions(third) if a.consent_id == consent_id]) == 1
        outbox = third.server.app[NOTICES]
        assert len(await outbox.store.outbox_notices()) == len(UNDER_CONSENT) + 1
        # The partner is back; its notice is due a minute after the first attempt.
        now = datetime.now(UTC) + timedelta(minutes=2)
        outbox.clock = lambda: now
        [done] = await outbox.run_due()
        assert (done.partner, done.status, done.attempts) == ("lanexang-insurance", "sent", 2)
        [notice] = notices_to(sandboxes, "lanexang-insurance")
        assert notice.about == consent_disclosures(sandboxes, "lanexang-insurance")
        now += timedelta(days=8)
        assert await outbox.run_due() == []
        assert await outbox.retry() == []
    finally:
        await third.close()
    for partner in UNDER_CONSENT:
        assert len([n for n in notices_to(sandboxes, partner) if n.about]) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_nothing_lapses_while_the_minimum_is_unchanged(tmp_config, sandboxes, auth):
    client = await start(tmp_config, sandboxes)
    try:
        await disclose_under_consent(client, auth)
        await asyncio.sleep(0.2)
        assert await lapse_actions(client) == []
        assert await client.server.app[STORE].outbox_notices() == []
    finally:
        await client.close()
