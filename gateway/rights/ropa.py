"""The live record of processing (GDPR Art. 30, the policy's section III): what each
partner file *declares* beside what the log says was *actually sent* (issue 19).

One row per partner × operation × purpose × legal basis: every pairing a partner file
declares (an operation's purposes × its legal bases), and every pairing the log holds
that the files no longer declare. Each row carries the partner's category, jurisdiction
and retention, the declared fields, the fields actually disclosed with how many
disclosures carried each, the first and last disclosure, and its **drift**:

- ``fields_never_sent``: declared fields (other than ``drop``) no disclosure of the row
  carried in the window — candidates for removal (`gateway partners tighten`);
- ``operation_never_used``: no disclosure at all to the operation in the window (every
  row of it has 0 disclosures); ``never_used``: the operation was used, but never for
  this purpose on this basis;
- ``consents_mostly_withdrawn``: a consent-based row where more than half of the
  distinct consents its disclosures were made under (the intent's ``consent_id``) are
  withdrawn today — ``withdrawn * 2 > consents``, counted by the database;
- ``not_declared``: disclosures the current partner files no longer declare (the file
  changed since, or the partner is gone).

A disclosure counts when it was sent: its intent was logged in [since, until) and its
disclosure has an outcome entry ``sent``; refused and failed ones were never received.
The counting is the database's (`store.ropa_sql`, two GROUP BY queries); this module is
pure arithmetic on what they return. The record is aggregate — no subject, no value —
so reading it is not a personal-scope read and is not an action entry.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from gateway.errors import InvalidRequestError
from gateway.partners.model import Partner
from gateway.policy.facts import invalid, parse_time
from gateway.store.ports import LogRollupStore, RopaStore
from gateway.store.records import RopaCounts, RopaRowCount, StoreUnavailable

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_WINDOW",
    "DRIFTS",
    "MapCell",
    "MapRow",
    "RopaReport",
    "RopaRow",
    "build_rows",
    "data_map",
    "never_sent_by_operation",
    "read_ropa",
    "report_csv",
    "report_json",
    "report_text",
    "roll_up_periodically",
    "window_of",
]

DEFAULT_WINDOW: Final = timedelta(days=365)
# How often the server counts new entries into the per-day rollups, so that a person's
# click finds at most this much of the log still to count (store.rollup_sql).
ROLL_UP_EVERY_S: Final = 60.0
DRIFTS: Final = (
    "fields_never_sent",
    "operation_never_used",
    "never_used",
    "consents_mostly_withdrawn",
    "not_declared",
)
CONSENT: Final = "consent"
# A field declared `drop` is declared as never sent: it is not drift.
DROP: Final = "drop"

_log = logging.getLogger(__name__)

Key = tuple[str, str, str, str]  # partner, operation, purpose, legal basis


@dataclass(frozen=True)
class RopaRow:
    partner: str
    operation: str
    purpose: str
    legal_basis: str
    partner_name: str | None
    category: str | None
    jurisdiction: str | None
    retention_days: int | None
    declared: bool
    declared_fields: Mapping[str, str]  # name -> transform, as the partner file says now
    disclosures: int = 0
    disclosed_fields: Mapping[str, int] = field(default_factory=dict)  # name -> disclosures
    first_disclosure: datetime | None = None
    last_disclosure: datetime | None = None
    consents: int = 0
    consents_withdrawn: int = 0
    operation_used: bool = False
    # The operation carries the gateway's own notices (Partner.notice_operations): its
    # fields are not drift for want of a notice in the window.
    notice_route: bool = False

    @property
    def never_sent(self) -> tuple[str, ...]:
        return tuple(
            sorted(
                name
                for name, transform in self.declared_fields.items()
                if transform != DROP and name not in self.disclosed_fields
            )
        )

    @property
    def consents_mostly_withdrawn(self) -> bool:
        """More than half of the row's consents withdrawn (none behind it: not drift)."""
        return self.legal_basis == CONSENT and self.consents_withdrawn * 2 > self.consents > 0

    @property
    def drift(self) -> tuple[str, ...]:
        found: list[str] = []
        if not self.declared:
            found.append("not_declared")
        elif self.disclosures == 0:
            found.append("never_used" if self.operation_used else "operation_never_used")
        elif self.never_sent and not self.notice_route:
            found.append("fields_never_sent")
        if self.consents_mostly_withdrawn:
            found.append("consents_mostly_withdrawn")
        return tuple(found)


@dataclass(frozen=True)
class RopaReport:
    since: datetime
    until: datetime
    rows: tuple[RopaRow, ...]


def window_of(since: str | None, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) from what a person typed: a date (YYYY-MM-DD) or an RFC 3339 time;
    since defaults to a year before `now`, until to `now`. InvalidRequestError saying
    the format, or that the window is empty."""
    end = now if until is None else _moment(until, "until")
    start = end - DEFAULT_WINDOW if since is None else _moment(since, "since")
    if start >= end:
        raise invalid(f"'since' ({start.isoformat()}) must be before 'until' ({end.isoformat()})")
    return start, end


def _moment(value: str, name: str) -> datetime:
    try:
        return parse_time(value, name)
    except InvalidRequestError:
        raise invalid(
            f"'{name}' must be a date YYYY-MM-DD (midnight UTC) or an RFC 3339 time with a "
            "zone such as 2026-01-31T09:00:00Z"
        ) from None


async def read_ropa(
    store: RopaStore, partners: Mapping[str, Partner], since: datetime, until: datetime
) -> RopaReport:
    """The record of processing of [since, until) for the partner files `partners`."""
    counts = await store.ropa_counts(since, until)
    return RopaReport(since, until, build_rows(partners, counts))


async def roll_up_periodically(store: LogRollupStore, every_s: float = ROLL_UP_EVERY_S) -> None:
    """Count the log's new entries into the rollups now and every `every_s` seconds (the
    first time after an upgrade: the whole log, before anyone clicks)."""
    while True:
        try:
            await store.roll_up_log()
        except StoreUnavailable as exc:  # the next round, or the next reader, tries again
            _log.warning("the per-day counts of the log were not brought up to date: %s", exc)
        await asyncio.sleep(every_s)


def _declared_keys(partners: Mapping[str, Partner]) -> Iterable[Key]:
    for pid, partner in partners.items():
        for name, op in partner.operations.items():
            for purpose in op.purposes:
                for basis in op.legal_bases:
                    yield pid, name, purpose, basis


def build_rows(partners: Mapping[str, Partner], counts: RopaCounts) -> tuple[RopaRow, ...]:
    """Every declared pairing and every counted one, sorted by partner, operation,
    purpose and basis."""
    counted: dict[Key, RopaRowCount] = {
        (c.partner, c.operation, c.purpose, c.legal_basis): c for c in counts.rows
    }
    fields: dict[Key, dict[str, int]] = {}
    for f in counts.fields:
        fields.setdefault((f.partner, f.operation, f.purpose, f.legal_basis), {})[f.field] = (
            f.disclosures
        )
    used_operations = {(c.partner, c.operation) for c in counts.rows if c.disclosures > 0}
    rows: list[RopaRow] = []
    for key in sorted(set(_declared_keys(partners)) | set(counted)):
        pid, operation, purpose, basis = key
        partner = partners.get(pid)
        op = partner.operations.get(operation) if partner is not None else None
        declared = op is not None and purpose in op.purposes and basis in op.legal_bases
        count = counted.get(key)
        rows.append(
            RopaRow(
                partner=pid,
                operation=operation,
                purpose=purpose,
                legal_basis=basis,
                partner_name=partner.name if partner else None,
                category=partner.category if partner else None,
                jurisdiction=partner.jurisdiction if partner else None,
                retention_days=partner.retention_days if partner else None,
                declared=declared,
                declared_fields=dict(op.fields) if op is not None and declared else {},
                disclosures=count.disclosures if count else 0,
                disclosed_fields=dict(sorted(fields.get(key, {}).items())),
                first_disclosure=count.first if count else None,
                last_disclosure=count.last if count else None,
                consents=count.consents if count else 0,
                consents_withdrawn=count.consents_withdrawn if count else 0,
                operation_used=(pid, operation) in used_operations,
                notice_route=partner is not None and operation in partner.notice_operations,
            )
        )
    return tuple(rows)


def never_sent_by_operation(report: RopaReport, partner: Partner) -> dict[str, tuple[str, ...]]:
    """Per operation of `partner` used in the window: its declared fields (not `drop`)
    that no disclosure carried, whatever the purpose or basis — what `partners tighten`
    removes. An operation never used is left out: removing all its fields is not
    tightening it (the ROPA flags it `operation_never_used`, for a person to judge), and so
    are the operations of the gateway's own notices: a window with only withdrawal notices
    (which carry no field) would otherwise remove what the next erasure notice needs."""
    sent: dict[str, set[str]] = {}
    for row in report.rows:
        if row.partner == partner.id and row.disclosures > 0:
            sent.setdefault(row.operation, set()).update(row.disclosed_fields)
    removals: dict[str, tuple[str, ...]] = {}
    for name, op in sorted(partner.operations.items()):
        if name not in sent or name in partner.notice_operations:
            continue
        unused = tuple(sorted(f for f, t in op.fields.items() if t != DROP and f not in sent[name]))
        if unused:
            removals[name] = unused
    return removals


# -- rendering ----------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def row_json(row: RopaRow) -> dict[str, Any]:
    return {
        "partner": row.partner,
        "partner_name": row.partner_name,
        "category": row.category,
        "jurisdiction": row.jurisdiction,
        "retention_days": row.retention_days,
        "operation": row.operation,
        "purpose": row.purpose,
        "legal_basis": row.legal_basis,
        "declared": row.declared,
        "declared_fields": dict(sorted(row.declared_fields.items())),
        "disclosures": row.disclosures,
        "disclosed_fields": dict(row.disclosed_fields),
        "never_sent": list(row.never_sent),
        "first_disclosure": _time(row.first_disclosure),
        "last_disclosure": _time(row.last_disclosure),
        "consents": row.consents,
        "consents_withdrawn": row.consents_withdrawn,
        "drift": list(row.drift),
    }


def report_json(report: RopaReport) -> dict[str, Any]:
    return {
        "since": _time(report.since),
        "until": _time(report.until),
        "rows": [row_json(r) for r in report.rows],
    }


CSV_COLUMNS: Final = (
    "partner",
    "partner_name",
    "category",
    "jurisdiction",
    "retention_days",
    "operation",
    "purpose",
    "legal_basis",
    "declared",
    "declared_fields",
    "disclosures",
    "disclosed_fields",
    "never_sent",
    "first_disclosure",
    "last_disclosure",
    "consents",
    "consents_withdrawn",
    "drift",
)


def _csv_cell(value: object) -> str:
    text = _csv_text(value)
    # A cell a spreadsheet would run as a formula is quoted (CSV injection), as the CLI's.
    return f"'{text}" if text.startswith(("=", "+", "-", "@")) else text


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def report_csv(report: RopaReport) -> str:
    """One line per row; fields as `name=transform` / `name=count` separated by spaces."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        record = row_json(row)
        writer.writerow([_csv_cell(record[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def report_text(report: RopaReport) -> str:
    """For a terminal: one block per row, drift last."""
    lines = [f"record of processing: {_time(report.since)} → {_time(report.until)}", ""]
    for row in report.rows:
        where = ", ".join(str(v) for v in (row.category, row.jurisdiction) if v is not None)
        retention = "" if row.retention_days is None else f", kept {row.retention_days} days"
        lines.append(
            f"{row.partner} ({where}{retention}) · {row.operation} · {row.purpose} · "
            f"{row.legal_basis}"
        )
        span = (
            f" ({_time(row.first_disclosure)} … {_time(row.last_disclosure)})"
            if row.disclosures
            else ""
        )
        lines.append(f"  disclosures: {row.disclosures}{span}")
        lines.append(f"  declared:    {', '.join(sorted(row.declared_fields)) or '—'}")
        sent = ", ".join(f"{k} {v}" for k, v in row.disclosed_fields.items())
        if row.disclosures:
            lines.append(f"  sent:        {sent or '—'}")
        if row.never_sent and row.disclosures:
            lines.append(f"  never sent:  {', '.join(row.never_sent)}")
        if row.legal_basis == CONSENT and row.consents:
            lines.append(f"  consents:    {row.consents} ({row.consents_withdrawn} withdrawn)")
        if row.drift:
            lines.append(f"  DRIFT:       {', '.join(row.drift)}")
        lines.append("")
    drifting = sum(1 for r in report.rows if r.drift)
    lines.append(f"{len(report.rows)} row(s), {drifting} with drift")
    return "\n".join(lines) + "\n"


# -- the data map: partners × data categories -----------------------------------------


@dataclass(frozen=True)
class MapCell:
    """One partner's fields of one data category (gateway.vocabulary.FIELD_CATEGORIES)."""

    declared: tuple[str, ...]  # declared (not `drop`) in some operation now
    sent: Mapping[str, int]  # field -> disclosures that carried it in the window

    @property
    def never_sent(self) -> tuple[str, ...]:
        return tuple(f for f in self.declared if f not in self.sent)

    @property
    def undeclared(self) -> tuple[str, ...]:
        return tuple(f for f in self.sent if f not in self.declared)


@dataclass(frozen=True)
class MapRow:
    partner: str
    category: str | None  # the partner's category
    disclosures: int
    cells: Mapping[str, MapCell]  # data category -> cell; absent: neither declared nor sent


def data_map(report: RopaReport, category_of: Mapping[str, str]) -> tuple[MapRow, ...]:
    """Per partner, per data category (`category_of`: field → category, else "other"):
    the fields declared beside those sent in the report's window."""
    declared: dict[str, set[str]] = {}
    sent: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    kinds: dict[str, str | None] = {}
    for row in report.rows:
        kinds.setdefault(row.partner, row.category)
        totals[row.partner] = totals.get(row.partner, 0) + row.disclosures
        declared.setdefault(row.partner, set()).update(
            f for f, t in row.declared_fields.items() if t != DROP
        )
        counts = sent.setdefault(row.partner, {})
        for name, n in row.disclosed_fields.items():
            counts[name] = counts.get(name, 0) + n
    rows: list[MapRow] = []
    for partner in sorted(kinds):
        names: dict[str, list[str]] = {}
        for name in declared[partner] | set(sent[partner]):
            names.setdefault(category_of.get(name, "other"), []).append(name)
        cells = {
            category: MapCell(
                tuple(sorted(f for f in fields if f in declared[partner])),
                {f: sent[partner][f] for f in sorted(fields) if f in sent[partner]},
            )
            for category, fields in names.items()
        }
        rows.append(MapRow(partner, kinds[partner], totals[partner], cells))
    return tuple(rows)
