"""Consents that lapse when `[policy] min_consent_version` rises (policy VII.4, CONTRACT §3).

A consent given under a version older than the minimum no longer counts: the policy
refuses what relies on it (`policy_not_in_force`, gateway.policy.decide). The partners
that received data under it are told as if it had been withdrawn — the same notices,
under the same reference `CW-<consent id>` (gateway.rights.withdrawal) — so a consent
withdrawn and then lapsed, or lapsed on two instances, notifies each partner once.

At start-up, in the background (:func:`lapse_in_background`): each live consent under an
older version gets an `action` entry `consent_lapsed` by the system (target the consent,
`policy_versions` naming its version and the minimum; no subject), its notices are queued
in the durable outbox (one row per consent and partner: queued twice is a conflict, not a
second notice), and it is marked lapsed (schema 10), so a restart does not look at it
again. Nothing here waits on a partner: the outbox's round sends, and retries, them.

**Once, even when instances start together** (schema 15). Before its entry, an instance
claims the consent: an UPDATE that changes the row only where nobody claimed it, so of two
instances one wins and the other moves on. `lapsed_at` is set only after the entry and the
notices, so a claim whose entry a crash cut off is still unlapsed: once the claim is older
than CLAIM_TTL (far longer than one lapse takes) the next run takes it over — with the same
compare-and-set, on the claim time it read — and first looks in the log for an entry the
crashed run wrote after its claim, writing one only if there is none. A start soon after
the crash finds the claim still fresh: its background task looks again once the claim is
stale.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Final, Protocol

from gateway.disclosure.flow import Gateway
from gateway.log.actions import ActionLog, Person, target
from gateway.log.columns import checked_search
from gateway.policy.facts import Consent
from gateway.rights.outbox import NoticeOutbox
from gateway.rights.withdrawal import RecipientsStore, WithdrawalNotices, send_withdrawal_notices
from gateway.store.ports import ConsentLapseStore
from gateway.store.records import MAX_SEARCH_LIMIT, LogQuery

log = logging.getLogger(__name__)

# Who lapses a consent: no person acts, the configuration in force does.
LAPSE_ACTOR: Final = Person("system:policy", "config:policy.min_consent_version")
# How long a claim keeps other instances off a consent: one lapse (an append, a few outbox
# rows) takes well under a second; a claim older than this is a crashed run's.
CLAIM_TTL: Final = timedelta(minutes=2)
# Entry times keep milliseconds: the crashed run's entry may read as up to 1 ms before
# its claim; a second covers that, and clocks that step back a little.
_CLAIM_SLACK: Final = timedelta(seconds=1)


class LapseStore(RecipientsStore, ConsentLapseStore, Protocol):
    """What a lapse reads (the consents, the log) and marks."""


async def lapse_consents(
    gw: Gateway, store: LapseStore, actions: ActionLog, outbox: NoticeOutbox
) -> list[WithdrawalNotices]:
    """Lapse every live consent under a version older than the policy's
    `min_consent_version` that no other instance is lapsing now; their notices queued in
    `outbox`. What each lapse done here queued."""
    min_version = gw.config.policy.min_consent_version
    lapsed: list[WithdrawalNotices] = []
    while batch := await _unclaimed(gw, store, min_version):
        for consent in batch:
            notices = await _lapse(gw, store, actions, outbox, consent, min_version)
            if notices is not None:
                lapsed.append(notices)
    if lapsed:
        log.info(
            "%d consents lapsed under min_consent_version %s; their notices are queued",
            len(lapsed),
            min_version,
        )
    return lapsed


async def _unclaimed(gw: Gateway, store: LapseStore, min_version: str) -> list[Consent]:
    """The next consents to lapse: unclaimed, or claimed by a run that stopped."""
    now = gw.clock()
    return await store.consents_to_lapse(min_version, now, claimed_before=now - CLAIM_TTL)


async def _lapse(
    gw: Gateway,
    store: LapseStore,
    actions: ActionLog,
    outbox: NoticeOutbox,
    consent: Consent,
    min_version: str,
) -> WithdrawalNotices | None:
    """Claim the consent's lapse and do it; None when another instance has it."""
    now = gw.clock()
    earlier = await store.consent_lapse_claim(consent.id)
    if earlier is not None and earlier > now - CLAIM_TTL:
        return None  # claimed since the batch was read: that instance lapses it
    if not await store.claim_consent_lapse(consent.id, now, over=earlier):
        return None  # another instance claimed it (or lapsed it) first
    # The act first, then its effects (gateway.log.actions); the mark last, so a crash
    # before it leaves the claim for a later run to take over and finish.
    if earlier is None or not await _entry_after(store, consent.id, earlier):
        await actions.record(
            LAPSE_ACTOR,
            "consent_lapsed",
            target=target("consent", consent.id[:200]),
            consent_id=consent.id,
            policy_versions={"consent": consent.policy_version, "min_consent_version": min_version},
        )
    notices = await send_withdrawal_notices(
        gw, store, gw.log_keys, LAPSE_ACTOR.id, consent, outbox=outbox, queue_only=True
    )
    await store.mark_consent_lapsed(consent.id, gw.clock())
    return notices


async def _entry_after(store: LapseStore, consent_id: str, claimed_at: datetime) -> bool:
    """Whether a `consent_lapsed` entry of the consent was written since the stale claim
    made at `claimed_at` (its run stopped after the entry): only the entries since then
    are read, and a take-over is rare."""
    query = LogQuery(kind="action", since=claimed_at - _CLAIM_SLACK, limit=MAX_SEARCH_LIMIT)
    while rows := await checked_search(store, query):
        if any(r.action == "consent_lapsed" and r.consent_id == consent_id for r in rows):
            return True
        query = query.after(rows[-1].index)
    return False


async def lapse_in_background(
    gw: Gateway, store: LapseStore, actions: ActionLog, outbox: NoticeOutbox
) -> None:
    """The start-up task of `gateway serve`: lapse, then one outbox round sends what was
    queued (the outbox's loop retries the rest). Once more when every claim made meanwhile
    is stale: consents another instance claimed and did not finish (it stopped between
    its claim and its mark) are finished then. A store or log away is logged; the next
    start tries again, as every consent not marked lapsed is looked at again."""
    for wait in (0.0, (CLAIM_TTL + _CLAIM_SLACK).total_seconds()):
        await asyncio.sleep(wait)
        try:
            if await lapse_consents(gw, store, actions, outbox):
                await outbox.run_due()
        except Exception:
            log.exception("the lapse of consents under an older policy version did not finish")
