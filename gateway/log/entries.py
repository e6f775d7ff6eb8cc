"""Disclosure log entries (CONTRACT §5): what is written, and nothing personal.

An entry is a flat JSON object serialized canonically (sorted keys, no spaces,
UTF-8) — those bytes are the Merkle leaf. The subject appears only as a keyed
HMAC, the payload only as a keyed digest, both under the key of the entry's month
(``gateway.crypto.subject_keys``: forgetting a month's key makes them unlinkable);
field names and transforms are kept so a reviewer sees *what kind* of data went
where without seeing the data.

The entry's index is its position in the tree (the leaf number), so it is not part
of the bytes: it is assigned by the store when the entry is appended.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from gateway import vocabulary as v
from gateway.canonical import canonical_entry, canonical_json, timestamp
from gateway.crypto.subject_keys import LogKeys
from gateway.log.columns import KINDS, OUTCOMES, NotAnEntry
from gateway.log.merkle import leaf_hash
from gateway.partners.model import Operation, Partner
from gateway.policy.decide import Decision
from gateway.policy.minimize import NESTED
from gateway.policy.request import DisclosureRequest
from gateway.store.projection import check_entry
from gateway.store.records import LogRow

__all__ = [
    "ACTIONS",
    "FORMAT_VERSION",
    "KINDS",
    "OUTCOMES",
    "LogKeys",
    "action_entry",
    "canonical_json",
    "intent_entry",
    "outcome_entry",
    "refused_entry",
    "refused_for_intent",
    "refused_without_request",
    "row_of",
    "target",
    "timestamp",
]

FORMAT_VERSION = 1

LOGGED_FIELD_NAMES: Final = v.FIELDS | {f"{NESTED}.{key}" for key in v.PAYMENT_RECORD_KEYS}
"""The only field names an entry may hold: the vocabulary's. Any other name a caller
sends is counted (`withheld_unknown`), never written: a name can itself be personal data
(an e-mail address was seen), and the log cannot forget."""


def _common(
    kind: str,
    disclosure_id: str,
    caller: str,
    request: DisclosureRequest,
    partner: Partner | None,
    at: datetime,
    keys: LogKeys,
    policy_version: str,
) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "kind": kind,
        "time": timestamp(at),
        "disclosure_id": disclosure_id,
        "caller": caller,
        "partner": request.partner,
        "partner_category": partner.category if partner else None,
        "operation": request.operation,
        "purpose": request.purpose,
        "legal_basis": request.legal_basis,
        "policy_version": policy_version,
        "subject_ref": request.subject_ref or keys.subject_ref(request.subject, at),
    }


def intent_entry(
    *,
    disclosure_id: str,
    caller: str,
    request: DisclosureRequest,
    partner: Partner,
    operation: Operation,
    decision: Decision,
    minimized: Mapping[str, Any],
    at: datetime,
    keys: LogKeys,
    policy_version: str,
    instance: str | None = None,
) -> dict[str, Any]:
    """The intent of one disclosure. `instance` names the gateway process sending it, so
    that crash recovery marks only a dead process's interrupted disclosures `unknown`
    (gateway.log.recovery stamps it when the caller leaves it out)."""
    entry = _common("intent", disclosure_id, caller, request, partner, at, keys, policy_version)
    if instance is not None:
        entry["instance"] = instance
    entry.update(
        method=operation.method,
        consent_id=decision.consent_id,
        legal_request_id=decision.legal_request_id,
        fields=dict(decision.disclosed),
        withheld=sorted(name for name in decision.withheld if name in LOGGED_FIELD_NAMES),
        data_digest=keys.data_digest(minimized, at),
        needs_review=decision.needs_review,
        retention_days=partner.retention_days,
    )
    unknown = sum(1 for name in decision.withheld if name not in LOGGED_FIELD_NAMES)
    if unknown:
        entry["withheld_unknown"] = unknown
    if decision.bound_by_policy_version:
        entry["bound_by_policy_version"] = decision.bound_by_policy_version
    return entry


def refused_entry(
    *,
    disclosure_id: str,
    caller: str,
    request: DisclosureRequest,
    partner: Partner | None,
    decision: Decision,
    at: datetime,
    keys: LogKeys,
    policy_version: str,
) -> dict[str, Any]:
    entry = _common("refused", disclosure_id, caller, request, partner, at, keys, policy_version)
    # Reasons name rules, ids and vocabulary, never values (tests/unit/policy/test_policy.py) —
    # except the caller's own partner or operation id when no such one exists: then the
    # entry records the problem alone, and no id the caller made up.
    reasons = list(decision.reasons)
    if partner is None:
        entry["partner"] = None
        reasons = [str(decision.problem)]
    if partner is None or request.operation not in partner.operations:
        entry["operation"] = None
        reasons = [str(decision.problem)]
    entry.update(problem=decision.problem, reasons=reasons)
    return entry


# What a refusal keeps of an intent that was never logged (gateway.log.recovery).
_REFUSAL_KEEPS: Final = (
    "v",
    "time",
    "disclosure_id",
    "caller",
    "partner",
    "partner_category",
    "operation",
    "purpose",
    "legal_basis",
    "policy_version",
    "subject_ref",
)


def refused_for_intent(intent: Mapping[str, Any], problem: str, reason: str) -> dict[str, Any]:
    """The refused entry of a disclosure whose intent could not be logged: nothing was
    sent, and the caller was refused with `problem`."""
    entry = {key: intent.get(key) for key in _REFUSAL_KEEPS}
    entry.update(kind="refused", problem=problem, reasons=[f"{reason}, so nothing was sent"])
    return entry


def refused_without_request(
    *,
    disclosure_id: str,
    caller: str,
    problem: str,
    reason: str,
    at: datetime,
    policy_version: str,
) -> dict[str, Any]:
    """A refusal raised before there was a request to record (a body that did not parse):
    the caller, the time and the problem, and nothing the caller sent."""
    entry: dict[str, Any] = dict.fromkeys(_REFUSAL_KEEPS)
    entry.update(
        v=FORMAT_VERSION,
        kind="refused",
        time=timestamp(at),
        disclosure_id=disclosure_id,
        caller=caller,
        policy_version=policy_version,
        problem=problem,
        reasons=[reason],
    )
    return entry


def outcome_entry(
    *,
    disclosure_id: str,
    outcome: str,
    at: datetime,
    partner: str,
    partner_status: int | None = None,
    attempts: int = 0,
    problem: str | None = None,
    maybe_received: bool | None = None,
    ack: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """`ack`, for a partner whose file asks for acknowledgements: (the verified compact JWS,
    None) or ("missing" | "invalid", the reason code) — gateway.crypto.acknowledgement
    checked that a token holds only an id, a time and a hash. Without it the entry has no
    ack members, byte for byte as before."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} not among {OUTCOMES}")
    entry = {
        "v": FORMAT_VERSION,
        "kind": "outcome",
        "time": timestamp(at),
        "disclosure_id": disclosure_id,
        "partner": partner,
        "outcome": outcome,
        "partner_status": partner_status,
        "attempts": attempts,
        "problem": problem,
        # For a failure: whether any attempt may have reached the partner (a timeout
        # after sending), which a reviewer must treat as a possible disclosure.
        "maybe_received": maybe_received,
    }
    if ack is not None:
        entry["ack"], reason = ack
        if reason is not None:
            entry["ack_reason"] = reason
    return entry


def row_of(entry: Mapping[str, Any]) -> LogRow:
    """The row to append for `entry`: its canonical bytes and leaf hash. The search columns
    are the projector's to derive, after the commit; ValueError here for an entry it could
    not derive them from, which the log could never take back."""
    try:
        check_entry(entry)
    except NotAnEntry as exc:
        raise ValueError(str(exc)) from None
    data = canonical_entry(entry)
    return LogRow(data, leaf_hash(data))


# -- a person's act (issue #18 item 5) -------------------------------------------------------

ACTIONS: Final = frozenset(
    {
        # partners
        "suspend",
        "resume",
        # the emergency queue
        "justify",
        # lawful requests
        "register_lawful_request",
        "approve_lawful_request",
        "reject_lawful_request",
        # a subject's consents and rights
        "consent_given",
        "consent_withdrawn",
        "restrict",
        "lift_restriction",
        "erasure_requested",
        "rectification_requested",
        "set_profile",
        # a consent under a version older than [policy] min_consent_version (rights.lapse)
        "consent_lapsed",
        # the notice outbox (gateway.rights.outbox): a person sends a kept notice now
        "retry_notice",
        # a person's API token for the CLI, made and revoked on the review site
        "create_personal_token",
        "revoke_personal_token",
        # a person's review-site sessions ended: "sign out everywhere", or a leaver's
        # (gateway tokens revoke --person); target sessions:<person id>
        "end_sessions",
        # reads of personal scope (the policy map: every call is logged)
        "read_subject_report",
        "read_subject_consents",
        "search_by_subject",
        "export",
        # breach scope (issue #19): a partner's exposure, and a customer list matched to it
        "read_exposure",
        "resolve_subjects",
        # witnessing: a person clears a witness's rollback alarm (gateway witness alarm clear)
        "clear_witness_alarm",
    }
)
"""What an `action` entry may say was done: a fixed vocabulary, so an entry never carries
a word a person typed."""

TARGET_KINDS: Final = frozenset(
    {
        "partner",
        "disclosure",
        "lawful_request",
        "consent",
        "subject",
        "log",
        "notice",
        "personal_token",
        "witness",
        "sessions",
    }
)
"""What an act may be done to; the subject only as its keyed reference (``subject:<ref>``)."""

MAX_ACTION_ID: Final = 200


def target(kind: str, ident: str = "") -> str:
    """``<kind>:<id>``, the target of an act; ValueError for a kind outside TARGET_KINDS
    (a subject's target is made by `action_entry` from the subject, never passed in)."""
    if kind not in TARGET_KINDS or kind == "subject":
        raise ValueError(f"target kind {kind!r} not among {sorted(TARGET_KINDS - {'subject'})}")
    if len(ident) > MAX_ACTION_ID:
        raise ValueError(f"a target id has at most {MAX_ACTION_ID} characters")
    return f"{kind}:{ident}"


def action_entry(
    *,
    actor: str,
    credential: str,
    action: str,
    at: datetime,
    keys: LogKeys,
    target: str | None = None,
    subject: str | None = None,
    text: str | None = None,
    partner: str | None = None,
    disclosure_id: str = "",
    legal_request_id: str | None = None,
    consent_id: str | None = None,
    window: str | None = None,
    counts: Mapping[str, int] | None = None,
    policy_versions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The entry of one act of a person: who (`actor`), proven by which `credential` (its
    id — a token's kid, a password account — never the secret), did what (`action`, one of
    ACTIONS), to what (`target`, or the `subject` as its keyed reference), when.

    Free text (`text`: a justification, a reason) is never written: the entry holds its
    keyed hash under the month's key, the text stays in its table (sealed at rest), and
    ``gateway log verify`` checks that the two still agree. `disclosure_id` is set when the
    act concerns one disclosure (its entries then list it); else it is empty. A read of a
    time window (an exposure) names it in `window` (``<since>/<until>``) and what it found
    as `counts` (numbers only: never an id of what was read). A consent's lapse names the
    versions that made it lapse in `policy_versions` (`consent`, `min_consent_version`).
    """
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} not among {sorted(ACTIONS)}")
    for name, value in (("actor", actor), ("credential", credential)):
        if not value or len(value) > MAX_ACTION_ID:
            raise ValueError(f"an action's {name} is 1 to {MAX_ACTION_ID} characters")
    if (target is None) == (subject is None):
        raise ValueError("an action has a target or a subject, exactly one")
    entry: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "kind": "action",
        "time": timestamp(at),
        "disclosure_id": disclosure_id,
        "actor": actor,
        "credential": credential,
        "action": action,
    }
    if subject is not None:
        ref = keys.subject_ref(subject, at)
        entry.update(target=f"subject:{ref}", subject_ref=ref)
    else:
        assert target is not None
        if target.partition(":")[0] not in TARGET_KINDS - {"subject"}:
            raise ValueError(f"target {target[:40]!r} is not made by target()")
        entry["target"] = target
    if text is not None:
        entry["text_hash"] = keys.text_hash(text, at)
    links = {"partner": partner, "legal_request_id": legal_request_id, "consent_id": consent_id}
    entry.update((name, value) for name, value in links.items() if value is not None)
    if window is not None:
        entry["window"] = window
    if counts is not None:
        entry["counts"] = {str(name): int(value) for name, value in counts.items()}
    if policy_versions is not None:
        entry["policy_versions"] = {str(k): str(x) for k, x in policy_versions.items()}
    return entry
