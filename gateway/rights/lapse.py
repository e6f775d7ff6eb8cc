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
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

from gateway.disclosure.flow import Gateway
from gateway.log.actions import ActionLog, Person, target
from gateway.rights.outbox import NoticeOutbox
from gateway.rights.subjects import ReportStore
from gateway.rights.withdrawal import WithdrawalNotices, send_withdrawal_notices
from gateway.store.ports import ConsentLapseStore

log = logging.getLogger(__name__)

# Who lapses a consent: no person acts, the configuration in force does.
LAPSE_ACTOR: Final = Person("system:policy", "config:policy.min_consent_version")


class LapseStore(ReportStore, ConsentLapseStore, Protocol):
    """What a lapse reads (the consents, the log) and marks."""


async def lapse_consents(
    gw: Gateway, store: LapseStore, actions: ActionLog, outbox: NoticeOutbox
) -> list[WithdrawalNotices]:
    """Lapse every live consent under a version older than the policy's
    `min_consent_version`; their notices queued in `outbox`. What each lapse queued."""
    min_version = gw.config.policy.min_consent_version
    lapsed: list[WithdrawalNotices] = []
    while batch := await store.consents_to_lapse(min_version, gw.clock()):
        for consent in batch:
            # The act first, then its effects (gateway.log.actions): a crash in between
            # redoes the lapse on the next start, its notices still queued only once.
            await actions.record(
                LAPSE_ACTOR,
                "consent_lapsed",
                target=target("consent", consent.id[:200]),
                consent_id=consent.id,
                policy_versions={
                    "consent": consent.policy_version,
                    "min_consent_version": min_version,
                },
            )
            notices = await send_withdrawal_notices(
                gw, store, gw.log_keys, LAPSE_ACTOR.id, consent, outbox=outbox, queue_only=True
            )
            await store.mark_consent_lapsed(consent.id, gw.clock())
            lapsed.append(notices)
    if lapsed:
        log.info(
            "%d consents lapsed under min_consent_version %s; their notices are queued",
            len(lapsed),
            min_version,
        )
    return lapsed


async def lapse_in_background(
    gw: Gateway, store: LapseStore, actions: ActionLog, outbox: NoticeOutbox
) -> None:
    """The start-up task of `gateway serve`: lapse, then one outbox round sends what was
    queued (the outbox's loop retries the rest). A store or log away is logged; the next
    start tries again, as every consent not marked lapsed is looked at again."""
    try:
        if await lapse_consents(gw, store, actions, outbox):
            await outbox.run_due()
    except Exception:
        log.exception("the lapse of consents under an older policy version did not finish")
