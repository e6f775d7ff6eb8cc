"""The notice outbox on both stores (schema 8): kept notices survive a restart, two
instances never attempt one notice at once, and a notice out of attempts stays `failed`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.rights.outbox import Attempted, NoticeOutbox
from gateway.store import Store, open_store
from gateway.store.records import OutboxNotice

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Sealing:
    """A visible stand-in for the at-rest sealing (gateway.store.protected.PayloadSealing)."""

    def seal_payload(self, text: str) -> str:
        return "sealed:" + text

    def open_payload(self, text: str) -> str:
        assert text.startswith("sealed:")
        return text.removeprefix("sealed:")


class Partner:
    """A partner that is down until told otherwise, counting what it accepted."""

    def __init__(self) -> None:
        self.up = False
        self.accepted: list[str] = []
        self.tries = 0

    async def send(self, notice: OutboxNotice, payload: Mapping[str, Any]) -> Attempted:
        self.tries += 1
        await asyncio.sleep(0.05)  # long enough for a second instance to try meanwhile
        if not self.up:
            return Attempted(False, f"d-{self.tries}", "partner_unavailable")
        self.accepted.append(payload["subject"])
        return Attempted(True, f"d-{self.tries}")


async def kept(outbox: NoticeOutbox) -> OutboxNotice:
    return await outbox.keep(
        kind="consent_withdrawn",
        partner="lanexang-insurance",
        operation="erasure",
        reference="CW-c-1",
        payload={"subject": "s-1", "data": {"uuid": "s-1"}},
        first=Attempted(False, "d-0", "partner_unavailable"),
    )


async def test_two_instances_send_a_due_notice_once(backend):
    first = await open_store(backend.url, backend.root)
    second = await open_store(backend.url, backend.root)
    try:
        now = T0
        partner = Partner()
        a = NoticeOutbox(first, Sealing(), lambda: now, partner.send)
        b = NoticeOutbox(second, Sealing(), lambda: now, partner.send)
        notice = await kept(a)
        assert notice.payload == 'sealed:{"data": {"uuid": "s-1"}, "subject": "s-1"}'
        now += timedelta(minutes=1)
        partner.up = True
        done = await asyncio.gather(a.run_due(), b.run_due(), a.run_due(), b.run_due())
        assert sum(len(d) for d in done) == 1
        assert partner.accepted == ["s-1"] and partner.tries == 1
        [row] = await second.outbox_notices()
        assert (row.status, row.attempts, row.disclosure_id, row.lease_owner) == (
            "sent",
            2,
            "d-1",
            "",
        )
        now += timedelta(days=30)
        assert await a.run_due() == [] and await b.retry() == []
        assert partner.tries == 1
    finally:
        await first.close()
        await second.close()


async def test_a_kept_notice_survives_a_restart_and_a_dead_lease(backend):
    now = T0
    partner = Partner()
    store = await open_store(backend.url, backend.root)
    try:
        crashed = NoticeOutbox(store, Sealing(), lambda: now, partner.send, owner="crashed")
        notice = await kept(crashed)
        now += timedelta(minutes=1)
        # An instance claims it and dies before the result is stored: the lease holds it.
        assert await store.claim_outbox_notice(
            notice.id, "crashed", now, now + crashed.lease, due_only=True
        )
    finally:
        await store.close()
    store = await open_store(backend.url, backend.root)  # a restart
    try:
        partner.up = True
        survivor = NoticeOutbox(store, Sealing(), lambda: now, partner.send, owner="survivor")
        assert await survivor.run_due() == []  # the dead instance's lease is still live
        now += survivor.lease
        [done] = await survivor.run_due()
        assert done.status == "sent" and partner.accepted == ["s-1"]
        # The dead instance's late result is not stored over it.
        assert not await store.finish_outbox_attempt(done, "crashed")
    finally:
        await store.close()


async def test_out_of_attempts_stays_failed_and_a_person_can_retry(store: Store):
    now = T0
    partner = Partner()
    outbox = NoticeOutbox(
        store,
        Sealing(),
        lambda: now,
        partner.send,
        schedule_s=(60,),
        max_age=timedelta(minutes=2),
    )
    notice = await kept(outbox)
    now += timedelta(minutes=1)
    [again] = await outbox.run_due()
    assert (again.status, again.attempts) == ("pending", 2)
    now += timedelta(minutes=1)
    [last] = await outbox.run_due()
    assert (last.status, last.attempts, last.last_error) == (
        "failed",
        3,
        "partner_unavailable",
    )
    now += timedelta(days=1)
    assert await outbox.run_due() == []  # given up, never dropped
    assert [n.id for n in await store.outbox_notices(("failed",))] == [notice.id]
    assert await outbox.counts() == {"pending": 0, "sent": 0, "failed": 1}
    partner.up = True
    [retried] = await outbox.retry([notice.id])
    assert (retried.status, retried.attempts) == ("sent", 4)
    assert partner.accepted == ["s-1"]


async def test_the_status_filter_is_the_store_s_so_old_sent_rows_hide_nothing(store: Store):
    now = T0
    partner = Partner()
    partner.up = True
    outbox = NoticeOutbox(store, Sealing(), lambda: now, partner.send)
    old = await kept(outbox)
    now += timedelta(minutes=1)
    assert [n.status for n in await outbox.run_due()] == ["sent"]
    new = await kept(outbox)
    assert [n.id for n in await store.outbox_notices(("pending",), limit=1)] == [new.id]
    assert [n.id for n in await store.outbox_notices(("sent",), limit=1)] == [old.id]
    assert [n.id for n in await store.outbox_notices(limit=5)] == [old.id, new.id]
    assert await store.outbox_notices(("failed",)) == []


async def test_a_person_s_retry_sends_a_pending_notice_before_its_time(store: Store):
    now = T0
    partner = Partner()
    outbox = NoticeOutbox(store, Sealing(), lambda: now, partner.send)
    notice = await kept(outbox)
    now += timedelta(minutes=1)
    [tried] = await outbox.run_due()  # still down: next in 5 min
    assert tried.status == "pending"
    now += timedelta(minutes=2)
    partner.up = True
    assert await outbox.run_due() == []  # not due
    [sent] = await outbox.retry([notice.id])  # a person does not wait for it
    assert (sent.status, sent.attempts) == ("sent", 3) and partner.accepted == ["s-1"]
