"""Review-site sessions and consent-lapse claims in the store (schema 15), on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.config.model import RetentionConfig
from gateway.ops.retention import Retention
from gateway.policy.facts import Consent
from gateway.store.base import Store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOURS_8 = timedelta(hours=8)
DARA = "http://localhost:1#dara"
OTHER = "alice"


async def test_a_session_lives_until_ended_or_expired(store: Store) -> None:
    await store.add_review_session("s-1", DARA, NOW, NOW + HOURS_8)
    await store.add_review_session("s-2", DARA, NOW, NOW + HOURS_8)
    await store.add_review_session("s-3", OTHER, NOW, NOW + HOURS_8)
    assert await store.review_session_live("s-1", DARA, NOW)
    assert not await store.review_session_live("s-1", OTHER, NOW)  # not theirs
    assert not await store.review_session_live("s-9", DARA, NOW)  # no such row
    assert not await store.review_session_live("s-1", DARA, NOW + HOURS_8)  # expired
    assert await store.live_review_sessions_of(DARA, NOW) == 2

    assert not await store.end_review_session("s-3", DARA, NOW)  # not Dara's
    assert await store.end_review_session("s-1", DARA, NOW)
    assert not await store.end_review_session("s-1", DARA, NOW)  # once
    assert not await store.review_session_live("s-1", DARA, NOW)
    assert await store.review_session_live("s-2", DARA, NOW)

    assert await store.end_review_sessions_of(DARA, NOW) == 1
    assert await store.end_review_sessions_of(DARA, NOW) == 0
    assert await store.live_review_sessions_of(DARA, NOW) == 0
    assert await store.review_session_live("s-3", OTHER, NOW)  # nobody else's


async def test_expired_sessions_are_left_to_the_retention_sweep(store: Store) -> None:
    await store.add_review_session("old", DARA, NOW - 2 * HOURS_8, NOW - HOURS_8)
    await store.add_review_session("new", DARA, NOW, NOW + HOURS_8)
    # The sign-in deleted nothing; the sweep deletes the expired row, and only it.
    pruned = await Retention(store, RetentionConfig(), clock=lambda: NOW).prune()
    assert pruned.review_sessions == 1
    assert await store.review_session_live("new", DARA, NOW)
    assert await store.live_review_sessions_of(DARA, NOW - 2 * HOURS_8) == 1


async def test_one_claim_wins_and_a_stale_one_is_taken_over_once(store: Store) -> None:
    consent = Consent(
        id="c-1",
        subject="ref-1",
        purposes=frozenset({"marketing"}),
        partners=frozenset({"adreach"}),
        partner_categories=frozenset(),
        special_categories=frozenset(),
        policy_version="2024-09-30",
        obtained_at=NOW - timedelta(days=30),
    )
    await store.add_consent(consent)
    assert await store.consent_lapse_claim("c-1") is None
    assert await store.claim_consent_lapse("c-1", NOW)
    assert not await store.claim_consent_lapse("c-1", NOW)  # claimed already
    assert await store.consent_lapse_claim("c-1") == NOW
    # Left out of a run while fresh; looked at again once stale.
    assert await store.consents_to_lapse("2025-03-01", NOW, claimed_before=NOW - HOURS_8) == []
    later = NOW + HOURS_8
    assert [c.id for c in await store.consents_to_lapse("2025-03-01", later)] == ["c-1"]
    assert not await store.claim_consent_lapse("c-1", later, over=NOW - HOURS_8)  # not it
    assert await store.claim_consent_lapse("c-1", later, over=NOW)
    assert not await store.claim_consent_lapse("c-1", later, over=NOW)  # taken over once
    await store.mark_consent_lapsed("c-1", later)
    assert not await store.claim_consent_lapse("c-1", later, over=later)  # lapsed
    assert await store.consents_to_lapse("2025-03-01", later + HOURS_8) == []
