"""Subject rights (policy VII.1, VII.2, VII.5; CONTRACT §4.4).

"Who received my data": every disclosure of a subject, found through the
subject's keyed references in the log (so periods whose keys were destroyed
are no longer linkable), with partner, category, purpose, basis, fields,
outcome and the partner's retention. Erasure and rectification notices go to
every partner that received the subject's data and has an `erasure`
operation, each one a disclosure of its own through the same pipeline and log;
partners without one are listed for a manual follow-up.

An erasure also removes the gateway's own copy (:func:`erase_own_copy`): what no law
requires it to keep, and nothing that protects the subject (see the README, "What an
erasure removes").
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol

from gateway import vocabulary as v
from gateway.config.model import Caller
from gateway.crypto.subject_keys import LogKeys
from gateway.disclosure.flow import Gateway, disclose
from gateway.disclosure.idempotency import Refusal, once, request_digest
from gateway.errors import GatewayError
from gateway.log.columns import DisclosuresStore, checked_search
from gateway.log.search import Query, SpanStore, search, subject_refs
from gateway.partners.model import ERASURE_OPERATION, Partner
from gateway.policy.facts import LegalRequest, SubjectFacts, invalid, profile_under_age
from gateway.policy.request import DisclosureRequest, check_data, check_field_names
from gateway.rights.outbox import Attempted, NoticeOutbox
from gateway.store.ports import IdempotencyStore
from gateway.store.records import MAX_SEARCH_LIMIT, LogQuery, OutboxNotice, StoredResponse

REPORT_COLUMNS = (
    "time",
    "disclosure_id",
    "partner",
    "partner_name",
    "partner_category",
    "operation",
    "purpose",
    "legal_basis",
    "fields",
    "outcome",
    "partner_status",
    "maybe_received",
    "consent_id",
    "legal_request_id",
    "policy_version",
    "retention_days",
)
NOTICE_KINDS = ("erasure", "rectification")
# The kind of a notice sent when a consent is withdrawn (gateway.rights.withdrawal).
WITHDRAWAL_KIND = "consent_withdrawn"
# Outcomes after which the partner holds (or may hold) the subject's data.
RECEIVED = ("sent",)
# The reference of a subject's rights request, named by each of its notices.
REFERENCE_PREFIX = "RR-"
# The reference of a consent's withdrawal notices: CW-<consent id> (gateway.rights.withdrawal).
WITHDRAWAL_PREFIX = "CW-"


def notice_of(operation: str | None, reference: str | None) -> str | None:
    """What kind of notice a disclosure in a subject's report is (None: not a notice)."""
    reference = reference or ""
    if reference.startswith(WITHDRAWAL_PREFIX):
        return WITHDRAWAL_KIND
    if reference.startswith(REFERENCE_PREFIX) and operation == ERASURE_OPERATION:
        return "erasure_or_rectification"
    return None


class ReportStore(DisclosuresStore, SpanStore, Protocol):
    """What the report reads: the log's search and its time span."""


async def subject_report(
    store: ReportStore, log_keys: LogKeys, partners: Mapping[str, Partner], subject: str
) -> list[dict[str, Any]]:
    """Every disclosure (not refusal) of `subject`, oldest first."""
    rows: list[dict[str, Any]] = []
    refs = await subject_refs(store, log_keys, subject)
    async for found in search(store, Query(subject_refs=refs)):
        entry = found.entry
        if entry.kind != "intent":
            continue
        last = found.outcomes[-1] if found.outcomes else None
        partner = partners.get(str(entry.partner))
        retention_days = entry.retention_days
        if "retention_days" not in entry.data:  # written before retention was logged
            retention_days = partner.retention_days if partner else None
        rows.append(
            {
                "time": entry.time,
                "disclosure_id": entry.disclosure_id,
                "partner": entry.partner,
                "partner_name": partner.name if partner else None,
                "partner_category": entry.partner_category,
                "operation": entry.operation,
                "purpose": entry.purpose,
                "legal_basis": entry.legal_basis,
                "fields": entry.fields,
                "outcome": found.outcome,
                "partner_status": last.partner_status if last else None,
                "maybe_received": last is not None and last.maybe_received,
                "consent_id": entry.consent_id,
                "legal_request_id": entry.legal_request_id,
                "policy_version": entry.policy_version,
                "retention_days": retention_days,
                "notice": notice_of(entry.operation, entry.legal_request_id),
            }
        )
    return rows


async def subject_actions(
    store: ReportStore, log_keys: LogKeys, subject: str
) -> list[dict[str, Any]]:
    """The acts and reads concerning `subject` (its consents, restrictions, rights requests
    and every read of its report), oldest first, as their `action` entries say: index,
    time, who, with which credential, what. Found by the subject's keyed references."""
    refs = await subject_refs(store, log_keys, subject)
    query = LogQuery(kind="action", subject_refs=refs, limit=MAX_SEARCH_LIMIT)
    acts: list[dict[str, Any]] = []
    while not query.matches_nothing and (rows := await checked_search(store, query)):
        acts.extend(
            {
                "index": entry.index,
                "time": entry.time,
                "actor": entry.actor,
                "credential": entry.credential,
                "action": entry.action,
            }
            for entry in rows
        )
        query = query.after(rows[-1].index)
    return acts


def report_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    for row in rows:
        cells = []
        for column in REPORT_COLUMNS:
            value = row.get(column)
            if column == "fields" and isinstance(value, Mapping):
                value = " ".join(f"{k}:{t}" for k, t in value.items())
            text = "" if value is None else str(value)
            # A cell a spreadsheet would run as a formula is quoted (CSV injection).
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@") else text)
        writer.writerow(cells)
    return out.getvalue()


@dataclass(frozen=True)
class Notice:
    partner: str
    status: str  # sent | failed | manual | queued (waiting in the outbox, not tried yet)
    disclosure_id: str | None = None
    partner_status: int | None = None
    problem: str | None = None
    detail: str | None = None
    privacy_contact: str | None = None
    outbox_id: str | None = None  # failed, and kept for later attempts (gateway.rights.outbox)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class EarlierNotice:
    """A notice an earlier erasure or rectification request sent, as the log shows it."""

    partner: str
    disclosure_id: str
    time: str
    reference: str | None
    outcome: str

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# Why each kind of record outlives an erasure (the answer says it, the README too).
KEPT_REASONS = {
    "consent_records": "the evidence that past disclosures were lawful (accountability): "
    "their ids, purposes, partners and times stay, withdrawn; their evidence text is removed",
    "restriction": "it protects the subject: disclosures stay limited to legal obligation "
    "and vital interest (policy VII.3)",
    "under_age_marker": f"it protects a child: consent-based and marketing disclosures stay "
    f"refused until the day the subject turns {v.MINIMUM_AGE} (policy I.1); the date of "
    "birth itself is removed",
    "lawful_requests": "an authority's request naming the subject is kept as the law that "
    "made it requires, with its approvals",
    "disclosure_log": "holds keyed references and field names, no personal value: the "
    "tamper-evident record of every disclosure, unlinkable once its period's key is "
    "destroyed (gateway log forget-before)",
}


@dataclass(frozen=True)
class GatewayCopy:
    """What an erasure did to the gateway's own records of the subject."""

    consent_evidence_removed: int = 0
    consents_withdrawn: int = 0
    date_of_birth_removed: bool = False
    under_age_until: date | None = None
    restricted: bool = False

    def as_json(self) -> dict[str, Any]:
        removed: list[dict[str, Any]] = [
            {"item": "consent_evidence", "count": self.consent_evidence_removed}
        ]
        if self.date_of_birth_removed:
            removed.append({"item": "date_of_birth"})
        kept: list[dict[str, Any]] = [
            {
                "item": "consent_records",
                "withdrawn_now": self.consents_withdrawn,
                "why": KEPT_REASONS["consent_records"],
            }
        ]
        if self.under_age_until is not None:
            kept.append(
                {
                    "item": "under_age_marker",
                    "until": self.under_age_until.isoformat(),
                    "why": KEPT_REASONS["under_age_marker"],
                }
            )
        if self.restricted:
            kept.append({"item": "restriction", "why": KEPT_REASONS["restriction"]})
        for item in ("lawful_requests", "disclosure_log"):
            kept.append({"item": item, "why": KEPT_REASONS[item]})
        return {"removed": removed, "kept": kept}


@dataclass(frozen=True)
class ErasureResult:
    kind: str
    reference: str
    notices: list[Notice] = field(default_factory=list)
    notified_before: list[EarlierNotice] = field(default_factory=list)
    gateway_copy: GatewayCopy | None = None  # erasure only: rectification changes nothing here

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "kind": self.kind,
            "reference": self.reference,
            "notices": [n.as_json() for n in self.notices if n.status != "manual"],
            "manual_follow_up": [n.as_json() for n in self.notices if n.status == "manual"],
            "notified_before": [n.as_json() for n in self.notified_before],
        }
        if self.gateway_copy is not None:
            answer["gateway_copy"] = self.gateway_copy.as_json()
        return answer


class ErasureStore(Protocol):
    """What erasing the gateway's own copy reads and writes."""

    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts: ...

    async def forget_subject(
        self, subject: str, at: datetime, profile: str | None
    ) -> tuple[int, int]: ...


def birthday_at_minimum_age(born: date) -> date:
    """The day a child born on `born` turns MINIMUM_AGE (29 February: 1 March)."""
    try:
        return born.replace(year=born.year + v.MINIMUM_AGE)
    except ValueError:
        return date(born.year + v.MINIMUM_AGE, 3, 1)


def profile_after_erasure(facts: SubjectFacts, today: date) -> tuple[str | None, date | None]:
    """The profile an erasure leaves (None: none) and the under-age date it keeps.

    A child's date of birth becomes "under the minimum age until its birthday at that
    age"; an adult's is removed; a marker already kept stays until its day has come.
    """
    until = facts.under_age_until
    if facts.date_of_birth is not None:
        until = max(filter(None, (until, birthday_at_minimum_age(facts.date_of_birth))))
    if until is None or until <= today:
        return None, None
    return profile_under_age(until), until


async def erase_own_copy(store: ErasureStore, subject: str, now: datetime) -> GatewayCopy:
    """Remove what the gateway holds of the subject that nothing requires it to keep."""
    facts = await store.subject_facts(subject, None)
    profile, until = profile_after_erasure(facts, now.date())
    cleared, withdrawn = await store.forget_subject(subject, now, profile)
    return GatewayCopy(
        consent_evidence_removed=cleared,
        consents_withdrawn=withdrawn,
        date_of_birth_removed=facts.date_of_birth is not None,
        under_age_until=until,
        restricted=facts.restricted,
    )


def earlier_notices(report: list[dict[str, Any]]) -> list[EarlierNotice]:
    """The notices of earlier rights requests in a subject's report (oldest first): each
    is a disclosure on the partner's erasure operation under a rights-request reference
    that reached the partner (or may have)."""
    return [
        EarlierNotice(
            partner=str(row["partner"]),
            disclosure_id=str(row["disclosure_id"]),
            time=str(row["time"]),
            reference=row.get("legal_request_id"),
            outcome=str(row["outcome"]),
        )
        for row in report
        if row.get("operation") == ERASURE_OPERATION
        and str(row.get("legal_request_id") or "").startswith(REFERENCE_PREFIX)
        and (row["outcome"] in RECEIVED or row["maybe_received"])
    ]


def parse_erasure(body: object, subject: str) -> tuple[str, dict[str, Any]]:
    """`{"kind": "erasure"|"rectification", "data": {...}}` → kind and identifiers.

    `data` holds what partners need to find the subject (e.g. `uuid`, `email`); each
    partner's erasure operation still decides which of them it receives, and how
    transformed. Without `data`, the subject id is sent as `uuid`.
    """
    if not isinstance(body, dict):
        raise invalid('body must be {"kind": "erasure"|"rectification", "data": {…}}')
    unknown = sorted(set(body) - {"kind", "data"})
    if unknown:
        raise invalid(f"unknown key {unknown[0][:40]!r}; valid: kind, data")
    kind = body.get("kind", "erasure")
    if kind not in NOTICE_KINDS:
        raise invalid(f"'kind' must be one of {', '.join(NOTICE_KINDS)}")
    data = check_data(body.get("data", {"uuid": subject}))
    check_field_names(data)  # as a disclosure would: refused before any partner is asked
    return str(kind), data


class RightsStore(ReportStore, ErasureStore, IdempotencyStore, Protocol):
    """What an erasure or rectification reads and changes."""


async def erase_or_rectify_once(
    gw: Gateway,
    store: RightsStore,
    officer: Caller,
    subject: str,
    body: object,
    *,
    key: str | None,
    render: Callable[[ErasureResult], StoredResponse],
    refusal: Refusal,
    outbox: NoticeOutbox | None = None,
) -> StoredResponse:
    """`erase_or_rectify` once per Idempotency-Key (`gateway.disclosure.idempotency`): a repeat gets
    the first answer again and sends no notice. `render` and `refusal` are the web
    layer's: the answer as bytes."""

    async def answer() -> StoredResponse:
        return render(await erase_or_rectify(gw, store, officer, subject, body, outbox=outbox))

    return await once(
        store,
        officer.id,
        key,
        request_digest(body, scope=f"POST /v1/subjects/{subject}/erasure"),
        answer,
        refusal=refusal,
        kept_headers=("Content-Type",),
        what="erasure or rectification request",
    )


async def erase_or_rectify(
    gw: Gateway,
    store: RightsStore,
    officer: Caller,
    subject: str,
    body: object,
    *,
    outbox: NoticeOutbox | None = None,
) -> ErasureResult:
    """POST /v1/subjects/{subject}/erasure: the notices, then (an erasure) the gateway's
    own copy, which the notices need nothing of."""
    kind, data = parse_erasure(body, subject)
    result = await send_erasure_notices(
        gw, store, gw.log_keys, officer, subject, kind, data, outbox=outbox
    )
    if kind == "erasure":
        copy = await erase_own_copy(store, subject, gw.clock())
        result = replace(result, gateway_copy=copy)
    return result


async def send_erasure_notices(
    gw: Gateway,
    store: ReportStore,
    log_keys: LogKeys,
    officer: Caller,
    subject: str,
    kind: str,
    data: Mapping[str, Any],
    *,
    outbox: NoticeOutbox | None = None,
) -> ErasureResult:
    """Notify every partner that received the subject's data; log each notice. A notice
    the partner does not accept is kept in `outbox` for later attempts."""
    report = await subject_report(store, log_keys, gw.partners, subject)
    recipients = sorted(
        {str(r["partner"]) for r in report if r["outcome"] in RECEIVED or r["maybe_received"]}
    )
    reference = f"{REFERENCE_PREFIX}{uuid.uuid4().hex[:12]}"
    result = ErasureResult(kind, reference, notified_before=earlier_notices(report))
    for partner_id in recipients:
        partner = gw.partners.get(partner_id)
        if partner is None or ERASURE_OPERATION not in partner.operations:
            result.notices.append(
                Notice(
                    partner_id,
                    "manual",
                    detail="no erasure operation in the partner file: notify the partner by hand",
                    privacy_contact=partner.privacy_contact if partner else None,
                )
            )
            continue
        notice = await send_notice(
            gw, officer.id, partner, ERASURE_OPERATION, subject, kind, data, reference
        )
        result.notices.append(
            await keep_if_failed(
                outbox, notice, kind, ERASURE_OPERATION, subject, data, reference, officer.id
            )
        )
    return result


async def keep_if_failed(
    outbox: NoticeOutbox | None,
    notice: Notice,
    kind: str,
    operation: str,
    subject: str,
    data: Mapping[str, Any],
    reference: str,
    officer: str = "",
) -> Notice:
    """`notice`, kept in the outbox when it failed (and there is one): with its id."""
    if outbox is None or notice.status != "failed":
        return notice
    error = notice.problem or f"partner_status_{notice.partner_status}"
    kept = await outbox.keep(
        kind=kind,
        partner=notice.partner,
        operation=operation,
        reference=reference,
        payload={"subject": subject, "data": dict(data), "officer": officer},
        first=Attempted(False, notice.disclosure_id, error),
    )
    return replace(notice, outbox_id=kept.id)


async def send_notice(
    gw: Gateway,
    officer_id: str,
    partner: Partner,
    operation: str,
    subject: str,
    kind: str,
    data: Mapping[str, Any],
    reference: str,
    *,
    subject_ref: str | None = None,
    claims: Mapping[str, Any] | None = None,
) -> Notice:
    """One notice of `kind` to `partner` through its `operation`: a disclosure of its own,
    sealed, delivered with retries and logged, under the rights-request `reference`.
    `subject_ref`: the subject's reference in the log, for a notice whose subject id the
    gateway does not hold (`subject` is then ""); `claims`: what the notice adds to its
    claims beside `notice` (a withdrawal's consent and disclosure ids)."""
    # The subject's own rights request is the lawful basis here (CONTRACT §4.4): no
    # authority's lawful request, only a rights officer; the notice names the request.
    facts = SubjectFacts(
        legal_requests={
            reference: LegalRequest(
                reference, "approved", frozenset({subject}), frozenset({partner.id})
            )
        }
    )
    sender = Caller(
        officer_id,
        frozenset({"discloser"}),
        frozenset({partner.id}),
        frozenset({"legal"}),
        frozenset({f"{partner.id}/{operation}"}),
    )
    request = DisclosureRequest(
        partner.id,
        operation,
        "legal",
        "legal_obligation",
        subject,
        data,
        reference,
        subject_ref=subject_ref,
    )
    extra = {**(claims or {}), "notice": kind}
    try:
        sent = await disclose(gw, sender, request, facts=facts, extra_claims=extra)
    except GatewayError as exc:
        return Notice(partner.id, "failed", exc.disclosure_id, problem=exc.code, detail=exc.detail)
    status = "sent" if sent.status < 400 else "failed"
    return Notice(partner.id, status, sent.disclosure_id, partner_status=sent.status)


def outbox_sender(gw: Gateway) -> Callable[[OutboxNotice, Mapping[str, Any]], Any]:
    """The outbox's attempt (gateway.rights.outbox.Send): the kept notice sent again
    through the partner's operation, as a new disclosure under the same reference."""

    async def send(kept: OutboxNotice, payload: Mapping[str, Any]) -> Attempted:
        partner = gw.partners.get(kept.partner)
        if partner is None or kept.operation not in partner.operations:
            return Attempted(False, error="partner_or_operation_gone")
        # An erasure's payload holds the subject and its identifiers; a consent
        # withdrawal's the subject's log reference and its claims (gateway.rights.withdrawal).
        notice = await send_notice(
            gw,
            str(payload.get("officer") or "notice-outbox"),
            partner,
            kept.operation,
            str(payload.get("subject") or ""),
            kept.kind,
            payload.get("data") or {},
            kept.reference,
            subject_ref=payload.get("subject_ref") or None,
            claims=payload.get("claims"),
        )
        error = notice.problem or f"partner_status_{notice.partner_status}"
        return Attempted(notice.status == "sent", notice.disclosure_id, error)

    return send
