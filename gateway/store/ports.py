"""The storage port, one narrow port per concern: what a consumer names when it needs one.

Each method's docstring is its promise, kept by every adapter (``gateway.store.sqlite``,
``gateway.store.postgres``) and by :class:`~gateway.store.protected.ProtectedStore`
above them; every method raises
:class:`~gateway.store.records.StoreUnavailable` when the database fails.
:class:`~gateway.store.base.Store` is their union: what an adapter implements and what
the composition root hands around.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from gateway.partners.model import Suspension, SuspensionEvent
from gateway.policy.facts import Consent, SubjectFacts
from gateway.store.exposure_sql import ExposureCount, ExposureTotals, SubjectRefCount
from gateway.store.records import (
    IdempotencyClaim,
    InstanceRecord,
    JustificationRecord,
    LegalRequestRecord,
    LogEntry,
    LogQuery,
    LogRecord,
    LogRow,
    OutboxNotice,
    PersonalToken,
    Rejection,
    RestrictionRow,
    RopaCounts,
    StoredCheckpoint,
    StoredLogRow,
    TreeHash,
    WitnessAlarm,
    WitnessSize,
)
from gateway.store.rollup_sql import Progress
from gateway.store.summary_sql import DayCount, KeyCount

__all__ = [
    "CheckpointStore",
    "ExposureStore",
    "IdempotencyStore",
    "InstanceStore",
    "JustificationStore",
    "LawfulRequestStore",
    "LogAuditStore",
    "LogRollupStore",
    "LogRowStore",
    "LogSummaryStore",
    "ProtectedValueStore",
    "RopaStore",
    "StoreLifecycle",
    "SubjectStore",
    "SuspensionStore",
    "TreeNodeStore",
    "WitnessStateStore",
]


class StoreLifecycle(Protocol):
    """Opening concerns: the schema, the connection's health, closing."""

    async def migrate(self) -> None:
        """Apply missing schema migrations; idempotent and safe to run concurrently."""

    async def schema_versions(self) -> list[int]:
        """The schema migrations applied so far, ascending."""

    async def ping(self) -> None:
        """Return when the database answers (for /readyz)."""

    async def close(self) -> None:
        """Release connections; idempotent."""


class ConsentLapseStore(Protocol):
    """The consents a raised `[policy] min_consent_version` makes lapse (schema 10)."""

    async def consents_to_lapse(
        self,
        min_version: str,
        now: datetime,
        limit: int = 500,
        *,
        claimed_before: datetime | None = None,
    ) -> list[Consent]:
        """Consents given under a version older than `min_version`, neither withdrawn,
        expired at `now` nor marked lapsed yet, nor claimed after `claimed_before` (default
        `now`: another instance lapsing them); oldest first, at most `limit`."""

    async def mark_consent_lapsed(self, consent_id: str, at: datetime) -> None:
        """Mark the consent lapsed at `at` (a second mark keeps the first time)."""

    async def consent_lapse_claim(self, consent_id: str) -> datetime | None:
        """When an instance claimed the consent's lapse (schema 15); None if none did."""

    async def claim_consent_lapse(
        self, consent_id: str, at: datetime, over: datetime | None = None
    ) -> bool:
        """Claim the lapse of the consent, not lapsed yet, at `at`: where nobody claimed it
        (`over` None), or taking over the claim made at `over` (read before, now stale).
        Atomic: of instances claiming at once one gets True; False for the others, for a
        claim since changed or a consent lapsed already."""


class SubjectStore(Protocol):
    """Consents, the restriction of processing and the profile of each subject."""

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

    async def restrictions(self, after: str | None, limit: int) -> list[RestrictionRow]:
        """Up to `limit` subjects' restrictions (set or lifted; rows never restricted are
        not), ordered by subject after `after`."""

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


class ProtectedValueStore(Protocol):
    """The conversion of personal data at rest (run by gateway.store.protected):
    the protected columns read and rewritten by key, compare-and-set."""

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


class LawfulRequestStore(Protocol):
    """Lawful requests of authorities and their reviewers' approvals."""

    async def add_legal_request(self, record: LegalRequestRecord) -> None:
        """Register a lawful request; ConflictError when the id is taken."""

    async def get_legal_request(self, request_id: str) -> LegalRequestRecord | None:
        """The lawful request with its approvals, or None."""

    async def approve_legal_request(
        self, request_id: str, reviewer_id: str, at: datetime
    ) -> LegalRequestRecord | None:
        """Record an approval and recompute the status atomically; None if unknown.
        ConflictError (nothing written) when `records.review_conflict` refuses it against
        the request as committed, its row locked: rejected, approved, or approved by
        `reviewer_id` already."""

    async def reject_legal_request(
        self, request_id: str, rejection: Rejection
    ) -> LegalRequestRecord | None:
        """Record the request's rejection atomically, as for an approval: ConflictError
        (nothing written) when it is rejected or approved already; None if unknown."""

    async def list_legal_requests(self, status: str | None = None) -> list[LegalRequestRecord]:
        """Lawful requests (with one status, or all), in the order they were received."""


class JustificationStore(Protocol):
    """Reviewers' justifications of emergency disclosures."""

    async def add_justification(self, record: JustificationRecord) -> bool:
        """Record a justification; False (nothing written) when the disclosure has one."""

    async def get_justification(self, disclosure_id: str) -> JustificationRecord | None:
        """The justification of a disclosure, or None."""

    async def justified(self, disclosure_ids: Sequence[str]) -> set[str]:
        """Which of `disclosure_ids` have a justification."""


class SuspensionStore(Protocol):
    """Partner suspensions in force and their history."""

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


class IdempotencyStore(Protocol):
    """Idempotency keys: once per (caller, key)."""

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

    async def prune_idempotency_keys(self, claimed_before: datetime) -> int:
        """Delete the completed keys first claimed before `claimed_before`; how many.

        A key still in progress is never deleted (nor one a crash left in progress: its
        disclosure may have reached the partner, so a retry must keep getting 409).
        Deletes in small transactions, so appends wait for none of them long."""


class LogRowStore(Protocol):
    """The disclosure log's rows: appended, read, searched."""

    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]:
        """Append in one durable transaction; returns the consecutive indexes assigned."""

    async def log_size(self) -> int:
        """Number of entries (= the next index)."""

    async def read_log(self, start: int, end: int) -> list[LogEntry]:
        """Entries with start <= index < end, in index order."""

    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]:
        """Every entry of one disclosure, in index order."""

    async def log_entries_for_disclosures(self, disclosure_ids: Sequence[str]) -> list[LogEntry]:
        """Every entry of these disclosures (a few dozen ids), in index order: one read
        for a search's page of hits instead of one per hit."""

    async def consent_intents(
        self, consent_id: str, since: datetime, after_index: int, limit: int
    ) -> list[LogEntry]:
        """The intents on basis ``consent`` under `consent_id` at or after `since`, in
        index order: those after `after_index`, at most `limit` (schema 16: by index)."""

    async def log_search(self, query: LogQuery) -> list[LogEntry]:
        """Entries matching every filter of `query` (see LogQuery), in index order: those
        after `query.after_index`, at most `query.limit`. The query's values are bound
        parameters, never SQL text."""

    async def log_count(self, query: LogQuery) -> int:
        """How many entries match every filter of `query`, whatever its page (its
        `after_index` and `limit` are not looked at): the totals of the review lists."""

    async def intents_without_outcome(self) -> list[LogEntry]:
        """Intent entries whose disclosure has no outcome entry, in index order."""

    async def log_time_span(self) -> tuple[datetime, datetime] | None:
        """The earliest and latest entry time, or None for an empty log."""

    async def project_log(self) -> int:
        """Project the entries committed above the projection's mark (their search
        columns, derived from their bytes: gateway.store.projection); the mark after. Every
        read of the columns calls it first, so it sees every committed entry; it costs
        one read when there is nothing to project."""

    async def projected_size(self) -> int:
        """The projection's high-water mark: entries below it are projected."""

    async def rebuild_projection(self) -> int:
        """Empty the projection and project every entry again (`gateway log reindex`);
        the mark after."""


class ExposureStore(Protocol):
    """A partner's exposure in a window, counted by the database (breach scope)."""

    async def partner_exposure(
        self, partner: str, since: datetime, until: datetime
    ) -> tuple[ExposureTotals, list[ExposureCount], list[ExposureCount]]:
        """The totals, the per-field and the per-category counts of the disclosures to
        `partner` logged in ``since <= time < until`` that it received or may have
        received (gateway.store.exposure_sql says which)."""

    async def exposure_subject_refs(
        self, partner: str, since: datetime, until: datetime, after: str, limit: int
    ) -> list[SubjectRefCount]:
        """The subject references of that exposure after `after`, in order, at most `limit`."""


class LogSummaryStore(Protocol):
    """The overview's counts of the log from the UTC day of `since` on: one GROUP BY
    each over the per-day rollups (summary_sql)."""

    async def decisions_by_day(self, since: datetime) -> list[DayCount]:
        """Per UTC day and outcome (sent, failed, unknown, refused), by day."""

    async def refusals_by_problem(self, since: datetime) -> list[KeyCount]:
        """Refusals per problem code, most frequent first."""

    async def decisions_by_partner(self, since: datetime, limit: int) -> list[KeyCount]:
        """Decisions (intents and refusals) per partner, most first, at most `limit`."""


class LogRollupStore(Protocol):
    """The per-day counts of the log that `LogSummaryStore` and `RopaStore` read
    (store.rollup_sql): derived from the entries, counted up to a mark."""

    async def roll_up_log(self, progress: Progress | None = None) -> int:
        """Count the entries appended since the mark (a batch per transaction, `progress`
        told after each); the new mark: the entries below it are counted. Their readers
        call it first."""

    async def rebuild_rollup(self, progress: Progress | None = None) -> int:
        """Forget the counts and count every entry again (as `roll_up_log`); the new
        mark."""

    async def check_rollup(self, progress: Progress | None = None) -> tuple[int, list[str]]:
        """The mark and, per table whose rows differ from a count of the entries below
        it, what differs (no row's content: counts of rows). Counted a range of
        entries per statement, `progress` told after each."""


class RopaStore(Protocol):
    """The record of processing's counts (gateway.rights.ropa)."""

    async def ropa_counts(self, since: datetime, until: datetime) -> RopaCounts:
        """The disclosures sent with their intent logged in [since, until), counted per
        partner × operation × purpose × legal basis, and per field of each (SQL GROUP BY,
        gateway.store.ropa_sql); every row in no particular order."""


class LogAuditStore(Protocol):
    """The log's rows as stored, for the audit (leaf hashes and search columns)."""

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


class TreeNodeStore(Protocol):
    """The Merkle tree's hashes (computed by gateway.log, kept here)."""

    async def read_tree_hashes(self, ranges: Sequence[tuple[int, int, int]]) -> list[TreeHash]:
        """The stored hashes of ``(level, start, end)`` ranges, in one read.

        Level 0 reads the leaf hashes of the log's entries, other levels the stored
        subtree hashes. Missing ones are simply absent from the answer.
        """

    async def add_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store subtree hashes ``(level > 0, index, hash)``; one already stored is kept."""

    async def tree_node_counts(self, levels: Sequence[int]) -> list[int]:
        """For each level, 1 + the highest index stored there (0 when none)."""


class CheckpointStore(Protocol):
    """Signed checkpoint notes, one consistent chain across instances."""

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


class WitnessStateStore(Protocol):
    """What the witnesses of the policy cosigned: each one's last size, and per checkpoint
    the note with the verified cosignature lines appended (the witnessing runner's)."""

    async def witness_sizes(self) -> dict[str, WitnessSize]:
        """Each witness's last cosigned size, by its policy name (absent: never cosigned)."""

    async def record_witnessing(
        self, seq: int, cosigned_note: str | None, sizes: Mapping[str, int], at: datetime
    ) -> None:
        """In one transaction: the cosigned note of checkpoint `seq` (unchanged when None)
        and each witness's size, which only grows (a smaller size than stored is ignored)."""

    async def cosigned_checkpoints(self, limit: int) -> list[StoredCheckpoint]:
        """The latest `limit` checkpoints that have a cosigned note, newest first."""

    async def checkpoint_by_seq(self, seq: int) -> StoredCheckpoint | None:
        """The checkpoint stored as `seq`, or None."""

    async def witness_alarms(self) -> list[WitnessAlarm]:
        """The rollback alarms kept (schema 11), by witness."""

    async def raise_witness_alarm(self, alarm: WitnessAlarm) -> None:
        """Keep `alarm`, or update the witness's kept one (sizes and reason; the time it was
        first raised stays)."""

    async def clear_witness_alarm(self, witness: str) -> WitnessAlarm | None:
        """Remove the witness's alarm; the one removed, or None when there was none."""


class NoticeOutboxStore(Protocol):
    """Notices waiting for another attempt (gateway.rights.outbox; schema 8). Several
    instances share the rows: an attempt is made only under a lease its instance claimed."""

    async def add_outbox_notice(self, notice: OutboxNotice) -> None:
        """Store a new notice (its id is new)."""

    async def prune_sent_notices(self, done_before: datetime) -> int:
        """Delete the notices a partner accepted before `done_before`; how many. A pending
        or failed notice is never deleted (retention)."""

    async def outbox_notices(
        self, statuses: Sequence[str] | None = None, limit: int = 1000
    ) -> list[OutboxNotice]:
        """The notices in one of `statuses` (None: all), oldest first."""

    async def outbox_notice(self, notice_id: str) -> OutboxNotice | None:
        """One notice by id, or None."""

    async def claim_outbox_notice(
        self, notice_id: str, owner: str, now: datetime, until: datetime, *, due_only: bool
    ) -> OutboxNotice | None:
        """Lease a pending notice to `owner` until `until`: only when no other lease is
        live at `now` (and, with `due_only`, when its next attempt is due). The notice as
        claimed, or None (another instance holds it, it is not pending, or not due)."""

    async def finish_outbox_attempt(self, notice: OutboxNotice, owner: str) -> bool:
        """Store an attempt's result (status, attempts, next_at, last_error, disclosure_id,
        done_at of `notice`) and release the lease, if `owner` still holds it."""


class InstanceStore(Protocol):
    """Gateway processes on one store, for crash recovery (gateway.log.recovery).

    Times are the store's own clock (PostgreSQL's for PostgreSQL), so instances on
    machines whose clocks disagree still agree on who went quiet."""

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

    async def prune_instances(self, recovered_before: datetime) -> int:
        """Delete the rows of instances recovered (or retired) before `recovered_before`;
        how many. A row without `recovered_at` (alive, or dead and not yet recovered) is
        never deleted; an instance whose row is gone and that turns out to be alive (a
        stalled process) registers again at its next heartbeat, and intents without
        outcome of a deleted one are adopted again (`adopt_instances`)."""


class PersonalTokenStore(Protocol):
    """People's API tokens for the CLI (schema 13): only each secret's hash is stored."""

    async def add_personal_token(self, token: PersonalToken) -> None:
        """Store a new token (its id and hash are new)."""

    async def personal_token_by_hash(self, token_hash: str) -> PersonalToken | None:
        """The token whose secret hashes to `token_hash`, usable or not; None if none."""

    async def personal_tokens_of(self, person: str, limit: int = 100) -> list[PersonalToken]:
        """`person`'s tokens, newest first, revoked and expired ones included."""

    async def revoke_personal_token(self, token_id: str, person: str, at: datetime) -> bool:
        """Revoke `person`'s token `token_id` at `at`; False when it is not theirs, does
        not exist or was revoked already (nothing changed)."""


class ReviewSessionStore(Protocol):
    """The review site's sessions (schema 15): ended on the server, seen by every instance."""

    async def add_review_session(
        self, session_id: str, person: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store a new session of `person` (expired ones are the retention sweep's to delete)."""

    async def review_session_live(self, session_id: str, person: str, now: datetime) -> bool:
        """Whether `person`'s session `session_id` exists, has not ended nor expired."""

    async def end_review_session(self, session_id: str, person: str, at: datetime) -> bool:
        """End one session of `person` at `at`; False when it had ended or is not theirs."""

    async def live_review_sessions_of(self, person: str, now: datetime) -> int:
        """How many sessions of `person` are live at `now`."""

    async def end_review_sessions_of(self, person: str, at: datetime) -> int:
        """End every live session of `person` at `at`; how many."""

    async def prune_expired_review_sessions(self, now: datetime) -> int:
        """Delete every session expired at `now`, ended or not; how many (retention)."""
