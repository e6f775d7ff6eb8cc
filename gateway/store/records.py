"""The records the storage port speaks in, and the rules that come with them.

What the gateway keeps — consents (in gateway.policy.facts), lawful requests and their
approvals, idempotency claims, justifications, the disclosure log's rows, tree hashes and
checkpoints, instances — as values, with the few pure rules both adapters apply: the
status of a lawful request (:func:`legal_request_status`, applied inside the
transaction that records an approval, and :func:`review_conflict`, checked inside the
transaction that records an approval or a rejection), the checks of a log search (:class:`LogQuery`)
and the columns that hold personal data (:data:`PROTECTED_COLUMNS`).

Any failure of the database itself (refused connection, full disk, lock timeout,
server gone) leaves an adapter as :class:`StoreUnavailable` — problem code
``log_unavailable`` (503) — so that nothing is sent when nothing can be logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Literal, NamedTuple

from gateway.crypto.at_rest import is_sealed
from gateway.errors import LogUnavailableError
from gateway.policy.facts import Consent, LegalRequest, SubjectFacts, read_profile

__all__ = [
    "DEFAULT_SEARCH_LIMIT",
    "LEAF_HASH_SIZE",
    "LEGACY_INSTANCE",
    "LEGAL_REQUEST_STATUSES",
    "MAX_SEARCH_LIMIT",
    "PROTECTED_COLUMNS",
    "REQUIRED_APPROVALS",
    "Approval",
    "IdempotencyClaim",
    "InstanceRecord",
    "JustificationRecord",
    "LegalRequestRecord",
    "LogColumns",
    "LogEntry",
    "LogQuery",
    "LogRecord",
    "LogRow",
    "Migration",
    "NotAnEntry",
    "PersonalToken",
    "Rejection",
    "RestrictionRow",
    "RopaCounts",
    "RopaFieldCount",
    "RopaRowCount",
    "StoreUnavailable",
    "StoredCheckpoint",
    "StoredLogRow",
    "StoredResponse",
    "TreeHash",
    "WitnessAlarm",
    "WitnessSize",
    "check_search_limit",
    "facts_of",
    "legal_request_status",
    "protected_column",
    "require_aware",
    "review_conflict",
]

REQUIRED_APPROVALS: Final = 2
"""Distinct reviewers (other than the registrant) that make a lawful request approved."""

LEGAL_REQUEST_STATUSES: Final = ("pending", "approved", "rejected")
"""``rejected`` is not a value of ``legal_requests.status`` (its CHECK, of schema 1, knows two):
a request is rejected when it has a row in ``lawful_request_rejections`` (schema 11), and
the adapters' reads say so in the status they return."""

MAX_SEARCH_LIMIT: Final = 1000
"""Most rows one `log_search` page returns; callers page on with `after_index`."""

DEFAULT_SEARCH_LIMIT: Final = 100
"""The rows of one `log_search` page when the query names no `limit`."""

LogEntry = tuple[int, bytes]
"""A log entry as stored: its index and its canonical bytes."""

LogRecord = tuple[int, bytes, bytes | None]
"""A log entry with its stored leaf hash (None only for rows written before schema 2)."""


class LogColumns(NamedTuple):
    """The values a log row keeps beside its entry for searches, as stored.

    Copies of the entry's own values (``gateway.log.columns.columns_of`` derives them,
    and ``gateway log verify`` checks every row's against its bytes). `outcome` is the
    entry's outcome for an outcome entry and ``refused`` for a refusal; `consent_id` an
    intent's consent (schema 16: a withdrawal's recipients are found by it), else None.
    """

    kind: str
    disclosure_id: str
    subject_ref: str | None
    partner: str | None
    time: datetime
    purpose: str | None
    legal_basis: str | None
    outcome: str | None
    consent_id: str | None = None


StoredLogRow = tuple[int, bytes, bytes | None, LogColumns | None, bool]
"""A log row as stored: index, entry bytes, leaf hash (None before schema 2), its
projected search columns (None when it has no row in the projection, schema 14), and
whether it is below the projection's high-water mark (read in the same snapshot)."""


class NotAnEntry(ValueError):
    """Bytes that are not a log entry (so no columns can be derived from them)."""


TreeHash = tuple[int, int, bytes | None]
"""``(level, index, hash)``: level 0 is a leaf hash, level h the root of leaves
``[index * 2**h, (index + 1) * 2**h)`` as computed by gateway.log and stored here."""

LEAF_HASH_SIZE: Final = 32

LEGACY_INSTANCE: Final = "before-schema-4"
"""The instance that intents written before instances were recorded (schema 4) belong to.
Migration 4 registers it as long dead, so any such intent left without an outcome is
recovered once, like a crashed instance's."""


class StoreUnavailable(LogUnavailableError):
    """The database could not be reached or written: nothing may be disclosed."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


def require_aware(value: datetime, name: str) -> datetime:
    """`value` if it carries a time zone; a naive time would be stored ambiguously."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got a naive one")
    return value


@dataclass(frozen=True, init=False)
class LogQuery:
    """One search of the disclosure log (`Store.log_search`): which rows, and which page.

    Every filter given must match; an entry's time must be ``since <= time < until``. A
    filter of several values (`subject_refs`, `kinds`) matches any of them, and one of
    no values matches nothing. Rows come in index order after `after_index`, at most
    `limit` of them; a caller pages on with ``query.after(last index read)``. With
    `newest_first`, in the reverse order: the newest first, "after" meaning older than
    (``idx < after_index``), so the same ``query.after(last index read)`` pages on.

    Checked once, when built: `limit` within 1..MAX_SEARCH_LIMIT, times with a time zone
    and `since` before `until`, a list filter not one bare string. A single value given
    with a list of the same filter (`subject_ref` with `subject_refs`, `kind` with
    `kinds`) matches what both admit: the list's values equal to the single one, which
    may be none. So the fields hold each filter once, merged; the stores turn them into
    SQL (gateway.store.search_sql) and the log checks every row found against the same
    value by the row's bytes (:meth:`first_mismatch`, gateway.log.columns).
    """

    # Keyed references, not identities; still kept out of the repr (it may reach a log).
    subject_refs: tuple[str, ...] | None = field(repr=False)
    partner: str | None
    kinds: tuple[str, ...] | None
    purpose: str | None
    legal_basis: str | None
    outcome: str | None
    since: datetime | None
    until: datetime | None
    after_index: int | None
    limit: int
    newest_first: bool

    def __init__(
        self,
        *,
        subject_ref: str | None = None,
        subject_refs: Iterable[str] | None = None,
        partner: str | None = None,
        kind: str | None = None,
        kinds: Iterable[str] | None = None,
        purpose: str | None = None,
        legal_basis: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_index: int | None = None,
        limit: int = DEFAULT_SEARCH_LIMIT,
        newest_first: bool = False,
    ) -> None:
        check_search_limit(limit)
        if since is not None:
            require_aware(since, "since")
        if until is not None:
            require_aware(until, "until")
        if since is not None and until is not None and since >= until:
            raise ValueError("since must be before until (since <= time < until)")
        # Frozen: the fields are set once, here.
        set_field = object.__setattr__
        set_field(self, "subject_refs", _merged("subject_ref", subject_ref, subject_refs))
        set_field(self, "partner", partner)
        set_field(self, "kinds", _merged("kind", kind, kinds))
        set_field(self, "purpose", purpose)
        set_field(self, "legal_basis", legal_basis)
        set_field(self, "outcome", outcome)
        set_field(self, "since", since)
        set_field(self, "until", until)
        set_field(self, "after_index", after_index)
        set_field(self, "limit", limit)
        set_field(self, "newest_first", bool(newest_first))

    @property
    def matches_nothing(self) -> bool:
        """True when a list filter has no value left: no row can match (no need to ask)."""
        return self.subject_refs == () or self.kinds == ()

    def after(self, index: int) -> LogQuery:
        """The same search, for the page after the entry at `index`."""
        return replace(self, after_index=index)

    def first_mismatch(self, columns: LogColumns) -> str | None:
        """The first column (in the order the filters are listed) whose value this query
        does not admit, ``time`` for a time outside the range; None when it admits the row.

        The index is not looked at: it is the row's place, not one of its values.
        """
        for name, allowed in (
            ("subject_ref", self.subject_refs),
            ("partner", None if self.partner is None else (self.partner,)),
            ("kind", self.kinds),
            ("purpose", None if self.purpose is None else (self.purpose,)),
            ("legal_basis", None if self.legal_basis is None else (self.legal_basis,)),
            ("outcome", None if self.outcome is None else (self.outcome,)),
        ):
            if allowed is not None and getattr(columns, name) not in allowed:
                return name
        if (self.since is not None and columns.time < self.since) or (
            self.until is not None and columns.time >= self.until
        ):
            return "time"
        return None


def _merged(name: str, single: str | None, many: Iterable[str] | None) -> tuple[str, ...] | None:
    """One filter's values from its single and its list form (see LogQuery); None: no filter."""
    if isinstance(many, str):
        raise TypeError(f"{name}s must be a list of values, not one string")
    if many is None:
        return None if single is None else (single,)
    values = tuple(dict.fromkeys(many))  # each once, in the order given
    return values if single is None else tuple(value for value in values if value == single)


@dataclass(frozen=True)
class Approval:
    """One reviewer's approval of a lawful request."""

    reviewer_id: str
    at: datetime


@dataclass(frozen=True)
class RestrictionRow:
    """A subject's restriction of processing as last set or lifted (what ``log verify``
    checks against the action entry of that time): the subject as its keyed reference."""

    subject_ref: str
    restricted: bool
    reason: str
    changed_at: datetime


@dataclass(frozen=True)
class Rejection:
    """One reviewer's rejection of a lawful request, with the reason they typed."""

    reviewer_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class LegalRequestRecord:
    """A lawful request of an authority (CONTRACT §4.5) as registered and reviewed."""

    id: str
    authority: str
    reference: str
    instrument: str
    subjects: frozenset[str]
    partners: frozenset[str]
    received_at: datetime
    registered_by: str
    status: str = "pending"
    approvals: tuple[Approval, ...] = ()
    # The subject list as stored sealed beside `subjects` (which then holds keyed
    # references): reviewers see the list, lookups use the references (gateway.crypto.at_rest).
    sealed_subjects: str = ""
    # Set when the request was rejected (its status then is ``rejected``).
    rejection: Rejection | None = None

    def to_fact(self) -> LegalRequest:
        """The part `policy.decide()` reads."""
        return LegalRequest(
            id=self.id, status=self.status, subjects=self.subjects, partners=self.partners
        )


def legal_request_status(record: LegalRequestRecord, approvals: Iterable[Approval]) -> str:
    """``approved`` once REQUIRED_APPROVALS distinct reviewers approved, else ``pending``.

    The reviewer who registered the request does not count (four eyes), and a
    reviewer approving twice counts once.
    """
    reviewers = {a.reviewer_id for a in approvals if a.reviewer_id != record.registered_by}
    return "approved" if len(reviewers) >= REQUIRED_APPROVALS else "pending"


def review_conflict(
    record: LegalRequestRecord, reviewer_id: str, act: Literal["approve", "reject"]
) -> str | None:
    """Why `reviewer_id` can no longer `act` on `record` as it stands (a 409's detail), or
    None. Checked before the act's log entry is written and again inside the store's
    transaction that records it, where the request's row is locked: of two reviewers
    racing, the second finds the first one's approval or rejection here."""
    if record.rejection is not None or record.status == "rejected":
        by = f" by {record.rejection.reviewer_id}" if record.rejection is not None else ""
        if act == "approve":
            return (
                f"{record.id} was rejected{by}; a rejected request cannot be approved "
                "(the authority's new request is registered anew)"
            )
        return f"{record.id} is already rejected{by}"
    if record.status == "approved":
        if act == "approve":
            return f"{record.id} is already approved by {REQUIRED_APPROVALS} reviewers"
        return f"{record.id} is already approved and can no longer be rejected"
    if act == "approve" and any(a.reviewer_id == reviewer_id for a in record.approvals):
        return (
            f"{reviewer_id} already approved {record.id}; a second, "
            "different reviewer must approve it"
        )
    return None


@dataclass(frozen=True)
class StoredResponse:
    """The response a completed idempotent request gave, replayed on a repeat."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class IdempotencyClaim:
    """What `claim_idempotency` found for (caller, key).

    - ``new``: the key is now reserved for this request; complete or release it.
    - ``completed``: an earlier request with the same hash finished; `response` is its answer.
    - ``in_progress``: another request holds the key and has not finished.
    - ``mismatch``: the key was used for a different request (another hash).
    """

    state: Literal["new", "completed", "in_progress", "mismatch"]
    response: StoredResponse | None = None


@dataclass(frozen=True, slots=True)
class LogRow:
    """One disclosure-log entry to append: what the commit writes.

    `entry` is the canonical JSON the Merkle leaf is computed over and `leaf_hash`
    that leaf's hash, computed by gateway.log (storage never hashes); the store assigns
    the index. The columns searches use are projected from the stored bytes after the
    commit (schema 14, gateway.store.projection), so the hot path derives none of them.
    """

    entry: bytes
    leaf_hash: bytes

    def __post_init__(self) -> None:
        if len(self.leaf_hash) != LEAF_HASH_SIZE:
            raise ValueError(
                f"leaf_hash has {len(self.leaf_hash)} bytes, expected {LEAF_HASH_SIZE}"
            )


@dataclass(frozen=True)
class JustificationRecord:
    """A reviewer's reason for an emergency disclosure (policy III.3). The text stays in
    the store, out of the log: a reviewer may name people in it."""

    disclosure_id: str
    reviewer_id: str
    text: str
    at: datetime


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint note as stored (its text is produced by gateway.log.checkpoint)."""

    size: int
    note: str
    at: datetime
    seq: int = 0  # order of storing; add_checkpoint_after compares against it
    cosigned: str | None = None
    """The note with the witnesses' verified cosignature lines appended (schema 7), once a
    witness cosigned it; None before."""


@dataclass(frozen=True)
class WitnessSize:
    """What a witness of the policy last cosigned for this log: its size, and the stored
    checkpoint (seq) that was."""

    witness: str
    size: int
    checkpoint_seq: int
    at: datetime


@dataclass(frozen=True)
class WitnessAlarm:
    """A witness's rollback alarm as kept (schema 11): the size it has cosigned, the log's
    size when it was last raised, why, and when it was first raised."""

    witness: str
    witness_size: int
    log_size: int
    reason: str
    raised_at: datetime


# An outbox notice's states: waiting for its next attempt, accepted by the partner, or
# given up after the last attempt of the schedule (kept, and shown, never deleted).
OUTBOX_STATUSES: Final = ("pending", "sent", "failed")


@dataclass(frozen=True)
class OutboxNotice:
    """A notice (erasure, rectification, consent withdrawal) a partner did not accept within
    the delivery retries, kept for later attempts (gateway.rights.outbox; schema 8).

    `payload` is what a new attempt needs (the subject and the identifiers to send): sealed
    at rest by gateway.store.protected, opened only by the attempt. The other members hold
    no personal value: they are what the lists and the review page show.
    """

    id: str
    kind: str
    partner: str
    operation: str
    reference: str
    payload: str
    status: str
    attempts: int
    created_at: datetime
    next_at: datetime
    last_error: str = ""
    disclosure_id: str = ""  # the last attempt's disclosure
    lease_owner: str = ""
    lease_until: datetime | None = None
    done_at: datetime | None = None


@dataclass(frozen=True)
class InstanceRecord:
    """One gateway process as the store knows it (for crash recovery, gateway.log.recovery).

    `heartbeat_at` is refreshed while the process lives; `claimed_by` is the instance
    recovering it once it went quiet, `recovered_at` when its interrupted disclosures
    all had an outcome (or it stopped cleanly with nothing in flight).
    """

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    claimed_by: str | None = None
    recovered_at: datetime | None = None


@dataclass(frozen=True)
class Migration:
    """One schema version: statements applied in one transaction, in order."""

    version: int
    description: str
    statements: tuple[str, ...] = field(default_factory=tuple)


PROTECTED_COLUMNS: Final[Mapping[str, tuple[str, tuple[str, ...], str]]] = {
    "consents.subject": ("consents", ("id",), "subject"),
    "consents.evidence": ("consents", ("id",), "evidence"),
    "consents.method": ("consents", ("id",), "method"),
    "subjects.subject": ("subjects", ("subject",), "subject"),
    "subjects.restriction_reason": ("subjects", ("subject",), "restriction_reason"),
    "subjects.profile": ("subjects", ("subject",), "profile"),
    "legal_requests.instrument": ("legal_requests", ("id",), "instrument"),
    "justifications.text": ("justifications", ("disclosure_id",), "text"),
    "lawful_request_rejections.reason": ("lawful_request_rejections", ("request_id",), "reason"),
    "partner_suspensions.reason": ("partner_suspensions", ("partner_id",), "reason"),
    "partner_suspension_events.reason": ("partner_suspension_events", ("seq",), "reason"),
    "idempotency_keys.body": ("idempotency_keys", ("caller_id", "key"), "body"),
    "idempotency_keys.request_hash": ("idempotency_keys", ("caller_id", "key"), "request_hash"),
    # Sealed by the outbox itself (gateway.store.protected.PayloadSealing): listed here so a
    # rotation of the at-rest key re-seals the notices still waiting.
    "notice_outbox.payload": ("notice_outbox", ("id",), "payload"),
}
"""The columns that hold a subject id or free text: ``name -> (table, key columns,
column)``. The store keeps them as the service hands them over (keyed references and
sealed text, gateway.crypto.at_rest); `protected_values` and `replace_protected_values` let the
service convert rows stored before that, and re-seal them under a new key."""


def check_search_limit(limit: int) -> int:
    """`limit` if within 1..MAX_SEARCH_LIMIT (a programming error otherwise)."""
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}")
    return limit


def facts_of(
    consents: Sequence[Consent],
    restricted: bool,
    profile: str | None,
    legal_request: LegalRequest | None,
) -> SubjectFacts:
    """Assemble SubjectFacts from what an adapter read. A sealed profile is handed on as
    it is (the service opens it); a clear one is read here."""
    sealed = profile if profile is not None and is_sealed(profile) else None
    born, until = (None, None) if sealed else read_profile(profile)
    return SubjectFacts(
        consents=tuple(consents),
        restricted=restricted,
        date_of_birth=born,
        legal_requests={} if legal_request is None else {legal_request.id: legal_request},
        under_age_until=until,
        sealed_profile=sealed,
    )


def protected_column(column: str) -> tuple[str, tuple[str, ...], str]:
    """``(table, key columns, column)`` of a PROTECTED_COLUMNS name (KeyError otherwise)."""
    return PROTECTED_COLUMNS[column]


@dataclass(frozen=True)
class RopaRowCount:
    """The disclosures sent in a window for one partner × operation × purpose × basis."""

    partner: str
    operation: str
    purpose: str
    legal_basis: str
    disclosures: int
    first: datetime
    last: datetime
    # Distinct consents the disclosures were made under, and how many are withdrawn now.
    consents: int
    consents_withdrawn: int


@dataclass(frozen=True)
class RopaFieldCount:
    """How many of one row's disclosures carried `field`."""

    partner: str
    operation: str
    purpose: str
    legal_basis: str
    field: str
    disclosures: int


@dataclass(frozen=True)
class RopaCounts:
    """What the log says was sent in a window, counted by the database (store.ropa_sql)."""

    rows: tuple[RopaRowCount, ...]
    fields: tuple[RopaFieldCount, ...]


@dataclass(frozen=True)
class PersonalToken:
    """A person's API token for the CLI, made on the review site after signing in through
    the OpenID provider (schema 13). Only the secret's SHA-256 is kept: the token is shown
    once. `roles` are the person's gateway roles when it was made; a token stops working
    when it expires or is revoked (`revoked_at`), whichever comes first."""

    id: str
    person: str
    roles: frozenset[str]
    token_hash: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at
