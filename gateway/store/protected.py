"""The store as the service uses it: subject ids and free text protected on the way in.

:class:`ProtectedStore` wraps a storage adapter (which never hashes nor encrypts) and
turns, on the way in, each subject id into its keyed reference and each free text into
its sealed form (gateway.crypto.at_rest), and opens them on the way out. Every other
method is the adapter's own, named one by one (so mypy checks that the wrapper is a
whole Store). A subject id an answer shows is the one the caller asked about: a consent
read by its own id (withdrawal) carries only the keyed reference.

:func:`protect_stored_rows` is the conversion of what was stored before (clear values
of schema 5 and earlier) and the re-sealing after a key rotation: one routine, run in
batches after the schema migration, at every start and by ``gateway db upgrade`` and
``gateway keys rotate-at-rest``. Idempotent: a value already in its newest form is left
alone, and every rewrite is a compare-and-set, so instances starting together agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, Final, Generic, ParamSpec, TypeVar, cast, overload

from gateway.crypto.at_rest import AtRestError, AtRestKeys, is_ref, sealed_key_id
from gateway.errors import ConfigError, ConfigErrors
from gateway.partners.model import Suspension, SuspensionEvent
from gateway.policy.facts import Consent, LegalRequest, SubjectFacts, read_profile
from gateway.store import open_store
from gateway.store.base import Store
from gateway.store.records import (
    PROTECTED_COLUMNS,
    IdempotencyClaim,
    JustificationRecord,
    LegalRequestRecord,
    Rejection,
    RestrictionRow,
    StoredResponse,
)

__all__ = [
    "BATCH",
    "ProtectedStore",
    "load_at_rest_keys",
    "open_protected_store",
    "payload_sealing",
    "protect",
    "protect_stored_rows",
]

BATCH: Final = 500

# Associated data of each sealed field: a ciphertext moved to another column won't open.
_EVIDENCE: Final = "consents.evidence"
_METHOD: Final = "consents.method"
_REASON: Final = "subjects.restriction_reason"
_PROFILE: Final = "subjects.profile"
_INSTRUMENT: Final = "legal_requests.instrument"
_SUBJECT_LIST: Final = "legal_requests.subjects"
_JUSTIFICATION: Final = "justifications.text"
# A rejection's reason was a justification's text until schema 11 moved the rows as they
# were (storage never seals): the column keeps the field it came from.
_REJECTION: Final = _JUSTIFICATION
# A suspension's reason is copied into its history event: one field for both tables.
_SUSPENSION: Final = "partner_suspensions.reason"
_SUSPENSION_EVENT: Final = _SUSPENSION
_ANSWER: Final = "idempotency_keys.body"
_OUTBOX_PAYLOAD: Final = "notice_outbox.payload"
# Keyed like subject ids: a request's hash covers its body and path, which may name a
# subject, and an unkeyed SHA-256 of a guessable id can be found by trying ids.
_REF_COLUMNS: Final = frozenset(
    {"consents.subject", "subjects.subject", "idempotency_keys.request_hash"}
)
_FIELD_OF_COLUMN: Final = {
    "partner_suspension_events.reason": _SUSPENSION,
    "lawful_request_rejections.reason": _REJECTION,
}

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Passed(Generic[_P, _R]):
    """A method of the port the wrapped adapter answers itself.

    Reading it gives the adapter's own bound method, typed as the port's: no extra
    coroutine on the way (the log's append and reads are hot), and mypy checks the
    wrapper against the port as if the method were written out.
    """

    def __init__(self, method: Callable[Concatenate[Any, _P], _R]) -> None:
        self._name = method.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self._name:
            raise TypeError(f"{owner.__name__}.{name} passes on {self._name}")

    @overload
    def __get__(self, wrapper: None, owner: type) -> _Passed[_P, _R]: ...
    @overload
    def __get__(self, wrapper: ProtectedStore, owner: type) -> Callable[_P, _R]: ...
    def __get__(
        self, wrapper: ProtectedStore | None, owner: type
    ) -> _Passed[_P, _R] | Callable[_P, _R]:
        if wrapper is None:
            return self
        method: Callable[_P, _R] = getattr(wrapper.inner, self._name)
        return method


class ProtectedStore:
    """A :class:`~gateway.store.base.Store` that keeps no subject id or free text in clear.

    The methods passed on (:class:`_Passed`) are the wrapped adapter's: the disclosure
    log and the rest hold no subject id (the log has its own keyed references).
    """

    def __init__(self, inner: Store, keys: AtRestKeys) -> None:
        self.inner = inner
        self.keys = keys

    # -- passed on: nothing in them is a subject id or free text ----------------------------

    migrate = _Passed(Store.migrate)
    schema_versions = _Passed(Store.schema_versions)
    ping = _Passed(Store.ping)
    close = _Passed(Store.close)
    # The conversion itself (protect_stored_rows) reads and writes the stored forms.
    protected_values = _Passed(Store.protected_values)
    replace_protected_values = _Passed(Store.replace_protected_values)
    legal_request_subjects = _Passed(Store.legal_request_subjects)
    set_legal_request_subjects = _Passed(Store.set_legal_request_subjects)
    justified = _Passed(Store.justified)
    release_idempotency = _Passed(Store.release_idempotency)
    prune_idempotency_keys = _Passed(Store.prune_idempotency_keys)
    append_log_entries = _Passed(Store.append_log_entries)
    log_size = _Passed(Store.log_size)
    read_log = _Passed(Store.read_log)
    log_entries_for_disclosure = _Passed(Store.log_entries_for_disclosure)
    log_entries_for_disclosures = _Passed(Store.log_entries_for_disclosures)
    log_search = _Passed(Store.log_search)
    log_count = _Passed(Store.log_count)
    intents_without_outcome = _Passed(Store.intents_without_outcome)
    consent_intents = _Passed(Store.consent_intents)
    log_time_span = _Passed(Store.log_time_span)
    project_log = _Passed(Store.project_log)
    projected_size = _Passed(Store.projected_size)
    rebuild_projection = _Passed(Store.rebuild_projection)
    partner_exposure = _Passed(Store.partner_exposure)
    exposure_subject_refs = _Passed(Store.exposure_subject_refs)
    decisions_by_day = _Passed(Store.decisions_by_day)
    refusals_by_problem = _Passed(Store.refusals_by_problem)
    decisions_by_partner = _Passed(Store.decisions_by_partner)
    ropa_counts = _Passed(Store.ropa_counts)
    roll_up_log = _Passed(Store.roll_up_log)
    rebuild_rollup = _Passed(Store.rebuild_rollup)
    check_rollup = _Passed(Store.check_rollup)
    read_log_records = _Passed(Store.read_log_records)
    read_log_rows = _Passed(Store.read_log_rows)
    log_rows_without_leaf_hash = _Passed(Store.log_rows_without_leaf_hash)
    set_leaf_hashes = _Passed(Store.set_leaf_hashes)
    read_tree_hashes = _Passed(Store.read_tree_hashes)
    add_tree_nodes = _Passed(Store.add_tree_nodes)
    tree_node_counts = _Passed(Store.tree_node_counts)
    add_checkpoint = _Passed(Store.add_checkpoint)
    add_checkpoint_after = _Passed(Store.add_checkpoint_after)
    latest_checkpoint = _Passed(Store.latest_checkpoint)
    checkpoints = _Passed(Store.checkpoints)
    witness_sizes = _Passed(Store.witness_sizes)
    # An alarm's reason is the gateway's own words (a witness's name and sizes).
    witness_alarms = _Passed(Store.witness_alarms)
    raise_witness_alarm = _Passed(Store.raise_witness_alarm)
    clear_witness_alarm = _Passed(Store.clear_witness_alarm)
    # The outbox's payload is sealed by the outbox itself (gateway.rights.outbox, with
    # `payload_sealing`): listed and claimed rows stay sealed.
    add_outbox_notice = _Passed(Store.add_outbox_notice)
    outbox_notices = _Passed(Store.outbox_notices)
    outbox_notice = _Passed(Store.outbox_notice)
    claim_outbox_notice = _Passed(Store.claim_outbox_notice)
    finish_outbox_attempt = _Passed(Store.finish_outbox_attempt)
    # A personal token's row holds a hash of a random secret, nothing to seal.
    add_personal_token = _Passed(Store.add_personal_token)
    personal_token_by_hash = _Passed(Store.personal_token_by_hash)
    personal_tokens_of = _Passed(Store.personal_tokens_of)
    revoke_personal_token = _Passed(Store.revoke_personal_token)
    # A review session's row names a person of the site and times: nothing to seal.
    add_review_session = _Passed(Store.add_review_session)
    review_session_live = _Passed(Store.review_session_live)
    end_review_session = _Passed(Store.end_review_session)
    live_review_sessions_of = _Passed(Store.live_review_sessions_of)
    end_review_sessions_of = _Passed(Store.end_review_sessions_of)
    prune_expired_review_sessions = _Passed(Store.prune_expired_review_sessions)
    prune_sent_notices = _Passed(Store.prune_sent_notices)
    record_witnessing = _Passed(Store.record_witnessing)
    cosigned_checkpoints = _Passed(Store.cosigned_checkpoints)
    checkpoint_by_seq = _Passed(Store.checkpoint_by_seq)
    register_instance = _Passed(Store.register_instance)
    heartbeat_instance = _Passed(Store.heartbeat_instance)
    claim_stale_instances = _Passed(Store.claim_stale_instances)
    adopt_instances = _Passed(Store.adopt_instances)
    finish_recovery = _Passed(Store.finish_recovery)
    retire_instance = _Passed(Store.retire_instance)
    list_instances = _Passed(Store.list_instances)
    prune_instances = _Passed(Store.prune_instances)

    # -- helpers ----------------------------------------------------------------------------

    def _seal(self, text: str, field: str) -> str:
        return self.keys.seal(text, field) if text else ""

    def _open(self, text: str, field: str) -> str:
        return self.keys.open(text, field) if text else ""

    def _consent_in(self, consent: Consent) -> Consent:
        return replace(
            consent,
            subject=self.keys.ref(consent.subject),
            evidence=self._seal(consent.evidence, _EVIDENCE),
            method=self._seal(consent.method, _METHOD),
        )

    def _consent_out(self, consent: Consent, subject: str | None = None) -> Consent:
        return replace(
            consent,
            subject=consent.subject if subject is None else subject,
            evidence=self._open(consent.evidence, _EVIDENCE),
            method=self._open(consent.method, _METHOD),
        )

    def _request_out(self, record: LegalRequestRecord) -> LegalRequestRecord:
        if record.rejection is not None:
            reason = self._open(record.rejection.reason, _REJECTION)
            record = replace(record, rejection=replace(record.rejection, reason=reason))
        if not record.sealed_subjects:  # stored before sealing: converted at start
            return record
        subjects = json.loads(self.keys.open(record.sealed_subjects, _SUBJECT_LIST))
        return replace(
            record,
            instrument=self._open(record.instrument, _INSTRUMENT),
            subjects=frozenset(subjects),
            sealed_subjects="",
        )

    def _suspension_out(self, suspension: Suspension) -> Suspension:
        return replace(suspension, reason=self._open(suspension.reason, _SUSPENSION))

    # -- consents, restriction, profile -----------------------------------------------------

    async def add_consent(self, consent: Consent) -> None:
        await self.inner.add_consent(self._consent_in(consent))

    async def withdraw_consent(self, consent_id: str, at: datetime) -> Consent | None:
        consent = await self.inner.withdraw_consent(consent_id, at)
        return None if consent is None else self._consent_out(consent)

    async def consents_to_lapse(
        self,
        min_version: str,
        now: datetime,
        limit: int = 500,
        *,
        claimed_before: datetime | None = None,
    ) -> list[Consent]:
        # Each with its subject as the keyed reference: a lapse needs no subject id.
        found = await self.inner.consents_to_lapse(
            min_version, now, limit, claimed_before=claimed_before
        )
        return [self._consent_out(c) for c in found]

    mark_consent_lapsed = _Passed(Store.mark_consent_lapsed)
    consent_lapse_claim = _Passed(Store.consent_lapse_claim)
    claim_consent_lapse = _Passed(Store.claim_consent_lapse)

    async def get_consent(self, consent_id: str) -> Consent | None:
        consent = await self.inner.get_consent(consent_id)
        return None if consent is None else self._consent_out(consent)

    async def consents_for_subject(self, subject: str) -> list[Consent]:
        found = await self.inner.consents_for_subject(self.keys.ref(subject))
        return [self._consent_out(c, subject) for c in found]

    async def set_restriction(
        self, subject: str, restricted: bool, reason: str, at: datetime
    ) -> None:
        await self.inner.set_restriction(
            self.keys.ref(subject), restricted, self._seal(reason, _REASON), at
        )

    async def restrictions(self, after: str | None, limit: int) -> list[RestrictionRow]:
        # The subject stays its keyed reference: a check of the reasons needs no subject id.
        rows = await self.inner.restrictions(after, limit)
        return [replace(r, reason=self._open(r.reason, _REASON)) for r in rows]

    async def set_profile(self, subject: str, profile: str | None) -> None:
        sealed = None if profile is None else self.keys.seal(profile, _PROFILE)
        await self.inner.set_profile(self.keys.ref(subject), sealed)

    async def forget_subject(
        self, subject: str, at: datetime, profile: str | None
    ) -> tuple[int, int]:
        sealed = None if profile is None else self.keys.seal(profile, _PROFILE)
        return await self.inner.forget_subject(self.keys.ref(subject), at, sealed)

    async def subject_facts(self, subject: str, legal_request_id: str | None) -> SubjectFacts:
        ref = self.keys.ref(subject)
        facts = await self.inner.subject_facts(ref, legal_request_id)
        born, until = facts.date_of_birth, facts.under_age_until
        if facts.sealed_profile is not None:
            born, until = read_profile(self.keys.open(facts.sealed_profile, _PROFILE))
        # A lawful request names keyed references: the subject asked about is covered
        # when its reference is among them (no subject list is opened on this path).
        requests = {
            rid: replace(r, subjects=frozenset({subject}) if ref in r.subjects else frozenset())
            for rid, r in facts.legal_requests.items()
        }
        return replace(
            facts,
            # What decide() reads of a consent: its evidence and method stay sealed in the
            # store (two AES-GCM opens per consent per disclosure, for nothing), and out of
            # the facts; consents_for_subject gives them.
            consents=tuple(
                replace(c, subject=subject, evidence="", method="") for c in facts.consents
            ),
            date_of_birth=born,
            under_age_until=until,
            sealed_profile=None,
            legal_requests=cast(Mapping[str, LegalRequest], requests),
        )

    # -- lawful requests --------------------------------------------------------------------

    async def add_legal_request(self, record: LegalRequestRecord) -> None:
        listed = _listed(record.subjects)
        await self.inner.add_legal_request(
            replace(
                record,
                instrument=self._seal(record.instrument, _INSTRUMENT),
                subjects=frozenset(self.keys.ref(s) for s in record.subjects),
                sealed_subjects=self.keys.seal(listed, _SUBJECT_LIST),
            )
        )

    async def get_legal_request(self, request_id: str) -> LegalRequestRecord | None:
        record = await self.inner.get_legal_request(request_id)
        return None if record is None else self._request_out(record)

    async def approve_legal_request(
        self, request_id: str, reviewer_id: str, at: datetime
    ) -> LegalRequestRecord | None:
        record = await self.inner.approve_legal_request(request_id, reviewer_id, at)
        return None if record is None else self._request_out(record)

    async def reject_legal_request(
        self, request_id: str, rejection: Rejection
    ) -> LegalRequestRecord | None:
        sealed = replace(rejection, reason=self._seal(rejection.reason, _REJECTION))
        record = await self.inner.reject_legal_request(request_id, sealed)
        return None if record is None else self._request_out(record)

    async def list_legal_requests(self, status: str | None = None) -> list[LegalRequestRecord]:
        return [self._request_out(r) for r in await self.inner.list_legal_requests(status)]

    # -- emergency review ---------------------------------------------------------------------

    async def add_justification(self, record: JustificationRecord) -> bool:
        return await self.inner.add_justification(
            replace(record, text=self._seal(record.text, _JUSTIFICATION))
        )

    async def get_justification(self, disclosure_id: str) -> JustificationRecord | None:
        record = await self.inner.get_justification(disclosure_id)
        return (
            None
            if record is None
            else replace(record, text=self._open(record.text, _JUSTIFICATION))
        )

    # -- partner suspensions -------------------------------------------------------------------

    async def suspend_partner(self, suspension: Suspension) -> Suspension:
        sealed = replace(suspension, reason=self._seal(suspension.reason, _SUSPENSION))
        in_force = await self.inner.suspend_partner(sealed)
        # The one just stored comes back as given; one already in force is opened.
        return suspension if in_force == sealed else self._suspension_out(in_force)

    async def resume_partner(
        self, partner_id: str, actor: str, reason: str, at: datetime
    ) -> Suspension | None:
        lifted = await self.inner.resume_partner(
            partner_id, actor, self._seal(reason, _SUSPENSION_EVENT), at
        )
        return None if lifted is None else self._suspension_out(lifted)

    async def partner_suspensions(self) -> dict[str, Suspension]:
        found = await self.inner.partner_suspensions()
        return {pid: self._suspension_out(s) for pid, s in found.items()}

    async def suspension_history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]:
        events = await self.inner.suspension_history(partner_id, limit)
        return [
            replace(
                e,
                reason=self._open(e.reason, _SUSPENSION_EVENT),
            )
            for e in events
        ]

    # -- idempotency: a stored answer may hold a subject id or evidence --------------------

    async def claim_idempotency(
        self, caller_id: str, key: str, request_hash: str
    ) -> IdempotencyClaim:
        claim = await self.inner.claim_idempotency(caller_id, key, self.keys.ref(request_hash))
        if claim.response is None:
            return claim
        stored = claim.response
        body = self.keys.open_bytes(stored.body, _ANSWER) if _sealed(stored.body) else stored.body
        return replace(claim, response=StoredResponse(stored.status, stored.headers, body))

    async def complete_idempotency(
        self, caller_id: str, key: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        await self.inner.complete_idempotency(
            caller_id, key, status, headers, self.keys.seal_bytes(body, _ANSWER)
        )


def _listed(subjects: frozenset[str]) -> str:
    return json.dumps(sorted(subjects), separators=(",", ":"))


def _sealed(value: str | bytes) -> bool:
    return sealed_key_id(value) is not None


class PayloadSealing:
    """The at-rest sealing of an outbox notice's payload (the subject and identifiers a
    later attempt sends), with the store's keys (gateway.rights.outbox.PayloadSealer)."""

    def __init__(self, keys: AtRestKeys) -> None:
        self.keys = keys

    def seal_payload(self, text: str) -> str:
        return self.keys.seal(text, _OUTBOX_PAYLOAD)

    def open_payload(self, text: str) -> str:
        return self.keys.open(text, _OUTBOX_PAYLOAD)


def payload_sealing(store: Store) -> PayloadSealing:
    """The payload sealing of a store `open_protected_store` opened."""
    if not isinstance(store, ProtectedStore):
        raise TypeError("the notice outbox needs the protected store (open_protected_store)")
    return PayloadSealing(store.keys)


def protect(store: Store, keys: AtRestKeys) -> Store:
    """`store` behind a ProtectedStore (typed as the port every caller uses)."""
    return ProtectedStore(store, keys)


# -- conversion of stored rows, and re-sealing after a rotation ------------------------------


def _converted(column: str, value: str | bytes, keys: AtRestKeys) -> str | bytes | None:
    """The newest protected form of a stored value, or None when it already is."""
    field = _FIELD_OF_COLUMN.get(column, column)
    if column in _REF_COLUMNS:
        text = str(value)
        return None if is_ref(text) else keys.ref(text)
    if isinstance(value, bytes):
        if sealed_key_id(value) == keys.newest:
            return None
        plain = keys.open_bytes(value, field) if _sealed(value) else value
        return keys.seal_bytes(plain, field)
    if not value or sealed_key_id(value) == keys.newest:
        return None
    if column == _PROFILE and not _sealed(value):
        born, until = read_profile(value)  # a bare date of schema 5 gets its label
        value = f"date_of_birth:{born}" if born else f"under_age_until:{until}"
    return keys.reseal(value, field)


async def protect_stored_rows(store: Store, keys: AtRestKeys, batch: int = BATCH) -> int:
    """Bring every protected column to its newest form; how many values were rewritten."""
    rewritten = 0
    for column in PROTECTED_COLUMNS:
        after: tuple[object, ...] | None = None
        while rows := await store.protected_values(column, after, batch):
            changes = [
                (key, value, new)
                for key, value in rows
                if (new := _converted(column, value, keys)) is not None
            ]
            if changes:
                rewritten += await store.replace_protected_values(column, changes)
            after = rows[-1][0]
    rewritten += await _protect_request_subjects(store, keys, batch)
    return rewritten


async def _protect_request_subjects(store: Store, keys: AtRestKeys, batch: int) -> int:
    rewritten = 0
    after: str | None = None
    while rows := await store.legal_request_subjects(after, batch):
        for request_id, subjects, sealed in rows:
            if sealed and sealed_key_id(sealed) == keys.newest:
                continue
            if sealed:
                refs, listed = subjects, keys.reseal(sealed, _SUBJECT_LIST)
            else:  # stored before sealing: the set holds the subject ids themselves
                refs = frozenset(keys.ref(s) for s in subjects)
                listed = keys.seal(_listed(subjects), _SUBJECT_LIST)
            rewritten += await store.set_legal_request_subjects(request_id, refs, listed, sealed)
        after = rows[-1][0]
    return rewritten


def load_at_rest_keys(keys_dir: Path) -> AtRestKeys:
    """The at-rest keys, or ConfigErrors saying which file to create or fix."""
    try:
        return AtRestKeys.load(keys_dir)
    except FileNotFoundError as exc:
        missing = str(exc.filename or keys_dir)
        raise ConfigErrors(
            [ConfigError(missing, None, "not found: run 'gateway keys generate'")]
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigErrors(
            [
                ConfigError(
                    str(keys_dir),
                    None,
                    f"an at-rest key is unreadable or not a 32-byte key ({type(exc).__name__})",
                )
            ]
        ) from None


async def open_protected_store(url: str, root: Path, keys_dir: Path) -> Store:
    """The configured store, migrated, its older rows converted, behind ProtectedStore.

    What the composition root (and every CLI command that opens the store) calls.
    """
    keys = load_at_rest_keys(keys_dir)
    store = await open_store(url, root)
    try:
        await protect_stored_rows(store, keys)
    except AtRestError as exc:  # a key still in use was deleted, or a row was altered
        await store.close()
        raise ConfigErrors([ConfigError(str(keys_dir), None, exc.detail)]) from None
    except BaseException:
        await store.close()
        raise
    return protect(store, keys)
