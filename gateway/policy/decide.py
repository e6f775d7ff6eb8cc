"""decide(): may these fields go to this partner, for this purpose, on this basis,
for this subject, now? Pure: no I/O, no clock — `now` is an argument, and what is
known about the partner beyond its file (a suspension, when its keys expire)
arrives as a `PartnerState` value.

Each check is one clause of the privacy policy (the `# policy:` tags name it)
and returns the rules it finds broken. Every broken rule is a reason; the
problem is the first broken rule in the order CONTRACT §4.2 fixes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from gateway import vocabulary as v
from gateway.config.model import Caller, PolicyConfig
from gateway.partners.model import NO_PARTNER_STATE, Operation, Partner, PartnerState
from gateway.policy.facts import Consent, SubjectFacts
from gateway.policy.minimize import FieldPlan, age_in_years, plan_fields
from gateway.policy.request import DisclosureRequest

# CONTRACT §4.2: when several rules fail, the problem is the first of these. The
# partner's own standing (issue 9) comes right after the partner is known: a
# suspension first (a person stopped all sharing, e.g. after a breach), then the
# agreement that makes any sharing lawful, then the key needed to encrypt at all.
PROBLEM_ORDER = (
    "forbidden",
    "unknown_partner",
    "unknown_operation",
    "partner_suspended",
    "agreement_expired",
    "partner_key_expired",
    "purpose_not_allowed",
    "legal_basis_not_allowed",
    "subject_restricted",
    "subject_under_age",
    "date_of_birth_conflict",
    "legal_request_required",
    "consent_required",
    "consent_withdrawn",
    "consent_expired",
    "policy_not_in_force",
    "explicit_consent_required",
)
_RANK = {code: i for i, code in enumerate(PROBLEM_ORDER)}


@dataclass(frozen=True)
class Violation:
    code: str
    reason: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    problem: str | None
    reasons: tuple[str, ...]
    disclosed: Mapping[str, str]
    withheld: tuple[str, ...]
    needs_review: bool
    withheld_reasons: Mapping[str, str] = field(default_factory=dict)
    consent_id: str | None = None
    legal_request_id: str | None = None
    # policy: III.4 — a business-transfer recipient stays bound by the policy in force.
    bound_by_policy_version: str | None = None

    @property
    def detail(self) -> str:
        """The refusal detail: every broken rule, so the caller can tell the customer."""
        return "; ".join(self.reasons)

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "problem": self.problem,
            "reasons": list(self.reasons),
            "disclosed": dict(self.disclosed),
            "withheld": list(self.withheld),
            "withheld_reasons": dict(self.withheld_reasons),
            "needs_review": self.needs_review,
            "consent_id": self.consent_id,
            "legal_request_id": self.legal_request_id,
            "bound_by_policy_version": self.bound_by_policy_version,
        }


def decide(
    request: DisclosureRequest,
    caller: Caller,
    partners: Mapping[str, Partner],
    facts: SubjectFacts,
    policy: PolicyConfig,
    now: datetime,
    partner_state: PartnerState = NO_PARTNER_STATE,
) -> Decision:
    violations = list(_caller_allowlist(request, caller))
    partner = partners.get(request.partner)
    operation = partner.operations.get(request.operation) if partner else None
    if partner is not None:
        violations += _partner_standing(partner, partner_state, now)
    if partner is None:
        violations.append(
            Violation(
                "unknown_partner",
                f"no partner {request.partner!r} is "
                f"onboarded; known: {', '.join(sorted(partners)) or 'none'}",
            )
        )
    elif operation is None:
        violations.append(
            Violation(
                "unknown_operation",
                f"partner {partner.id!r} has no operation "
                f"{request.operation!r}; it has: {', '.join(sorted(partner.operations))}",
            )
        )
    if partner is None or operation is None:
        return _refusal(violations, FieldPlan({}, {name: "not evaluated" for name in request.data}))

    where = f"{partner.id}/{operation.name}"
    plan = _advertising_identifiers(
        request, partner, plan_fields(request.data, operation.fields, where)
    )
    violations += _purpose(request, operation, where)
    violations += _legal_basis(request, partner, operation, where)
    violations += _restriction(request, facts)
    violations += _age(request, facts, now.date())
    violations += _birth_dates_agree(request, facts, now.date())
    legal_violations, legal_request_id = _lawful_request(request, facts)
    violations += legal_violations
    consent_violations, consent = _consent(request, partner, facts, policy, now)
    violations += consent_violations
    violations += _special_categories(request, plan, consent, facts, partner, policy, now)
    if violations:
        return _refusal(violations, plan)
    return Decision(
        allowed=True,
        problem=None,
        reasons=(),
        disclosed=plan.disclosed,
        withheld=tuple(plan.withheld),
        withheld_reasons=plan.withheld,
        needs_review=request.legal_basis in v.BASES_NEEDING_REVIEW,  # policy: III.3
        consent_id=consent.id if consent else None,
        legal_request_id=legal_request_id,
        bound_by_policy_version=(
            policy.version if request.legal_basis == "business_transfer" else None
        ),
    )


def _refusal(violations: list[Violation], plan: FieldPlan) -> Decision:
    first = min(violations, key=lambda x: _RANK[x.code])
    return Decision(
        allowed=False,
        problem=first.code,
        reasons=tuple(x.reason for x in violations),
        disclosed={},
        withheld=tuple(plan.withheld) + tuple(plan.disclosed),
        withheld_reasons=plan.withheld,
        needs_review=False,
    )


# policy: VI need-to-know — callers use only what is listed for them.
def _caller_allowlist(request: DisclosureRequest, caller: Caller) -> Iterator[Violation]:
    if "discloser" not in caller.roles:
        yield Violation(
            "forbidden",
            f"caller {caller.id!r} lacks role 'discloser'; it has {sorted(caller.roles)}",
        )
    if not caller.may_use_partner(request.partner):
        yield _not_listed(caller, "use partner", request.partner, caller.partners)
    elif not caller.may_use_operation(request.partner, request.operation):
        yield _not_listed(caller, "use operation", request.operation, caller.operations)
    if not caller.may_use_purpose(request.purpose):
        yield _not_listed(caller, "disclose for purpose", request.purpose, caller.purposes)


def _not_listed(caller: Caller, what: str, value: str, listed: frozenset[str]) -> Violation:
    """Expected versus actual: what the caller asked for and what its entry lists."""
    return Violation(
        "forbidden", f"caller {caller.id!r} may not {what} {value!r}; allowed: {sorted(listed)}"
    )


# policy: III.2, VI — partners receive data only under a data-processing agreement in force,
# while not suspended, and encrypted to a key that has not expired.
def _partner_standing(partner: Partner, state: PartnerState, now: datetime) -> Iterator[Violation]:
    suspension = state.suspension
    if suspension is not None:
        yield Violation(
            "partner_suspended",
            f"partner {partner.id!r} is suspended since "
            f"{suspension.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: no disclosure goes to "
            "it until a reviewer resumes it "
            f"(gateway partners resume {partner.id})",
        )
    expires_on = partner.agreement_expires_on
    if expires_on is not None and now.astimezone(UTC).date() > expires_on:
        yield Violation(
            "agreement_expired",
            f"the data-processing agreement {partner.agreement} with {partner.id!r} expired "
            f"after {expires_on.isoformat()}: nothing more may be disclosed to it; once the "
            "agreement is renewed, set agreement_expires_on in its partner file to the new "
            "end date and reload",
        )
    keys_end = state.keys_expire_at
    if keys_end is not None and now >= keys_end:
        yield Violation(
            "partner_key_expired",
            f"every encryption key of {partner.id!r} expired (the last at "
            f"{keys_end.astimezone(UTC):%Y-%m-%d %H:%M} UTC) and an expired key is never "
            "used: the partner must publish a current key at its public_key_url or send "
            "one for its public_key file",
        )


# policy: II purposes 1-6 — each operation names the purposes it serves.
def _purpose(request: DisclosureRequest, operation: Operation, where: str) -> Iterator[Violation]:
    if request.purpose not in operation.purposes:
        yield Violation(
            "purpose_not_allowed",
            f"purpose {request.purpose!r} not among {sorted(operation.purposes)} for {where}",
        )


# policy: III.1 — the basis must be one the operation allows, and fit the purpose.
def _legal_basis(
    request: DisclosureRequest, partner: Partner, operation: Operation, where: str
) -> Iterator[Violation]:
    basis, purpose = request.legal_basis, request.purpose
    if basis not in operation.legal_bases:
        yield Violation(
            "legal_basis_not_allowed",
            f"legal basis {basis!r} not among {sorted(operation.legal_bases)} for {where}",
        )
    if basis == "contract" and purpose not in v.CONTRACT_PURPOSES:
        # policy: III.1(a) contract necessity covers running the service only.
        yield Violation(
            "legal_basis_not_allowed",
            f"basis 'contract' covers only {sorted(v.CONTRACT_PURPOSES)}, not purpose {purpose!r}",
        )
    if purpose == "marketing" and basis != "consent":
        # policy: II.6 — marketing needs the customer's consent, no other basis.
        yield Violation(
            "legal_basis_not_allowed", f"purpose 'marketing' needs basis 'consent', got {basis!r}"
        )
    if basis == "business_transfer" and partner.category != "business_transfer_counterparty":
        # policy: III.4
        yield Violation(
            "legal_basis_not_allowed",
            "basis 'business_transfer' only to a "
            f"'business_transfer_counterparty', not {partner.category!r}",
        )


# policy: VII.3 — restriction/objection: only legal obligation and vital interest pass.
def _restriction(request: DisclosureRequest, facts: SubjectFacts) -> Iterator[Violation]:
    if facts.restricted and request.legal_basis not in v.BASES_DESPITE_RESTRICTION:
        yield Violation(
            "subject_restricted",
            "the subject has restricted processing; only "
            f"{sorted(v.BASES_DESPITE_RESTRICTION)} pass, basis is "
            f"{request.legal_basis!r}",
        )


# policy: I.1 under-14 — no consent-based or marketing disclosure of a child. The rule
# holds on the most protective fact known: the youngest of the payload's date of birth and
# the stored profile's, so a payload cannot make a child an adult.
# After an erasure the profile keeps only "under the age until DATE" (the child's
# birthday at MINIMUM_AGE): it refuses as the date of birth did, until that day.
def _age(request: DisclosureRequest, facts: SubjectFacts, today: date) -> Iterator[Violation]:
    known = [born for born in (request.date_of_birth, facts.date_of_birth) if born is not None]
    marked = facts.under_age_until is not None and today < facts.under_age_until
    if not marked and (not known or age_in_years(max(known), today) >= v.MINIMUM_AGE):
        return
    if request.legal_basis == "consent" or request.purpose == "marketing":
        source = "stored profile" if marked or max(known) == facts.date_of_birth else "payload"
        yield Violation(
            "subject_under_age",
            f"the subject's date of birth ({source}) shows an age under "
            f"{v.MINIMUM_AGE}: no consent-based or marketing disclosure",
        )


# policy: I.1 — two adult dates of birth that disagree: which one is true is not the
# gateway's to guess, and the payload must not silently win over the stored profile.
# Legal obligation and vital interest pass, as they do despite a restriction (VII.3).
def _birth_dates_agree(
    request: DisclosureRequest, facts: SubjectFacts, today: date
) -> Iterator[Violation]:
    sent, stored = request.date_of_birth, facts.date_of_birth
    if sent is None or stored is None or sent == stored:
        return
    if min(age_in_years(sent, today), age_in_years(stored, today)) < v.MINIMUM_AGE:
        return  # the age rule decides on the younger date
    if request.legal_basis in v.BASES_DESPITE_RESTRICTION:
        return
    yield Violation(
        "date_of_birth_conflict",
        "the payload's data.date_of_birth and the subject's stored profile disagree: send "
        "the stored date (or none), or correct the profile first "
        "(PUT /v1/subjects/{id}/profile, or a rectification)",
    )


# policy: III.1(b), III.3 — legal obligation only on an approved lawful request.
def _lawful_request(
    request: DisclosureRequest, facts: SubjectFacts
) -> tuple[list[Violation], str | None]:
    if request.legal_basis != "legal_obligation":
        return [], None
    ref = request.legal_request
    code = "legal_request_required"
    if ref is None:
        return [
            Violation(
                code,
                "basis 'legal_obligation' needs 'legal_request': the id of an "
                "approved lawful request",
            )
        ], None
    found = facts.legal_requests.get(ref)
    if found is None:
        return [Violation(code, f"lawful request {ref!r} is not registered")], None
    if found.status == "rejected":
        # Waiting does not help here: a rejection is final (README "Lawful requests").
        return [
            Violation(
                code,
                f"lawful request {ref!r} was rejected and never lets a disclosure through; "
                "the authority's new request is registered anew and needs two approvals",
            )
        ], None
    if found.status != "approved":
        return [
            Violation(
                code,
                f"lawful request {ref!r} is {found.status!r}, expected 'approved' (two reviewers)",
            )
        ], None
    problems = []
    if request.subject not in found.subjects:
        problems.append(Violation(code, f"lawful request {ref!r} does not cover this subject"))
    if request.partner not in found.partners:
        problems.append(
            Violation(
                code,
                f"lawful request {ref!r} does not cover partner "
                f"{request.partner!r}; it covers {sorted(found.partners)}",
            )
        )
    return problems, (None if problems else found.id)


def _consent_state(consent: Consent, policy: PolicyConfig, now: datetime) -> Violation | None:
    if consent.obtained_at > now:
        return Violation("consent_required", f"consent {consent.id!r} is not yet in effect")
    if consent.withdrawn_at is not None:
        # policy: VII.4 — once recorded, a withdrawal binds every later decision, whatever
        # the deciding instance's clock says (no skew window between gateway instances).
        return Violation("consent_withdrawn", f"consent {consent.id!r} was withdrawn")
    if consent.expires_at is not None and consent.expires_at <= now:
        return Violation(
            "consent_expired", f"consent {consent.id!r} expired; ask the customer to renew it"
        )
    if consent.policy_version < policy.min_consent_version:
        # policy: VIII — a consent under a superseded policy no longer counts.
        return Violation(
            "policy_not_in_force",
            f"consent {consent.id!r} was given under policy "
            f"{consent.policy_version}, older than the minimum "
            f"{policy.min_consent_version}; ask for consent again",
        )
    if consent.policy_version > policy.version:
        # policy: VIII — a consent cannot agree to a policy not yet in force (registration
        # refuses one; this holds for consents recorded before it did).
        return Violation(
            "policy_not_in_force",
            f"consent {consent.id!r} names policy {consent.policy_version}, later than the "
            f"policy in force ({policy.version}); record the consent again under it",
        )
    return None


def _live_consents(
    request: DisclosureRequest,
    partner: Partner,
    facts: SubjectFacts,
    policy: PolicyConfig,
    now: datetime,
) -> tuple[list[Consent], list[Violation]]:
    live: list[Consent] = []
    dead: list[Violation] = []
    for consent in facts.consents:
        if not consent.covers(request.subject, request.purpose, partner.id, partner.category):
            continue
        state = _consent_state(consent, policy, now)
        if state is None:
            live.append(consent)
        else:
            dead.append(state)
    return live, dead


# policy: III.1(a)(c), VII.4 — a live consent covering subject, purpose and partner.
def _consent(
    request: DisclosureRequest,
    partner: Partner,
    facts: SubjectFacts,
    policy: PolicyConfig,
    now: datetime,
) -> tuple[list[Violation], Consent | None]:
    if request.legal_basis != "consent":
        return [], None
    live, dead = _live_consents(request, partner, facts, policy, now)
    if live:
        return [], live[0]
    if dead:
        return dead, None
    return [
        Violation(
            "consent_required",
            f"no consent of this subject covers purpose "
            f"{request.purpose!r} for partner {partner.id!r} or its category "
            f"{partner.category!r}",
        )
    ], None


# policy: I.1 sensitive information only with explicit consent naming it.
def _special_categories(
    request: DisclosureRequest,
    plan: FieldPlan,
    consent: Consent | None,
    facts: SubjectFacts,
    partner: Partner,
    policy: PolicyConfig,
    now: datetime,
) -> Iterator[Violation]:
    special = sorted(name for name in plan.disclosed if name in v.SPECIAL_FIELDS)
    if not special:
        return
    code = "explicit_consent_required"
    if request.legal_basis != "consent":
        yield Violation(
            code,
            f"special-category field(s) {special} pass only under basis "
            f"'consent' with explicit consent; basis is {request.legal_basis!r}",
        )
        return
    live, _ = _live_consents(request, partner, facts, policy, now)
    named = frozenset().union(*(c.special_categories for c in live)) if live else frozenset()
    missing = [name for name in special if name not in named]
    if missing:
        yield Violation(
            code,
            f"no live consent names special categor(ies) {missing}; an "
            "explicit consent must list them in 'special_categories'",
        )


# policy: V — cookies and device identifiers to advertisers only on marketing consent.
def _advertising_identifiers(
    request: DisclosureRequest, partner: Partner, plan: FieldPlan
) -> FieldPlan:
    if partner.category != "advertising_marketing" or (
        request.legal_basis == "consent" and request.purpose == "marketing"
    ):
        return plan
    held = [name for name in plan.disclosed if name in v.ADVERTISING_IDENTIFIERS]
    if not held:
        return plan
    reason = "cookies and device identifiers go to advertisers only under consent for marketing"
    return FieldPlan(
        {k: t for k, t in plan.disclosed.items() if k not in held},
        {**plan.withheld, **dict.fromkeys(held, reason)},
    )
