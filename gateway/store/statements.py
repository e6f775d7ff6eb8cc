"""The SQL both adapters run alike, written once with ``?`` placeholders.

:data:`SQL` is the text SQLite runs; :meth:`Statements.numbered` gives PostgreSQL's
``$n`` once, at import. Each statement's values are bound in the order its
placeholders appear; :mod:`gateway.store.sql_store` holds the methods that run them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Final

__all__ = ["LEGAL_REQUEST_STATUS", "REJECTION_JOIN", "SQL", "Statements", "numbered"]

# Column lists are spelled out so that every statement is a constant; the consent
# columns are in mapping.consent's order.
_SELECT_CONSENTS: Final = (
    "SELECT id, subject, purposes, partners, partner_categories, special_categories, "
    "policy_version, obtained_at, expires_at, withdrawn_at, method, evidence FROM consents"
)
_SELECT_TOKENS: Final = (
    "SELECT id, person, roles, token_hash, created_at, expires_at, revoked_at FROM personal_tokens"
)
# The notice outbox's columns, in mapping.outbox_notice's order.
_SELECT_OUTBOX: Final = (
    "SELECT id, kind, partner, operation, reference, payload, status, attempts, created_at, "
    "next_at, last_error, disclosure_id, lease_owner, lease_until, done_at FROM notice_outbox"
)

# A lawful request's status as read: `legal_requests.status` (pending or approved), or
# ``rejected`` when the request has a rejection (schema 11), joined as `r` (REJECTION_JOIN).
REJECTION_JOIN: Final = " LEFT JOIN lawful_request_rejections r ON r.request_id = l.id"
LEGAL_REQUEST_STATUS: Final = "CASE WHEN r.request_id IS NULL THEN l.status ELSE 'rejected' END"


def numbered(sql: str) -> str:
    """`sql` with its ``?`` placeholders numbered ``$1``, ``$2``, … (PostgreSQL's).

    The statements here hold no ``?`` other than placeholders (no literals or comments).
    """
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, start=1))


@dataclass(frozen=True)
class Statements:
    """The SQL both databases run alike, bound in the order the placeholders appear."""

    consent_by_id: str = _SELECT_CONSENTS + " WHERE id = ?"
    consents_of_subject: str = _SELECT_CONSENTS + " WHERE subject = ? ORDER BY obtained_at, id"
    insert_consent: str = (
        "INSERT INTO consents (id, subject, purposes, partners, partner_categories, "
        "special_categories, policy_version, obtained_at, expires_at, withdrawn_at, method, "
        "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    withdraw_consent: str = (
        "UPDATE consents SET withdrawn_at = coalesce(withdrawn_at, ?) WHERE id = ? "
        "RETURNING id, subject, purposes, partners, partner_categories, special_categories, "
        "policy_version, obtained_at, expires_at, withdrawn_at, method, evidence"
    )
    # Live consents under an older policy version, not yet lapsed (gateway.rights.lapse),
    # nor claimed by an instance lapsing them now (schema 15: a claim after the time bound).
    consents_to_lapse: str = (
        _SELECT_CONSENTS + " WHERE policy_version < ? AND withdrawn_at IS NULL "
        "AND lapsed_at IS NULL AND (expires_at IS NULL OR expires_at > ?) "
        "AND (lapse_claimed_at IS NULL OR lapse_claimed_at <= ?) "
        "ORDER BY obtained_at, id LIMIT ?"
    )
    mark_consent_lapsed: str = "UPDATE consents SET lapsed_at = coalesce(lapsed_at, ?) WHERE id = ?"
    insert_justification: str = (
        "INSERT INTO justifications (disclosure_id, reviewer_id, text, at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (disclosure_id) DO NOTHING"
    )
    justification: str = (
        "SELECT disclosure_id, reviewer_id, text, at FROM justifications WHERE disclosure_id = ?"
    )
    set_restriction: str = (
        "INSERT INTO subjects (subject, restricted, restriction_reason, "
        "restriction_changed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (subject) DO UPDATE SET restricted = excluded.restricted, "
        "restriction_reason = excluded.restriction_reason, "
        "restriction_changed_at = excluded.restriction_changed_at"
    )
    restrictions: str = (
        "SELECT subject, restricted, restriction_reason, restriction_changed_at FROM subjects "
        "WHERE restriction_changed_at IS NOT NULL AND subject > ? ORDER BY subject LIMIT ?"
    )
    set_profile: str = (
        "INSERT INTO subjects (subject, profile) VALUES (?, ?) "
        "ON CONFLICT (subject) DO UPDATE SET profile = excluded.profile"
    )
    withdraw_subject_consents: str = (
        "UPDATE consents SET withdrawn_at = ? WHERE subject = ? AND withdrawn_at IS NULL"
    )
    clear_subject_evidence: str = (
        "UPDATE consents SET evidence = '' WHERE subject = ? AND evidence <> ''"
    )
    replace_profile: str = "UPDATE subjects SET profile = ? WHERE subject = ?"
    legal_request_subjects: str = (
        "SELECT id, subjects, sealed_subjects FROM legal_requests WHERE id > ? ORDER BY id LIMIT ?"
    )
    set_legal_request_subjects: str = (
        "UPDATE legal_requests SET subjects = ?, sealed_subjects = ? "
        "WHERE id = ? AND sealed_subjects = ?"
    )
    insert_legal_request: str = (
        "INSERT INTO legal_requests (id, authority, reference, instrument, "
        "subjects, partners, received_at, registered_by, status, sealed_subjects) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    insert_approval: str = (
        "INSERT INTO legal_request_approvals (request_id, reviewer_id, approved_at) "
        "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    )
    legal_request_id: str = "SELECT id FROM legal_requests WHERE id = ?"
    insert_rejection: str = (
        "INSERT INTO lawful_request_rejections (request_id, reviewer_id, reason, rejected_at) "
        "VALUES (?, ?, ?, ?)"
    )
    set_legal_request_status: str = "UPDATE legal_requests SET status = ? WHERE id = ?"
    insert_suspension: str = (
        "INSERT INTO partner_suspensions (partner_id, reason, suspended_by, suspended_at) "
        "VALUES (?, ?, ?, ?) "
        "ON CONFLICT (partner_id) DO NOTHING"
    )
    suspension: str = (
        "SELECT partner_id, reason, suspended_by, suspended_at FROM partner_suspensions "
        "WHERE partner_id = ?"
    )
    suspensions: str = (
        "SELECT partner_id, reason, suspended_by, suspended_at FROM partner_suspensions"
    )
    delete_suspension: str = (
        "DELETE FROM partner_suspensions WHERE partner_id = ? "
        "RETURNING partner_id, reason, suspended_by, suspended_at"
    )
    suspend_event: str = (
        "INSERT INTO partner_suspension_events (partner_id, action, reason, actor, at) "
        "VALUES (?, 'suspend', ?, ?, ?)"
    )
    resume_event: str = (
        "INSERT INTO partner_suspension_events (partner_id, action, reason, actor, at) "
        "VALUES (?, 'resume', ?, ?, ?)"
    )
    suspension_events: str = (
        "SELECT seq, partner_id, action, reason, actor, at "
        "FROM partner_suspension_events ORDER BY seq DESC LIMIT ?"
    )
    suspension_events_of_partner: str = (
        "SELECT seq, partner_id, action, reason, actor, at "
        "FROM partner_suspension_events WHERE partner_id = ? ORDER BY seq DESC LIMIT ?"
    )
    idempotency_key: str = (
        "SELECT request_hash, completed, status, headers, body "
        "FROM idempotency_keys WHERE caller_id = ? AND key = ?"
    )
    complete_idempotency: str = (
        "UPDATE idempotency_keys SET completed = ?, status = ?, headers = ?, body = ? "
        "WHERE caller_id = ? AND key = ?"
    )
    release_idempotency: str = (
        "DELETE FROM idempotency_keys WHERE caller_id = ? AND key = ? AND NOT completed"
    )
    # The retention sweep, in batches (row values: no rowid in PostgreSQL, no DELETE …
    # LIMIT in SQLite); the range of idempotency_keys_by_claimed_at (schema 9).
    prune_idempotency_keys: str = (
        "DELETE FROM idempotency_keys WHERE (caller_id, key) IN ("
        "SELECT caller_id, key FROM idempotency_keys WHERE claimed_at < ? AND completed "
        "LIMIT ?)"
    )
    log_range: str = "SELECT idx, entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
    # The search columns are the projection's (schema 14, gateway.store.projection),
    # read once it holds every committed entry (SqlStore.project_log).
    log_of_disclosure: str = (
        "SELECT p.idx, e.entry FROM log_index p JOIN log_entries e ON e.idx = p.idx "
        "WHERE p.disclosure_id = ? ORDER BY p.idx"
    )
    # One consent's intents since a time, a page after an index (schema 16's
    # log_index_by_consent): a withdrawal's recipients (gateway.rights.withdrawal). The
    # entry by a subquery, as a search reads it (search_sql.found_rows says why).
    consent_intents: str = (
        "SELECT p.idx, (SELECT e.entry FROM log_entries e WHERE e.idx = p.idx) "
        "FROM log_index p WHERE p.consent_id = ? AND p.idx > ? AND p.kind = 'intent' "
        "AND p.legal_basis = 'consent' AND p.logged_at >= ? ORDER BY p.idx LIMIT ?"
    )
    intents_without_outcome: str = (
        "SELECT i.idx, e.entry FROM log_index i JOIN log_entries e ON e.idx = i.idx "
        "WHERE i.kind = 'intent' AND NOT EXISTS (SELECT 1 FROM log_index o "
        "WHERE o.disclosure_id = i.disclosure_id AND o.kind = 'outcome') "
        "ORDER BY i.idx"
    )
    # Two subqueries: SQLite answers a lone min() or max() from the index, but scans
    # the whole table for both in one SELECT.
    log_time_span: str = (
        "SELECT (SELECT min(logged_at) FROM log_index), (SELECT max(logged_at) FROM log_index)"
    )
    log_records: str = (
        "SELECT idx, entry, leaf_hash FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?"
    )
    # Each entry with its projected row, if any, and whether it is below the mark: one
    # statement, so one snapshot (a projector commits its rows and its mark together).
    log_rows: str = (
        "SELECT e.idx, e.entry, e.leaf_hash, p.kind, p.disclosure_id, p.subject_ref, "
        "p.partner, p.logged_at, p.purpose, p.legal_basis, p.outcome, p.consent_id, "
        "e.idx < (SELECT projected_size FROM log_projection WHERE name = 'search') "
        # The bound on p.idx too: without it PostgreSQL merge-joins from the projection's
        # first row, so each page cost a walk to its position (3.3 s a page at 5,000,000).
        "FROM log_entries e LEFT JOIN log_index p ON p.idx = e.idx AND p.idx >= ? "
        "WHERE e.idx >= ? ORDER BY e.idx LIMIT ?"
    )
    unhashed_log_rows: str = (
        "SELECT idx, entry FROM log_entries WHERE leaf_hash IS NULL ORDER BY idx LIMIT ?"
    )
    instances: str = (
        "SELECT id, host, pid, started_at, heartbeat_at, claimed_by, recovered_at "
        "FROM instances ORDER BY started_at, id"
    )
    prune_instances: str = (
        "DELETE FROM instances WHERE recovered_at IS NOT NULL AND recovered_at < ?"
    )
    insert_checkpoint: str = "INSERT INTO checkpoints (size, note, created_at) VALUES (?, ?, ?)"
    latest_checkpoint_seq: str = "SELECT max(seq) FROM checkpoints"
    latest_checkpoint: str = (
        "SELECT size, note, created_at, seq, cosigned_note FROM checkpoints "
        "ORDER BY seq DESC LIMIT 1"
    )
    checkpoints: str = (
        "SELECT size, note, created_at, seq, cosigned_note FROM checkpoints ORDER BY seq"
    )
    cosigned_checkpoints: str = (
        "SELECT size, note, created_at, seq, cosigned_note FROM checkpoints "
        "WHERE cosigned_note IS NOT NULL ORDER BY seq DESC LIMIT ?"
    )
    checkpoint_by_seq: str = (
        "SELECT size, note, created_at, seq, cosigned_note FROM checkpoints WHERE seq = ?"
    )
    set_cosigned_note: str = "UPDATE checkpoints SET cosigned_note = ? WHERE seq = ?"
    witness_sizes: str = (
        "SELECT witness, size, checkpoint_seq, updated_at FROM witness_sizes ORDER BY witness"
    )
    # A witness's size only grows: an instance that read an older size (another instance
    # submitted a newer checkpoint in between) does not move it back.
    upsert_witness_size: str = (
        "INSERT INTO witness_sizes (witness, size, checkpoint_seq, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (witness) DO UPDATE SET size = excluded.size, "
        "checkpoint_seq = excluded.checkpoint_seq, updated_at = excluded.updated_at "
        "WHERE excluded.size >= witness_sizes.size"
    )
    witness_alarms: str = (
        "SELECT witness, witness_size, log_size, reason, raised_at FROM witness_alarms "
        "ORDER BY witness"
    )
    upsert_witness_alarm: str = (
        "INSERT INTO witness_alarms (witness, witness_size, log_size, reason, raised_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (witness) DO UPDATE SET "
        "witness_size = excluded.witness_size, log_size = excluded.log_size, "
        "reason = excluded.reason"
    )
    delete_witness_alarm: str = (
        "DELETE FROM witness_alarms WHERE witness = ? "
        "RETURNING witness, witness_size, log_size, reason, raised_at"
    )
    schema_versions: str = "SELECT version FROM schema_version ORDER BY version"
    # The notice outbox (schema 8), in mapping.outbox_notice's column order.
    insert_outbox_notice: str = (
        "INSERT INTO notice_outbox (id, kind, partner, operation, reference, payload, status, "
        "attempts, created_at, next_at, last_error, disclosure_id, lease_owner, lease_until, "
        "done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    # Rows in one of three statuses (a caller wanting fewer repeats one), oldest first.
    outbox_notices: str = (
        _SELECT_OUTBOX + " WHERE status IN (?, ?, ?) ORDER BY created_at, id LIMIT ?"
    )
    outbox_notice: str = _SELECT_OUTBOX + " WHERE id = ?"
    # A lease is taken only where none is live: two instances never attempt one notice
    # at once (the loser's UPDATE changes no row).
    claim_outbox_notice: str = (
        "UPDATE notice_outbox SET lease_owner = ?, lease_until = ? WHERE id = ? "
        "AND status = 'pending' AND (lease_until IS NULL OR lease_until <= ?) "
        "AND next_at <= ?"
    )
    finish_outbox_attempt: str = (
        "UPDATE notice_outbox SET status = ?, attempts = ?, next_at = ?, last_error = ?, "
        "disclosure_id = ?, done_at = ?, lease_owner = '', lease_until = NULL "
        "WHERE id = ? AND lease_owner = ?"
    )

    # Personal API tokens (schema 13), in mapping.personal_token's column order.
    insert_personal_key: str = (
        "INSERT INTO personal_tokens (id, person, roles, token_hash, created_at, expires_at, "
        "revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    personal_token_by_hash: str = _SELECT_TOKENS + " WHERE token_hash = ?"
    personal_tokens_of: str = (
        _SELECT_TOKENS + " WHERE person = ? ORDER BY created_at DESC, id LIMIT ?"
    )
    # Only the person's own token, and only once: a second revocation changes no row.
    revoke_personal_key: str = (
        "UPDATE personal_tokens SET revoked_at = ? "
        "WHERE id = ? AND person = ? AND revoked_at IS NULL"
    )

    # A consent's lapse claimed by one instance (schema 15, gateway.rights.lapse): a fresh
    # claim, or the take-over of a stale claim still as it was read; a loser changes no row.
    consent_lapse_claim: str = "SELECT lapse_claimed_at FROM consents WHERE id = ?"
    claim_consent_lapse: str = (
        "UPDATE consents SET lapse_claimed_at = ? "
        "WHERE id = ? AND lapsed_at IS NULL AND lapse_claimed_at IS NULL"
    )
    take_over_consent_lapse: str = (
        "UPDATE consents SET lapse_claimed_at = ? "
        "WHERE id = ? AND lapsed_at IS NULL AND lapse_claimed_at = ?"
    )

    # Review-site sessions (schema 15): one row each, read by id on every signed-in request.
    insert_review_session: str = (
        "INSERT INTO review_sessions (id, person, created_at, expires_at) VALUES (?, ?, ?, ?)"
    )
    review_session_live: str = (
        "SELECT 1 FROM review_sessions "
        "WHERE id = ? AND person = ? AND ended_at IS NULL AND expires_at > ?"
    )
    end_review_session: str = (
        "UPDATE review_sessions SET ended_at = ? WHERE id = ? AND person = ? AND ended_at IS NULL"
    )
    live_review_sessions_of: str = (
        "SELECT count(*) FROM review_sessions "
        "WHERE person = ? AND ended_at IS NULL AND expires_at > ?"
    )
    end_review_sessions_of: str = (
        "UPDATE review_sessions SET ended_at = ? "
        "WHERE person = ? AND ended_at IS NULL AND expires_at > ?"
    )

    # Retention (gateway.ops.retention): sessions past their expiry, ended or not, and
    # notices a partner accepted, a batch at a time like the idempotency keys. A failed
    # or pending notice is never deleted: it waits for a partner or a person.
    prune_expired_review_sessions: str = (
        "DELETE FROM review_sessions WHERE id IN ("
        "SELECT id FROM review_sessions WHERE expires_at <= ? LIMIT ?)"
    )
    prune_sent_notices: str = (
        "DELETE FROM notice_outbox WHERE id IN ("
        "SELECT id FROM notice_outbox WHERE status = 'sent' AND done_at < ? LIMIT ?)"
    )

    def numbered(self) -> Statements:
        """These statements with PostgreSQL's ``$n`` placeholders."""
        return replace(self, **{f.name: numbered(getattr(self, f.name)) for f in fields(self)})


# The statements with ``?`` placeholders (SQLite's).
SQL: Final = Statements()
