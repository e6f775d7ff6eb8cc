"""A person's acts in the disclosure log: recorded before they take effect, checked after.

Every act a person takes through the API, the review site or the CLI — suspending a
partner, justifying an emergency disclosure, approving a lawful request, recording a
consent, reading a subject's report, … — is an ``action`` entry
(:func:`gateway.log.entries.action_entry`): who, proven by which credential, did what, to
what, when. The tables (suspensions, justifications, lawful requests, consents) stay as
they were: projections the pages read.

**Order: the log first, then the table.** :meth:`ActionLog.record` appends the entry and
waits until it is durable; only then does the caller write its row, with the same time.
If the append fails the act fails (``log_unavailable``: nothing was changed), so a row
never exists without its entry. The other way round can happen — the entry is written
and the row's write then fails, or loses a race — and is harmless: the entry records an
attempt, and ``gateway log verify`` counts such entries without calling them damage.

**Free text never enters the log.** A justification or a reason may name a person, and
the log cannot forget: the entry holds the text's keyed hash (``LogKeys.text_hash``,
under the month's key), the text stays in its table, sealed at rest.
:func:`check_action_texts` (run by ``gateway log verify`` and the review page's periodic
audit) finds each row with free text by its entry — a justification or a suspension event
by the same target, actor and time (to the millisecond the entry keeps), a lawful request
by its id and registrant, a lawful request's rejection (``lawful_request_rejections``) by
its id, rejecting reviewer and time — and fails, naming the table and the entry's index,
when the text no longer matches the hash. Rows written before action entries existed have
none and are counted, not failed; so is an entry whose row was never written (or lost a
race). A restriction is found the other way, from its row: the subjects table keeps the
subject as a lookup reference the log's entries cannot be matched on, so each row set or
lifted is checked against the ``restrict``/``lift_restriction`` entries of its time (to
the millisecond); a row no entry of its time speaks for predates action entries, and a
row whose reason or state differs from every entry of its time fails. A restriction's
earlier entries, superseded by a later one, have no row to check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from gateway.canonical import timestamp
from gateway.crypto.subject_keys import ForgottenPeriod, LogKeys
from gateway.errors import GatewayError, LogUnavailableError
from gateway.log.columns import checked_search
from gateway.log.entries import action_entry, row_of, target
from gateway.log.record import EntryRecord
from gateway.partners.model import SuspensionEvent
from gateway.store.records import (
    MAX_SEARCH_LIMIT,
    JustificationRecord,
    LegalRequestRecord,
    LogEntry,
    LogQuery,
    LogRow,
    RestrictionRow,
)

__all__ = [
    "ActionLog",
    "ActionNotRecorded",
    "ActionTextReport",
    "AppendsRows",
    "Person",
    "check_action_texts",
    "direct_append",
    "find_actions",
    "lawful_request_text",
    "target",
]

Append = Callable[[Mapping[str, Any]], Awaitable[int]]

HISTORY_LIMIT: Final = MAX_SEARCH_LIMIT  # suspension events read per partner (newest first)


@dataclass(frozen=True)
class Person:
    """Who acts, as proven: their id and the id of the credential that proved it
    (``token:<kid>`` for a bearer token, ``password:<id>`` for a review-page account,
    ``certificate:<cn>`` for a client certificate) — never the secret itself."""

    id: str
    credential: str


class ActionNotRecorded(LogUnavailableError):
    """The act's log entry could not be written, so the act was not done."""

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(
            f"the {action.replace('_', ' ')} was not done: its entry in the disclosure log "
            f"could not be written ({detail}); nothing was changed, try again"
        )


class AppendsRows(Protocol):
    async def append_log_entries(self, entries: Sequence[LogRow]) -> list[int]: ...


def direct_append(store: AppendsRows) -> Append:
    """Append one entry straight to the store, durable when it returns (the CLI, which
    has no group-commit writer; the store serializes appenders across processes)."""

    async def append(entry: Mapping[str, Any]) -> int:
        return (await store.append_log_entries([row_of(entry)]))[0]

    return append


class ActionLog:
    """Records acts: one durable ``action`` entry each, before the act's table row."""

    def __init__(self, append: Append, keys: LogKeys, clock: Callable[[], datetime]) -> None:
        self._append = append
        self._keys = keys
        self.clock = clock

    async def record(
        self,
        who: Person,
        action: str,
        *,
        at: datetime | None = None,
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
    ) -> int:
        """Append the act's entry and wait until it is durable; its index.
        ActionNotRecorded when it cannot be written (the caller must not act then)."""
        entry = action_entry(
            actor=who.id,
            credential=who.credential,
            action=action,
            at=self.clock() if at is None else at,
            keys=self._keys,
            target=target,
            subject=subject,
            text=text,
            partner=partner,
            disclosure_id=disclosure_id,
            legal_request_id=legal_request_id,
            consent_id=consent_id,
            window=window,
            counts=counts,
            policy_versions=policy_versions,
        )
        try:
            return await self._append(entry)
        except GatewayError as exc:
            raise ActionNotRecorded(action, exc.detail) from None

    async def suspension(
        self, action: str, partner_id: str, actor: str, credential: str, reason: str, at: datetime
    ) -> None:
        """The recorder `gateway.partners.standing.Suspensions` calls before its write."""
        await self.record(
            Person(actor, credential),
            action,
            at=at,
            target=target("partner", partner_id),
            partner=partner_id,
            text=reason,
        )


def lawful_request_text(record: LegalRequestRecord) -> str:
    """What a person typed when registering a lawful request, as one text to hash: the
    authority, its reference and the instrument (the subjects are ids, kept sealed)."""
    return "\n".join((record.authority, record.reference, record.instrument))


class ActionSearchStore(Protocol):
    async def log_search(self, query: LogQuery) -> list[LogEntry]: ...
    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]: ...


async def find_actions(
    store: ActionSearchStore, *, actor: str | None = None, action: str | None = None
) -> AsyncIterator[EntryRecord]:
    """Every action entry (of `actor`, of `action`), oldest first, each checked against
    its bytes (``gateway log actions``)."""
    query = LogQuery(kind="action", limit=MAX_SEARCH_LIMIT)
    while rows := await checked_search(store, query):
        for entry in rows:
            if (actor is None or entry.actor == actor) and (
                action is None or entry.action == action
            ):
                yield entry
        query = query.after(rows[-1].index)


# -- log verify: the tables' free text against the entries' hashes -------------------------


class ActionTextStore(Protocol):
    async def log_search(self, query: LogQuery) -> list[LogEntry]: ...
    async def log_entries_for_disclosure(self, disclosure_id: str) -> list[LogEntry]: ...
    async def get_justification(self, disclosure_id: str) -> JustificationRecord | None: ...
    async def get_legal_request(self, request_id: str) -> LegalRequestRecord | None: ...
    async def suspension_history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]: ...
    async def restrictions(self, after: str | None, limit: int) -> list[RestrictionRow]: ...


@dataclass
class ActionTextReport:
    """What `check_action_texts` found. `problems` fail `log verify`; the counts do not."""

    checked: int = 0  # rows whose text matched their entry's hash
    problems: list[tuple[int, str]] = field(default_factory=list)  # (entry index, message)
    without_row: int = 0  # entries whose row was never written (a failed or lost write)
    rows_before: int = 0  # rows older than action entries (no entry to check against)
    forgotten: int = 0  # entries of a month whose key was forgotten

    def summary(self) -> str:
        parts = [f"{self.checked} action text(s) match their entries"]
        if self.rows_before:
            parts.append(f"{self.rows_before} row(s) predate action entries")
        if self.without_row:
            parts.append(f"{self.without_row} action entr(y/ies) without a row (acts not done)")
        if self.forgotten:
            parts.append(f"{self.forgotten} of forgotten months not checkable")
        return "; ".join(parts)


async def _action_entries(store: ActionTextStore) -> list[EntryRecord]:
    found: list[EntryRecord] = []
    query = LogQuery(kind="action", limit=MAX_SEARCH_LIMIT)
    while rows := await checked_search(store, query):
        found.extend(rows)
        query = query.after(rows[-1].index)
    return found


async def check_action_texts(store: ActionTextStore, keys: LogKeys) -> ActionTextReport:
    """Check every justification, lawful request, rejection reason, suspension reason and
    restriction reason against its action entry."""
    report = ActionTextReport()
    entries = [e for e in await _action_entries(store) if e.text_hash is not None]
    await _check_restrictions(store, keys, entries, report)
    partners = {str(e.partner) for e in entries if e.action in ("suspend", "resume")}
    events = [
        event
        for partner in sorted(partners)
        for event in await store.suspension_history(partner, HISTORY_LIMIT)
    ]
    by_event = {(e.partner_id, e.action, e.actor, timestamp(e.at)): e for e in events}
    matched: set[int] = set()
    for entry in entries:
        text: str | None = None
        table = ""
        if entry.action == "justify":
            table = "justifications"
            row = await store.get_justification(entry.disclosure_id)
            if row is not None and (row.reviewer_id, timestamp(row.at)) == (
                entry.actor,
                entry.time,
            ):
                text = row.text
        elif entry.action == "register_lawful_request":
            table = "legal_requests"
            found = await store.get_legal_request(str(entry.legal_request_id))
            if found is not None and found.registered_by == entry.actor:
                text = lawful_request_text(found)
        elif entry.action == "reject_lawful_request":
            table = "lawful_request_rejections"
            found = await store.get_legal_request(str(entry.legal_request_id))
            rejection = None if found is None else found.rejection
            if rejection is not None and (rejection.reviewer_id, timestamp(rejection.at)) == (
                entry.actor,
                entry.time,
            ):
                text = rejection.reason
        elif entry.action in ("suspend", "resume"):
            table = "partner_suspension_events"
            event = by_event.get(
                (str(entry.partner), entry.action, str(entry.actor), str(entry.time))
            )
            if event is not None:
                matched.add(event.seq)
                text = event.reason
        else:
            continue
        if text is None:
            report.without_row += 1
            continue
        try:
            expected = keys.text_hash(text, entry.at)
        except ForgottenPeriod:
            report.forgotten += 1
            continue
        if expected != entry.text_hash:
            report.problems.append(
                (
                    entry.index,
                    f"table {table}: the text of the row of {entry.target} no longer matches "
                    f"the hash in action entry {entry.index} (edited after it was recorded)",
                )
            )
        else:
            report.checked += 1
    # Of the latest events: rows no entry speaks for were written before action entries.
    latest = await store.suspension_history(None, HISTORY_LIMIT)
    report.rows_before += sum(1 for e in latest if e.seq not in matched)
    return report


RESTRICTION_ACTIONS: Final = {True: "restrict", False: "lift_restriction"}


async def _check_restrictions(
    store: ActionTextStore, keys: LogKeys, entries: Sequence[EntryRecord], report: ActionTextReport
) -> None:
    """Each subject's restriction row against the restrict/lift entries of its time."""
    at_time: dict[str, list[EntryRecord]] = {}
    for entry in entries:
        if entry.action in RESTRICTION_ACTIONS.values():
            at_time.setdefault(str(entry.time), []).append(entry)
    after: str | None = None
    while rows := await store.restrictions(after, MAX_SEARCH_LIMIT):
        for row in rows:
            _check_restriction(row, at_time.get(timestamp(row.changed_at), []), keys, report)
        after = rows[-1].subject_ref


def _check_restriction(
    row: RestrictionRow, candidates: Sequence[EntryRecord], keys: LogKeys, report: ActionTextReport
) -> None:
    if not candidates:
        report.rows_before += 1
        return
    action = RESTRICTION_ACTIONS[row.restricted]
    try:
        expected = keys.text_hash(row.reason, candidates[0].at)
    except ForgottenPeriod:
        report.forgotten += 1
        return
    if any(e.action == action and e.text_hash == expected for e in candidates):
        report.checked += 1
        return
    indexes = ", ".join(str(e.index) for e in candidates)
    report.problems.append(
        (
            candidates[0].index,
            f"table subjects: the restriction ({action}) of a subject's row changed at "
            f"{timestamp(row.changed_at)} no longer matches its reason's hash in action "
            f"entr(y/ies) {indexes} (edited after it was recorded)",
        )
    )
