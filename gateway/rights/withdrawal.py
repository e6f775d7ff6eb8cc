"""A withdrawn (or lapsed) consent reaches the partners that received data under it
(policy VII.4).

Which partners: the log says it, without the subject's id. Every intent entry records the
`consent_id` the decision relied on (`gateway.log.entries.intent_entry`), so the intents
with basis `consent` and that id, since the consent was obtained, that reached the partner
or may have (sent; a timeout after sending, `unknown` or no outcome yet), name the
recipients and the disclosures each received. They are read by the projection's
`consent_id` column (schema 16, indexed with the entry's index): only that consent's
intents, whatever the size of the log (a scan of every consent-based intent since the
consent took 10.5-11.5 s at 1,000,000 entries), each row checked against its bytes. Partners
that received data on another basis, or under another consent, are not told.

What: a notice names what the partner received, not whom. It is a disclosure of its own
(gateway.rights.subjects.send_notice) through the partner's `notice_operation` (its file,
default `erasure`), on basis `legal_obligation` under the reference `CW-<consent id>`,
whose claims add `notice: "consent_withdrawn"`, `consent_id` and `disclosure_ids` (the
partner's own disclosures under the consent); its `data` is empty, so no subject id is
held, kept or sent again, and the operation's minimization has nothing to let through.
Its log entries carry the subject reference of the disclosures it is about, so the
subject's report lists it (and forgetting that month's key makes it unlinkable too).

Once: a partner the log shows already notified under the reference is not notified
again, and a notice waiting in the outbox has an id derived from the consent and the
partner (:func:`outbox_id`), so no second one is queued — across requests, restarts and
instances alike. A partner without the operation is listed for manual follow-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, TypedDict

from gateway.crypto.subject_keys import LogKeys
from gateway.disclosure.flow import Gateway
from gateway.errors import ConflictError, NotFoundError
from gateway.log.columns import ConsentIntentsStore, checked_consent_intents, checked_disclosures
from gateway.log.record import EntryRecord
from gateway.log.search import OUTCOME_BATCH, Query, search, subject_refs
from gateway.partners.model import ERASURE_OPERATION, Partner
from gateway.policy.facts import Consent
from gateway.rights.outbox import Attempted, NoticeOutbox
from gateway.rights.subjects import (
    RECEIVED,
    WITHDRAWAL_KIND,
    WITHDRAWAL_PREFIX,
    Notice,
    ReportStore,
    send_notice,
)

# How far before a consent's recorded `obtained_at` its disclosures are looked for: the
# time is the caller's statement, the disclosures' times are the gateway's.
OBTAINED_AT_SLACK: Final = timedelta(days=1)
# A notice still waiting in the outbox (pending or failed, never dropped).
WAITING: Final = ("pending", "failed")


def withdrawal_reference(consent_id: str) -> str:
    return f"{WITHDRAWAL_PREFIX}{consent_id}"


def outbox_id(consent_id: str, partner_id: str) -> str:
    """The outbox id of the withdrawal notice of `consent_id` to `partner_id`: one per pair,
    so a second withdrawal, a lapse after a restart or another instance queues none."""
    return f"n-{withdrawal_reference(consent_id)}-{partner_id}"


def notice_operation(partner: Partner) -> str:
    """The operation a withdrawal notice to `partner` goes through."""
    return partner.notice_operation or ERASURE_OPERATION


class RecipientsStore(ReportStore, ConsentIntentsStore, Protocol):
    """What a withdrawal reads: the report's searches and a consent's intents."""


@dataclass
class ReceivedUnder:
    """What one partner received under a consent: the disclosures, and the subject
    reference the notice's entries carry (the latest disclosure's)."""

    partner: str
    disclosure_ids: list[str] = field(default_factory=list)
    subject_ref: str = ""


def notice_claims(consent_id: str, disclosure_ids: Iterable[str]) -> dict[str, Any]:
    """The claims a withdrawal notice adds to a disclosure's (CONTRACT §4.4)."""
    return {"consent_id": consent_id, "disclosure_ids": sorted(disclosure_ids)}


async def received_under(
    store: RecipientsStore, consent_id: str, since: datetime
) -> dict[str, ReceivedUnder]:
    """The partners the log shows received data (or may have) under `consent_id`, found
    among its consent-based intents since `since` (by the consent's index); by partner
    id. A page's outcomes are read in one query (a search's batch of them)."""
    found: dict[str, ReceivedUnder] = {}
    after = -1
    while intents := await checked_consent_intents(store, consent_id, since, after, OUTCOME_BATCH):
        ids = list(dict.fromkeys(str(i.disclosure_id) for i in intents))
        entries = await checked_disclosures(store, ids)
        for intent in intents:
            if not _reached(intent, entries[str(intent.disclosure_id)]):
                continue
            partner = str(intent.partner)
            row = found.setdefault(partner, ReceivedUnder(partner))
            row.disclosure_ids.append(str(intent.disclosure_id))
            row.subject_ref = str(intent.subject_ref or "")
        after = intents[-1].index
    return found


def _reached(intent: EntryRecord, entries: Iterable[EntryRecord]) -> bool:
    """Whether the partner holds (or may hold) what `intent` sent: its latest outcome
    among its disclosure's `entries`."""
    outcomes = [e for e in entries if e.kind == "outcome" and e.index > intent.index]
    if not outcomes:
        return True  # no outcome yet (interrupted, or still being sent): it may have
    last = outcomes[-1]
    # As a breach scope counts them (CONTRACT §4.4.1): sent, or maybe received — a
    # timeout after sending, or `unknown` after a crash.
    return last.outcome in (*RECEIVED, "unknown") or last.maybe_received


async def already_notified(
    store: ReportStore, refs: Iterable[str], reference: str, since: datetime
) -> set[str]:
    """The partners a notice under `reference` already reached: found by the subject
    references the notices carry (those of the disclosures they are about)."""
    wanted = sorted(set(refs))
    if not wanted:
        return set()
    query = Query(subject_refs=wanted, legal_basis="legal_obligation", since=since)
    return {
        str(found.entry.partner)
        async for found in search(store, query)
        if found.entry.legal_request_id == reference and found.outcome in RECEIVED
    }


@dataclass(frozen=True)
class WithdrawalNotices:
    """What a withdrawal told the partners (the API's and the CLI's `notices` member)."""

    consent_id: str
    reference: str
    notices: list[Notice] = field(default_factory=list)
    notified_before: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": WITHDRAWAL_KIND,
            "reference": self.reference,
            "notices": [n.as_json() for n in self.notices if n.status != "manual"],
            "manual_follow_up": [n.as_json() for n in self.notices if n.status == "manual"],
            "notified_before": self.notified_before,
        }


class SubjectConsents(Protocol):
    async def get_consent(self, consent_id: str) -> Consent | None: ...
    async def consents_for_subject(self, subject: str) -> list[Consent]: ...


async def check_consent_of(store: SubjectConsents, consent_id: str, subject: str | None) -> None:
    """Refuse, before the withdrawal's action entry is written and anything is withdrawn
    or sent, an unknown consent or a subject the consent is not about."""
    if subject is None:
        if await store.get_consent(consent_id) is None:
            raise NotFoundError("no consent with this id")
        return
    # The answer of an unknown consent (404), so no caller learns whose a consent is.
    if not any(c.id == consent_id for c in await store.consents_for_subject(subject)):
        raise NotFoundError(
            "no consent with this id is one of this subject's: name the subject the consent "
            "was recorded for, or leave 'subject' out (it is not needed)"
        )


async def send_withdrawal_notices(
    gw: Gateway,
    store: RecipientsStore,
    log_keys: LogKeys,
    officer: str,
    consent: Consent,
    *,
    outbox: NoticeOutbox | None = None,
    subject: str | None = None,
    queue_only: bool = False,
) -> WithdrawalNotices:
    """Tell every partner that received data under `consent` (and no other) that it no
    longer counts; each notice logged, one not accepted kept in `outbox`. `officer`: who
    withdrew it (the notices' caller in the log). With `queue_only` nothing is sent
    here: every notice waits in `outbox` for its next round (a lapse at start-up never
    waits on a partner). `subject`, when the withdrawer named it, also finds notices an
    earlier version sent under the subject's own references."""
    reference = withdrawal_reference(consent.id)
    since = consent.obtained_at - OBTAINED_AT_SLACK
    recipients = await received_under(store, consent.id, since)
    refs = {r.subject_ref for r in recipients.values() if r.subject_ref}
    if subject is not None:
        refs.update(await subject_refs(store, log_keys, subject, since=since))
    before = await already_notified(store, refs, reference, since)
    result = WithdrawalNotices(consent.id, reference, notified_before=sorted(before))
    for partner_id, received in sorted(recipients.items()):
        if partner_id in before:
            continue
        partner = gw.partners.get(partner_id)
        operation = notice_operation(partner) if partner is not None else ERASURE_OPERATION
        if partner is None or operation not in partner.operations:
            result.notices.append(
                Notice(
                    partner_id,
                    "manual",
                    detail=f"no {operation} operation in the partner file: tell the partner "
                    "of the withdrawal by hand",
                    privacy_contact=partner.privacy_contact if partner else None,
                )
            )
            continue
        waiting = await _waiting(outbox, consent.id, partner_id)
        if waiting is not None:
            result.notices.append(waiting)
            continue
        claims = notice_claims(consent.id, received.disclosure_ids)
        payload = {"subject_ref": received.subject_ref, "claims": claims, "officer": officer}
        if queue_only and outbox is not None:
            result.notices.append(await _queue(outbox, consent.id, partner, operation, payload))
            continue
        notice = await send_notice(
            gw,
            officer,
            partner,
            operation,
            "",
            WITHDRAWAL_KIND,
            {},
            reference,
            subject_ref=received.subject_ref,
            claims=claims,
        )
        result.notices.append(await _keep_if_failed(outbox, consent.id, notice, operation, payload))
    return result


async def _waiting(outbox: NoticeOutbox | None, consent_id: str, partner_id: str) -> Notice | None:
    """The notice already waiting in the outbox for this consent and partner, if any."""
    if outbox is None:
        return None
    kept = await outbox.store.outbox_notice(outbox_id(consent_id, partner_id))
    if kept is None or kept.status not in WAITING:
        return None
    return Notice(
        partner_id,
        "queued",
        kept.disclosure_id or None,
        problem=kept.last_error or None,
        detail="waiting in the notice outbox since an earlier withdrawal",
        outbox_id=kept.id,
    )


async def _queue(
    outbox: NoticeOutbox,
    consent_id: str,
    partner: Partner,
    operation: str,
    payload: Mapping[str, Any],
) -> Notice:
    notice_id = await _store_once(outbox, consent_id, partner.id, operation, payload, None)
    return Notice(partner.id, "queued", outbox_id=notice_id)


async def _keep_if_failed(
    outbox: NoticeOutbox | None,
    consent_id: str,
    notice: Notice,
    operation: str,
    payload: Mapping[str, Any],
) -> Notice:
    if outbox is None or notice.status != "failed":
        return notice
    first = Attempted(
        False,
        notice.disclosure_id,
        notice.problem or f"partner_status_{notice.partner_status}",
    )
    notice_id = await _store_once(outbox, consent_id, notice.partner, operation, payload, first)
    return replace(notice, outbox_id=notice_id)


class _NoticeFields(TypedDict):
    """What `NoticeOutbox.queue` and `.keep` both store of a withdrawal notice."""

    kind: str
    partner: str
    operation: str
    reference: str
    payload: Mapping[str, Any]


async def _store_once(
    outbox: NoticeOutbox,
    consent_id: str,
    partner_id: str,
    operation: str,
    payload: Mapping[str, Any],
    first: Attempted | None,
) -> str:
    """Store the notice of `consent_id` to `partner_id` under its derived id: queued (due
    now) when not attempted yet, else kept with its failed `first` attempt. Another
    instance or a concurrent withdrawal that stored it first is one notice all the same.
    Returns its id."""
    notice_id = outbox_id(consent_id, partner_id)
    fields = _NoticeFields(
        kind=WITHDRAWAL_KIND,
        partner=partner_id,
        operation=operation,
        reference=withdrawal_reference(consent_id),
        payload=payload,
    )
    try:
        if first is None:
            await outbox.queue(notice_id=notice_id, **fields)
        else:
            await outbox.keep(notice_id=notice_id, first=first, **fields)
    except ConflictError:  # stored first elsewhere: the same derived id, one notice
        pass
    return notice_id
