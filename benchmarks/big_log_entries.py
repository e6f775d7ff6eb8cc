"""The entries of `benchmarks/big_log.py`: realistic, deterministic, two per group.

Group ``g`` always yields two entries, so a store of ``n`` entries holds groups
``0 .. n/2 - 1`` and a fill resumes (or grows the store) at group ``size // 2`` with the
very same bytes it would have written (every choice, the time included, is a function
of ``g``). The
entries are built by the gateway's own constructors (``gateway.log.entries``) and
subject references are real HMACs under the month's key, so `gateway log verify`, the
search columns and the subject reports see what the pipeline writes:

- 90 %: a disclosure, intent then outcome (sent, some failed or unknown);
- 7 %: two refusals;
- 3 %: two person's acts (a justification of a disclosure, a subject report read).

Partners, operations, purposes, legal bases and fields come from the sandbox partner
files (``partners/*.toml``).
"""

from __future__ import annotations

import random
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from gateway.canonical import timestamp
from gateway.crypto.subject_keys import LogKeys
from gateway.log.entries import action_entry, outcome_entry, row_of, target
from gateway.store.records import LogRow

PARTNERS_DIR: Final = Path(__file__).resolve().parent.parent / "partners"
T0: Final = datetime(2026, 1, 1, tzinfo=UTC)
# One group every ~3 s: ten million entries span six months, whatever size is asked
# (so that a store can be filled further later with the same entries).
STEP: Final = timedelta(days=180) / 5_000_000
POLICY_VERSION: Final = "2026-01-01"
CALLERS: Final = ("sales-service", "loans-service", "collections-service", "marketing-service")


@dataclass(frozen=True)
class Operation:
    partner: str
    category: str
    retention_days: int
    name: str
    method: str
    purposes: tuple[str, ...]
    legal_bases: tuple[str, ...]
    fields: dict[str, str]


def sandbox_operations(directory: Path = PARTNERS_DIR) -> list[Operation]:
    """Every (partner, operation) of the sandbox partner files, in a stable order."""
    found = []
    for path in sorted(directory.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        for name, op in sorted(data.get("operations", {}).items()):
            found.append(
                Operation(
                    path.stem,
                    data["category"],
                    int(data.get("retention_days", 365)),
                    name,
                    op.get("method", "POST"),
                    tuple(op["purposes"]),
                    tuple(op["legal_bases"]),
                    dict(op.get("fields", {})),
                )
            )
    return found


def subject_of(n: int) -> str:
    return f"customer-{n:08d}"


class Entries:
    """The rows of groups, for a log over `subjects` customers."""

    def __init__(self, keys: LogKeys, subjects: int) -> None:
        self._keys = keys
        self._operations = sandbox_operations()
        self._subjects = subjects

    def at(self, group: int) -> datetime:
        return T0 + STEP * group

    def subject(self, group: int) -> str:
        return subject_of(random.Random(group).randrange(self._subjects))

    def rows(self, group: int) -> tuple[LogRow, LogRow]:
        rng = random.Random(group)
        subject = subject_of(rng.randrange(self._subjects))
        at = self.at(group)
        later = at + timedelta(milliseconds=rng.randrange(40, 900))
        op = rng.choice(self._operations)
        draw = rng.random()
        if draw < 0.90:
            did = f"d-{uuid.UUID(int=2 * group)}"
            first = self._intent(did, op, rng, subject, at)
            fate = rng.random()
            outcome = "sent" if fate < 0.97 else "failed" if fate < 0.99 else "unknown"
            second = outcome_entry(
                disclosure_id=did,
                outcome=outcome,
                at=later,
                partner=op.partner,
                partner_status=201 if outcome == "sent" else 503 if outcome == "failed" else None,
                attempts=1 if outcome == "sent" else 3,
                problem=None if outcome == "sent" else "partner_unavailable",
                maybe_received=None if outcome == "sent" else outcome == "unknown",
            )
        elif draw < 0.97:
            first = self._refused(2 * group, op, rng, subject, at)
            second = self._refused(2 * group + 1, op, rng, subject, later)
        else:
            first = action_entry(
                actor="reviewer-ana",
                credential="password:reviewer-ana",
                action="justify",
                target=target("disclosure", f"d-{uuid.UUID(int=2 * group)}"),
                # No text hash: the text would have to be in the justifications table too,
                # or `gateway log verify`'s check of action texts would call it tampered.
                disclosure_id=f"d-{uuid.UUID(int=2 * group)}",
                at=at,
                keys=self._keys,
            )
            second = action_entry(
                actor="rights-officer-bo",
                credential="token:k-rights",
                action="read_subject_report",
                subject=subject,
                at=later,
                keys=self._keys,
            )
        return row_of(first), row_of(second)

    def _common(
        self, kind: str, did: str, op: Operation, rng: random.Random, subject: str, at: datetime
    ) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": kind,
            "time": timestamp(at),
            "disclosure_id": did,
            "caller": rng.choice(CALLERS),
            "partner": op.partner,
            "partner_category": op.category,
            "operation": op.name,
            "purpose": rng.choice(op.purposes),
            "legal_basis": rng.choice(op.legal_bases),
            "policy_version": POLICY_VERSION,
            "subject_ref": self._keys.subject_ref(subject, at),
        }

    def _intent(
        self, did: str, op: Operation, rng: random.Random, subject: str, at: datetime
    ) -> dict[str, Any]:
        entry = self._common("intent", did, op, rng, subject, at)
        basis = entry["legal_basis"]
        entry.update(
            method=op.method,
            consent_id=f"c-{uuid.UUID(int=rng.getrandbits(64))}" if basis == "consent" else None,
            legal_request_id=None,
            fields=dict(op.fields),
            withheld=["email"] if "email" not in op.fields else [],
            data_digest=self._keys.data_digest({"n": rng.getrandbits(32)}, at),
            needs_review=False,
            retention_days=op.retention_days,
        )
        return entry

    def _refused(
        self, n: int, op: Operation, rng: random.Random, subject: str, at: datetime
    ) -> dict[str, Any]:
        entry = self._common("refused", f"d-{uuid.UUID(int=n)}", op, rng, subject, at)
        entry.update(problem="consent_required", reasons=["no consent for this purpose"])
        return entry
