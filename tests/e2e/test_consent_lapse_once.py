"""A lapsing consent is lapsed once (schema 15): two runs at once — two instances starting
together — write one `consent_lapsed` entry per consent, and a run cut off between its
claim and its mark is finished by a later run, its entry written once."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from e2e.test_consent_lapse import RAISED, lapse_actions, raised, start
from e2e.test_withdrawal_notices import disclose_under_consent

from gateway.log.actions import target
from gateway.rights.lapse import CLAIM_TTL, LAPSE_ACTOR, lapse_consents
from gateway.web.keys import ACTIONS, GATEWAY, NOTICES, STORE


def lapse_run(client, clock=None):
    """One run of the start-up lapse of `client`'s gateway under the raised minimum."""
    app = client.server.app
    gw = replace(app[GATEWAY], config=raised(app[GATEWAY].config))
    if clock is not None:
        gw = replace(gw, clock=clock)
    return lapse_consents(gw, app[STORE], app[ACTIONS], app[NOTICES])


async def test_two_runs_at_once_write_one_entry_per_consent(tmp_config, sandboxes, auth):
    client = await start(tmp_config, sandboxes)  # the minimum unchanged: nothing lapses
    try:
        await disclose_under_consent(client, auth)
        store = client.server.app[STORE]
        live = {c.id for c in await store.consents_to_lapse(RAISED, datetime.now(UTC))}
        assert len(live) == 2  # the subject's two consents
        first, second = await asyncio.gather(lapse_run(client), lapse_run(client))
        assert len(first) + len(second) == 2
        acts = Counter(a.consent_id for a in await lapse_actions(client))
        assert acts == Counter(live)  # each once
        assert await store.consents_to_lapse(RAISED, datetime.now(UTC)) == []
        assert await lapse_run(client) == []
        assert Counter(a.consent_id for a in await lapse_actions(client)) == acts
    finally:
        await client.close()


async def test_a_run_cut_off_after_its_claim_is_finished_once(tmp_config, sandboxes, auth):
    client = await start(tmp_config, sandboxes)
    try:
        await disclose_under_consent(client, auth)
        app = client.server.app
        store = app[STORE]
        now = datetime.now(UTC)
        no_entry, entry_written = await store.consents_to_lapse(RAISED, now)
        crashed_at = now - CLAIM_TTL - timedelta(seconds=5)
        # One run claimed both and stopped: before the first's entry, after the second's.
        assert await store.claim_consent_lapse(no_entry.id, crashed_at)
        assert await store.claim_consent_lapse(entry_written.id, crashed_at)
        assert not await store.claim_consent_lapse(entry_written.id, now)  # claimed already
        await app[ACTIONS].record(
            LAPSE_ACTOR,
            "consent_lapsed",
            at=crashed_at + timedelta(milliseconds=3),
            target=target("consent", entry_written.id),
            consent_id=entry_written.id,
            policy_versions={
                "consent": entry_written.policy_version,
                "min_consent_version": RAISED,
            },
        )
        # A run while the claims are fresh leaves them to their instance.
        assert await lapse_run(client, clock=lambda: crashed_at + timedelta(seconds=30)) == []
        assert [a.consent_id for a in await lapse_actions(client)] == [entry_written.id]
        # Once they are stale, a run takes both over: each consent has one entry.
        assert len(await lapse_run(client)) == 2
        acts = Counter(a.consent_id for a in await lapse_actions(client))
        assert acts == Counter([no_entry.id, entry_written.id])
        assert await store.consents_to_lapse(RAISED, datetime.now(UTC)) == []
    finally:
        await client.close()
