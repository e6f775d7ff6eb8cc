"""A withdrawn consent reaches the partners that received data under it (policy VII.4).

Which partners: the log says it. Every intent entry records the `consent_id` the decision
relied on (`gateway.log.entries.intent_entry`), so among the subject's disclosures (found
by its keyed references, as the subject report finds them) those with basis `consent` and
that consent's id, which reached the partner (or may have), name the recipients. Partners
that received the subject's data on another basis, or under another consent, are not told.

How: like an erasure notice (gateway.rights.subjects.send_notice), a disclosure of its own
with `notice: "consent_withdrawn"` in its claims, through the partner's `notice_operation`
(its file, default `erasure`), under the reference `CW-<consent id>`. The same reference
makes a repeat idempotent: a partner the log shows already notified for it is not notified
again. A partner without the operation is listed for manual follow-up; a notice it does
not accept is kept in the outbox (gateway.rights.outbox).

The consent store keeps only the subject's keyed reference, so the subject's id comes
from whoever withdraws (the API body's `subject`, the CLI's `--subject`); it is checked
against the consent before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.crypto.subject_keys import LogKeys
from gateway.disclosure.flow import Gateway
from gateway.errors import NotFoundError
from gateway.partners.model import Partner
from gateway.policy.facts import Consent
from gateway.rights.outbox import NoticeOutbox
from gateway.rights.subjects import (
    ERASURE_OPERATION,
    RECEIVED,
    WITHDRAWAL_KIND,
    WITHDRAWAL_PREFIX,
    Notice,
    ReportStore,
    keep_if_failed,
    send_notice,
    subject_report,
)


def withdrawal_reference(consent_id: str) -> str:
    return f"{WITHDRAWAL_PREFIX}{consent_id}"


def notice_operation(partner: Partner) -> str:
    """The operation a withdrawal notice to `partner` goes through."""
    return partner.notice_operation or ERASURE_OPERATION


def recipients_under_consent(report: list[dict[str, Any]], consent_id: str) -> list[str]:
    """The partners the report shows received data (or may have) under `consent_id`."""
    return sorted(
        {
            str(row["partner"])
            for row in report
            if row.get("legal_basis") == "consent"
            and row.get("consent_id") == consent_id
            and (row["outcome"] in RECEIVED or row["maybe_received"])
        }
    )


def already_notified(report: list[dict[str, Any]], reference: str) -> set[str]:
    """The partners a notice under `reference` already reached."""
    return {
        str(row["partner"])
        for row in report
        if row.get("legal_request_id") == reference and row["outcome"] in RECEIVED
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
            "was recorded for (or leave 'subject' out: no partner is notified then)"
        )


async def send_withdrawal_notices(
    gw: Gateway,
    store: ReportStore,
    log_keys: LogKeys,
    officer: str,
    subject: str,
    consent_id: str,
    *,
    outbox: NoticeOutbox | None = None,
) -> WithdrawalNotices:
    """Tell every partner that received `subject`'s data under `consent_id` (and no other)
    that the consent is withdrawn; each notice logged, a failed one kept in `outbox`.
    `officer`: the id of the person who withdrew it (the notices' caller in the log)."""
    report = await subject_report(store, log_keys, gw.partners, subject)
    reference = withdrawal_reference(consent_id)
    before = already_notified(report, reference)
    result = WithdrawalNotices(consent_id, reference, notified_before=sorted(before))
    data = {"uuid": subject}
    for partner_id in recipients_under_consent(report, consent_id):
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
        notice = await send_notice(
            gw, officer, partner, operation, subject, WITHDRAWAL_KIND, data, reference
        )
        result.notices.append(
            await keep_if_failed(
                outbox, notice, WITHDRAWAL_KIND, operation, subject, data, reference, officer
            )
        )
    return result
