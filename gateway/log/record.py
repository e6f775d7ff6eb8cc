"""A stored log entry read back: its bytes parsed once, its values as typed attributes.

The writers (``gateway.log.entries``) build entries as dicts and serialize them
canonically; those bytes are the Merkle leaf and never change. Everything that reads
entries back — searches, the review pages, a subject's report, recovery — reads an
:class:`EntryRecord`: the row's index, its bytes exactly as stored, and the JSON object
they hold, parsed once (``gateway.log.columns.check_rows`` parses each row it checks
and hands the record on). Its attributes are the members readers use (``ENTRY_MEMBERS``
lists all, CONTRACT §5) with the type the writers give them, so a reader writes
``entry.partner`` and not ``str(entry.get("partner"))``; a member an entry does not
have reads as None (or as empty, for the collections). `data` is the object itself,
for whatever shows an entry as it is (the JSON export, the API, the review page's list
of members).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from gateway.store.records import NotAnEntry

__all__ = ["ENTRY_MEMBERS", "EntryRecord", "NotAnEntry"]

ENTRY_MEMBERS: Final = (
    "time",
    "kind",
    "disclosure_id",
    "caller",
    "instance",
    "partner",
    "partner_category",
    "operation",
    "method",
    "purpose",
    "legal_basis",
    "consent_id",
    "legal_request_id",
    "policy_version",
    "bound_by_policy_version",
    "subject_ref",
    "fields",
    "withheld",
    "withheld_unknown",
    "data_digest",
    "needs_review",
    "retention_days",
    "outcome",
    "partner_status",
    "attempts",
    "problem",
    "maybe_received",
    "ack",
    "ack_reason",
    "reasons",
    "rejected_field_names",
    "actor",
    "credential",
    "action",
    "target",
    "text_hash",
    "window",
    "counts",
    "policy_versions",
    "v",
)
"""Every member an entry of format 1 may have (CONTRACT §5), in the order exports list them."""


def _text(value: Any) -> str | None:
    return value if value is None or value.__class__ is str else str(value)


def _count(value: Any) -> int | None:
    return value if value.__class__ is int else None


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """One stored entry: `index` in the log, `raw` its canonical bytes, `data` their object."""

    index: int
    raw: bytes
    data: Mapping[str, Any]

    @classmethod
    def parse(cls, index: int, raw: bytes) -> EntryRecord:
        """The record of the row `(index, raw)`; NotAnEntry if `raw` is no JSON object."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise NotAnEntry("the entry's bytes are not JSON") from None
        if not isinstance(data, dict):
            raise NotAnEntry("the entry's bytes are not a JSON object")
        return cls(index, raw, data)

    # -- every kind -------------------------------------------------------------------

    @property
    def kind(self) -> str | None:
        """intent, outcome, refused or action."""
        return _text(self.data.get("kind"))

    @property
    def disclosure_id(self) -> str:
        return str(self.data.get("disclosure_id", ""))

    @property
    def time(self) -> str | None:
        """The time as written (RFC 3339 with ``Z``)."""
        return _text(self.data.get("time"))

    @property
    def at(self) -> datetime:
        """The time as an aware datetime; ValueError if the entry has none."""
        return datetime.fromisoformat(str(self.data.get("time", "")).replace("Z", "+00:00"))

    @property
    def partner(self) -> str | None:
        """The partner id (None in a refusal naming a partner that does not exist)."""
        return _text(self.data.get("partner"))

    @property
    def problem(self) -> str | None:
        """The problem code of a refusal or a failed outcome."""
        return _text(self.data.get("problem"))

    # -- intents and refusals -----------------------------------------------------------

    @property
    def caller(self) -> str | None:
        return _text(self.data.get("caller"))

    @property
    def partner_category(self) -> str | None:
        return _text(self.data.get("partner_category"))

    @property
    def operation(self) -> str | None:
        """The operation id (None in a refusal naming one that does not exist)."""
        return _text(self.data.get("operation"))

    @property
    def purpose(self) -> str | None:
        return _text(self.data.get("purpose"))

    @property
    def legal_basis(self) -> str | None:
        return _text(self.data.get("legal_basis"))

    @property
    def policy_version(self) -> str | None:
        return _text(self.data.get("policy_version"))

    @property
    def subject_ref(self) -> str | None:
        return _text(self.data.get("subject_ref"))

    @property
    def instance(self) -> str | None:
        """The gateway instance that wrote an intent (intents before schema 4 name none)."""
        instance = self.data.get("instance")
        return instance if instance.__class__ is str else None

    @property
    def fields(self) -> dict[str, str]:
        """Each disclosed field's name and how it was transformed."""
        fields = self.data.get("fields")
        if not isinstance(fields, dict):
            return {}
        return {str(name): str(how) for name, how in fields.items()}

    @property
    def withheld(self) -> tuple[str, ...]:
        return tuple(str(name) for name in self.data.get("withheld") or ())

    @property
    def needs_review(self) -> bool:
        return self.data.get("needs_review") is True

    @property
    def consent_id(self) -> str | None:
        return _text(self.data.get("consent_id"))

    @property
    def legal_request_id(self) -> str | None:
        return _text(self.data.get("legal_request_id"))

    @property
    def retention_days(self) -> int | None:
        return _count(self.data.get("retention_days"))

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why a refusal refused."""
        return tuple(str(reason) for reason in self.data.get("reasons") or ())

    # -- outcomes -----------------------------------------------------------------------

    @property
    def outcome(self) -> str | None:
        """sent, failed or unknown."""
        return _text(self.data.get("outcome"))

    @property
    def partner_status(self) -> int | None:
        return _count(self.data.get("partner_status"))

    @property
    def maybe_received(self) -> bool:
        """Whether a failed delivery may still have reached the partner."""
        return bool(self.data.get("maybe_received"))

    # -- actions (a person's act: gateway.log.actions) ------------------------------------

    @property
    def actor(self) -> str | None:
        """Who acted: a reviewer or a caller id."""
        return _text(self.data.get("actor"))

    @property
    def credential(self) -> str | None:
        """Which of the actor's credentials proved it (``token:<kid>``, ``password:<id>``)."""
        return _text(self.data.get("credential"))

    @property
    def action(self) -> str | None:
        """What was done (``gateway.log.entries.ACTIONS``)."""
        return _text(self.data.get("action"))

    @property
    def target(self) -> str | None:
        """What it was done to: ``partner:<id>``, ``disclosure:<id>``, ``subject:<ref>``, …"""
        return _text(self.data.get("target"))

    @property
    def text_hash(self) -> str | None:
        """The keyed hash of the act's free text (the text stays in its table)."""
        return _text(self.data.get("text_hash"))
