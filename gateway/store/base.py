"""The storage port: what the gateway keeps, as records and one small interface.

Everything durable — consents, restrictions and dates of birth, lawful requests and
their approvals, idempotency keys, partner suspensions and their history, the
disclosure log's rows and its checkpoints —
goes through :class:`Store`. One adapter per backend implements it
(``gateway.store.sqlite``, ``gateway.store.postgres``); the rest of the gateway and
its tests only see this module. Storage never hashes: the Merkle tree and the
checkpoint signatures are computed elsewhere and stored here as opaque bytes and text.

The rule that makes a lawful request ``approved`` is a pure function,
:func:`legal_request_status`, which both adapters apply inside the transaction that
records an approval.

Any failure of the database itself (refused connection, full disk, lock timeout,
server gone) leaves an adapter as :class:`StoreUnavailable` — problem code
``log_unavailable`` (503) — so that nothing is sent when nothing can be logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Literal, NamedTuple, Protocol

from gateway.crypto.at_rest import is_sealed
from gateway.errors import LogUnavailableError
from gateway.partners.model import Suspension, SuspensionEvent
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
    "Store",
    "StoreUnavailable",
    "StoredCheckpoint",
    "StoredLogRow",
    "StoredResponse",
    "SuspensionEvent",
    "TreeHash",
    "check_search_limit",
    "facts_of",
    "legal_request_status",
    "protected_column",
    "require_aware",
]

REQUIRED_APPROVALS: Final = 2
"""Distinct reviewers (other than the registrant) that make a lawful request approved."""

LEGAL_REQUEST_STATUSES: Final = ("pending", "approved")

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
    entry's outcome for an outcome entry and ``refused`` for a refusal.
    """

    kind: str
    disclosure_id: str
    subject_ref: str | None
    partner: str | None
    time: datetime
    purpose: str | None
    legal_basis: str | None
    outcome: str | None


StoredLogRow = tuple[int, bytes, bytes | None, LogColumns]
"""A log row as stored: index, entry bytes, leaf hash (None before schema 2), columns."""

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
    `limit` of them; a caller pages on with ``query.after(last index read)``.

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


@dataclass(frozen=True)
class LogRow:
    """One disclosure-log entry to append, with the columns searches use.

    `entry` is the canonical JSON the Merkle leaf is computed over and `leaf_hash`
    that leaf's hash, computed by gateway.log (storage never hashes); the other
    fields are copies of some of the entry's values, indexed for lookups.
    `outcome` is the entry's outcome for an outcome entry and ``refused`` for a
    refusal.
    """

    entry: bytes
    kind: str
    disclosure_id: str
    subject_ref: str | None
    partner: str | None
    time: datetime
    leaf_hash: bytes
    purpose: str | None = None
    legal_basis: str | None = None
    outcome: str | None = None

    def __post_init__(self) -> None:
        if len(self.leaf_hash) != LEAF_HASH_SIZE:
            raise ValueError(
                f"leaf_hash has {len(self.leaf_hash)} bytes, expected {LEAF_HASH_SIZE}"
            )

    @classmethod
    def of(cls, entry: bytes, columns: LogColumns, leaf_hash: bytes) -> LogRow:
        return cls(entry=entry, leaf_hash=leaf_hash, **columns._asdict())


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


SUSPENSION_ACTIONS: Final = ("suspend", "resume")


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
    "partner_suspensions.reason": ("partner_suspensions", ("partner_id",), "reason"),
    "partner_suspension_events.reason": ("partner_suspension_events", ("seq",), "reason"),
    "idempotency_keys.body": ("idempotency_keys", ("caller_id", "key"), "body"),
    "idempotency_keys.request_hash": ("idempotency_keys", ("caller_id", "key"), "request_hash"),
}
"""The columns that hold a subject id or free text: ``name -> (table, key columns,
column)``. The store keeps them as the service hands them over (keyed references and
sealed text, gateway.crypto.at_rest); `protected_values` and `replace_protected_values` let the
service convert rows stored before that, and re-seal them under a new key."""


class Store(Protocol):
    """The storage port. All methods raise StoreUnavailable when the database fails."""

    async def migrate(self) -> None:
        """Apply missing schema migrations; idempotent and safe to run concurrently."""

    async def schema_versions(self) -> list[int]:
        """The schema migrations applied so far, ascending."""

    async def ping(self) -> None:
        """Return when the database answers (for /readyz)."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    # -- consents, restriction, profile -------------------------------------------------

    async def add_consent(self, consent: Consent) -> None:
        """Store a new consent; ConflictError when the id is taken."""

    async def withdraw_consent(self, consent_id: str, at: datetime) -> Consent | None:
        """Mark withdrawn at `at` (a second withdrawal keeps the first time); None if unknown."""

    async def get_consent(self, consent_id: str) -> Consent | None:
        """The consent with this id, or None."""

    async def consents_for_subject(self, subject: str) -> list[Consent]:
        """Every consent of the subject, oldest first."""

    async def set_restriction(
        self, subject: str, restricted: bool, reason: str, at: datetime
    ) -> None:
        """Set or lift the subject's restriction of processing."""

    async def set_profile(self, subject: str, profile: str | None) -> None:
        """Record the subject's profile (date of birth, for the minimum-age rule) as the
        opaque text gateway.policy.facts writes; None removes it."""

    async def forget_subject(
        self, subject: str, at: datetime, profile: str | None
    ) -> tuple[int, int]:
        """An erasure of what the gateway holds itself, in one transaction: every consent
        of the subject loses its evidence text and, when still live, is withdrawn at `at`;
        the profile becomes `profile` (None: removed). The restriction stays.

        Returns ``(consents whose evidence was removed, consents withdrawn now)``.
        """

    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        """All that `policy.decide()` needs about one subject, read in one go."""

    # -- conversion of personal data at rest (service-level, gateway.store.protected) -------

    async def protected_values(
        self, column: str, after: tuple[object, ...] | None, limit: int
    ) -> list[tuple[tuple[object, ...], str | bytes]]:
        """Up to `limit` non-null values of a PROTECTED_COLUMNS column, with their row
        keys, in key order after `after` (None: from the start)."""

    async def replace_protected_values(
        self,
        column: str,
        changes: Sequence[tuple[tuple[object, ...], str | bytes, str | bytes]],
    ) -> int:
        """Set ``(key, old, new)`` where the value still is `old` (a concurrent writer
        wins); how many rows changed."""

    async def legal_request_subjects(
        self, after: str | None, limit: int
    ) -> list[tuple[str, frozenset[str], str]]:
        """``(id, subjects, sealed_subjects)`` of up to `limit` lawful requests after `after`."""

    async def set_legal_request_subjects(
        self, request_id: str, subjects: frozenset[str], sealed: str, old_sealed: str
    ) -> bool:
        """Replace the subject list where `sealed_subjects` still is `old_sealed`."""

    # -- lawful requests ----------------------------------------------------------------

    async def add_legal_request(self, record: LegalRequestRecord) -> None:
        """Register a lawful request; ConflictError when the id is taken."""

    async def get_legal_request(self, request_id: str) -> LegalRequestRecord | None:
        """The lawful request with its approvals, or None."""

    async def approve_legal_request(
        self, request_id: str, reviewer_id: str, at: datetime
    ) -> LegalRequestRecord | None:
        """Record an approval and recompute the status atomically; None if unknown."""

    async def list_legal_requests(self, status: str | None = None) -> list[LegalRequestRecord]:
        """Lawful requests (with one status, or all), in the order they were received."""

    # -- emergency review -------------------------------------------------------------

    async def add_justification(self, record: JustificationRecord) -> bool:
        """Record a justification; False (nothing written) when the disclosure has one."""

    async def get_justification(self, disclosure_id: str) -> JustificationRecord | None:
        """The justification of a disclosure, or None."""

    async def justified(self, disclosure_ids: Sequence[str]) -> set[str]:
        """Which of `disclosure_ids` have a justification."""

    # -- partner suspensions ----------------------------------------------------------

    async def suspend_partner(self, suspension: Suspension) -> Suspension:
        """Suspend the partner and add a `suspend` event, in one transaction.

        When the partner is already suspended nothing is written and the suspension
        in force is returned (compare it with `suspension` to tell).
        """

    async def resume_partner(
        self, partner_id: str, actor: str, reason: str, at: datetime
    ) -> Suspension | None:
        """Lift the suspension and add a `resume` event, in one transaction.

        Returns the suspension lifted, or None (nothing written) when none was in force.
        """

    async def partner_suspensions(self) -> dict[str, Suspension]:
        """Every suspension in force, by partner id (one small read: instances poll it)."""

    async def suspension_history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]:
        """The latest suspend/resume events (of one partner, or all), newest first."""

    # -- idempotency --------------------------------------------------------------------

    async def claim_idempotency(
        self, caller_id: str, key: str, request_hash: str
    ) -> IdempotencyClaim:
        """Reserve (caller, key) atomically or report what holds it."""

    async def complete_idempotency(
        self, caller_id: str, key: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        """Store the response of the request that holds (caller, key)."""

    async def release_idempotency(self, caller_id: str, key: str) -> None:
        """Free a key whose request failed before anything was sent (completed keys stay)."""

    # -- disclosure log -----------------------------------------------------------------

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        """Append in one durable transaction; returns the consecutive indexes assigned."""

    async def log_size(self) -> int:
        """Number of entries (= the next index)."""

    async def read_log(self, start: int, end: int) -> list[LogEntry]:
        """Entries with start <= index < end, in index order."""

    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]:
        """Every entry of one disclosure, in index order."""

    async def log_search(self, query: LogQuery) -> list[LogEntry]:
        """Entries matching every filter of `query` (see LogQuery), in index order: those
        after `query.after_index`, at most `query.limit`. The query's values are bound
        parameters, never SQL text."""

    async def intents_without_outcome(self) -> list[LogEntry]:
        """Intent entries whose disclosure has no outcome entry, in index order."""

    # -- instances (crash recovery with several processes on one store) ------------------
    #
    # Times are the store's own clock (PostgreSQL's for PostgreSQL), so instances on
    # machines whose clocks disagree still agree on who went quiet.

    async def register_instance(self, instance_id: str, host: str, pid: int) -> None:
        """Record the instance as alive now; a known id is revived (claim and recovery cleared)."""

    async def heartbeat_instance(self, instance_id: str) -> bool:
        """Mark the instance alive now. False, changing nothing, when its row is missing or
        another instance has claimed or recovered it (it was presumed dead)."""

    async def claim_stale_instances(self, claimer: str, timeout_s: float) -> list[str]:
        """Atomically claim, for `claimer`, every unrecovered instance silent for more than
        `timeout_s` and not claimed by an instance that is itself alive; their ids.

        Claims by `claimer` itself are returned again (a recovery that failed half-way
        is resumed), so each dead instance is recovered by one live instance at a time.
        """

    async def adopt_instances(self, instance_ids: Sequence[str]) -> None:
        """Give every id a row: unknown ids are added as never heard from (so they are
        claimed at once), recovered ones silent for a while are reopened. Used for intents
        found without outcome whose instance the table does not (or no longer) track."""

    async def finish_recovery(self, instance_ids: Sequence[str], claimer: str) -> None:
        """Mark instances still claimed by `claimer` as recovered now."""

    async def retire_instance(self, instance_id: str) -> None:
        """A clean stop with nothing in flight: the instance is recovered now."""

    async def list_instances(self) -> list[InstanceRecord]:
        """Every instance row, oldest start first."""

    async def log_time_span(self) -> tuple[datetime, datetime] | None:
        """The earliest and latest entry time, or None for an empty log."""

    async def read_log_records(self, start: int, limit: int) -> list[LogRecord]:
        """Up to `limit` entries with index >= start, with their leaf hashes, in index order.

        Keyset reads: an audit that pages on with the last index seen also meets rows
        whose index was changed or that follow a gap.
        """

    async def read_log_rows(self, start: int, limit: int) -> list[StoredLogRow]:
        """Like `read_log_records`, with each row's search columns as stored (for the audit
        that checks them against the entry bytes)."""

    async def log_rows_without_leaf_hash(self, limit: int) -> list[LogEntry]:
        """Entries stored without a leaf hash (written before schema 2), in index order."""

    async def set_leaf_hashes(self, hashes: Sequence[tuple[int, bytes]]) -> None:
        """Fill in missing leaf hashes ``(index, hash)``; a hash already stored is kept."""

    # -- Merkle tree nodes (computed by gateway.log, kept here) -------------------------

    async def read_tree_hashes(self, ranges: Sequence[tuple[int, int, int]]) -> list[TreeHash]:
        """The stored hashes of ``(level, start, end)`` ranges, in one read.

        Level 0 reads the leaf hashes of the log's entries, other levels the stored
        subtree hashes. Missing ones are simply absent from the answer.
        """

    async def add_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store subtree hashes ``(level > 0, index, hash)``; one already stored is kept."""

    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]:
        """For each level, 1 + the highest index stored there (0 when none)."""

    # -- checkpoints --------------------------------------------------------------------

    async def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        """Store a signed checkpoint note."""

    async def add_checkpoint_after(
        self, previous_seq: int | None, size: int, note: str, at: datetime
    ) -> bool:
        """Store the checkpoint only if the latest stored one is still `previous_seq`.

        None means "no checkpoint stored yet". Returns False, storing nothing, when
        another writer (instance) stored a checkpoint in between: the caller re-reads
        the latest and checks its tree against that one before trying again. This is
        what keeps the checkpoints of several instances one consistent chain.
        """

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint stored last, or None."""

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, in the order stored."""


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
