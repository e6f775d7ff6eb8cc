"""Attacks on the trust in the disclosure log (issue "Close the trust holes…", items 2, 4, 10).

Item 2 — the search columns: whoever can write the database edits the columns a row
keeps beside its entry (subject reference, partner, kind, time, purpose, legal basis,
outcome, disclosure id) and leaves the entry bytes and every hash alone. `gateway log
verify` must name the entry and the column (exit 1), the review page's periodic full
verification must turn red, and searches and the subject's report must refuse rather
than hide a disclosure or show another subject's. Both stores.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.cli import main
from gateway.config import load_config
from gateway.errors import GatewayError
from gateway.log.entries import outcome_entry, row_of
from gateway.log.search import Query, search
from gateway.log.service import LogService, LogSigner
from gateway.log.subject_keys import LogKeys
from gateway.partners import Partner
from gateway.rights import subject_report
from gateway.store import Store, open_store
from gateway.web.review_backend import LogReviewBackend

if TYPE_CHECKING:
    from conftest import Backend

ALICE = "CANARY-subject-alice-7781"
BOB = "CANARY-subject-bob-3390"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@dataclass
class Logged:
    root: Path
    backend: Backend
    store: Store
    service: LogService
    keys: LogKeys

    async def cli(self, *args: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()

        def run() -> int:
            with redirect_stdout(out), redirect_stderr(err):
                return main(["--config", str(self.root / "config.toml"), *args])

        code = await asyncio.to_thread(run)
        return code, out.getvalue() + err.getvalue()

    async def sql(self, sql: str, *params: object) -> None:
        """Run SQL behind the gateway's back (`?` placeholders), as an attacker would."""
        if self.backend.admin is None:
            await self.store._conn.execute(sql, params)  # type: ignore[attr-defined]
            return
        for n in range(1, len(params) + 1):
            sql = sql.replace("?", f"${n}", 1)
        await self.backend.admin.execute(f'SET search_path TO "{self.backend.schema}"')
        await self.backend.admin.execute(sql, *params)

    def ref(self, subject: str, at: datetime) -> str:
        return self.keys.subject_ref(subject, at)


def intent(i: int, subject_ref: str, at: datetime) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "intent",
        "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "disclosure_id": f"d-{i}",
        "caller": "svc",
        "partner": "lao-credit-bureau",
        "partner_category": "credit_bureau",
        "operation": "credit_check",
        "purpose": "credit_assessment",
        "legal_basis": "contract",
        "subject_ref": subject_ref,
        "fields": {"full_name": "keep"},
        "withheld": [],
    }


@pytest.fixture
async def logged(project: Path, backend: Backend) -> AsyncIterator[Logged]:
    """Ten disclosures (even ones Alice's, odd ones Bob's), each intent + sent outcome, a
    refusal of Alice's at the end, and a checkpoint over all of it. Entry 2k is the
    intent of d-k, 2k+1 its outcome, 20 the refusal."""
    root = backend.root
    shutil.copytree(project / "keys", root / "keys")
    (root / "partners").symlink_to(project / "partners")
    text = (project / "config.toml").read_text()
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{backend.url}"')
    (root / "config.toml").write_text(text)
    config = load_config(root / "config.toml")
    store = await open_store(backend.url, root)
    keys = LogKeys.load(config.keys_dir)
    service = LogService(store, LogSigner.load(config.keys_dir, config.log.origin))
    rows = []
    for i in range(10):
        at = T0 + timedelta(seconds=i)
        rows.append(row_of(intent(i, keys.subject_ref(ALICE if i % 2 == 0 else BOB, at), at)))
        rows.append(
            row_of(
                outcome_entry(
                    disclosure_id=f"d-{i}",
                    outcome="sent",
                    at=at + timedelta(milliseconds=500),
                    partner="lao-credit-bureau",
                    partner_status=200,
                    attempts=1,
                )
            )
        )
    refused = intent(10, keys.subject_ref(ALICE, T0), T0 + timedelta(seconds=10))
    refused.update(kind="refused", problem="consent_required", reasons=["no consent"])
    rows.append(row_of(refused))
    await service.append_rows(rows)
    await service.checkpoint()
    try:
        yield Logged(root, backend, store, service, keys)
    finally:
        await service.stop(final_checkpoint=False)
        await store.close()


def _time_value(logged: Logged, at: datetime) -> object:
    # The stores keep the time as they keep it: text in SQLite, timestamptz in PostgreSQL.
    return at if logged.backend.admin is not None else at.isoformat(timespec="microseconds")


# (column, the entry edited, the forged value: a function of the fixture)
EDITS: list[tuple[str, str, int, Any]] = [
    ("subject_ref", "subject_ref", 0, lambda lg: lg.ref(BOB, T0)),  # Alice's → Bob's
    ("subject_ref", "subject_ref", 2, lambda lg: None),  # hidden from every subject
    ("partner", "partner", 4, lambda lg: "vientiane-police"),
    ("kind", "kind", 6, lambda lg: "outcome"),  # an intent that no longer looks like one
    ("time", "logged_at", 8, lambda lg: _time_value(lg, T0 - timedelta(days=400))),
    ("purpose", "purpose", 10, lambda lg: "marketing"),
    ("legal_basis", "legal_basis", 12, lambda lg: "consent"),
    ("outcome", "outcome", 3, lambda lg: "failed"),  # sent → failed
    ("outcome", "outcome", 20, lambda lg: None),  # a refusal that no longer looks refused
    ("disclosure_id", "disclosure_id", 5, lambda lg: "d-9"),  # outcome moved to another
]


@pytest.mark.parametrize(
    ("column", "sql_column", "index", "forged"),
    EDITS,
    ids=[f"{c}-{i}" for c, _, i, _ in EDITS],
)
async def test_verify_names_the_entry_and_column_of_an_edited_search_column(
    logged: Logged, column: str, sql_column: str, index: int, forged: Any
) -> None:
    code, out = await logged.cli("log", "verify")
    assert code == 0, out

    await logged.sql(
        f"UPDATE log_entries SET {sql_column} = ? WHERE idx = ?",
        forged(logged),
        index,
    )
    code, out = await logged.cli("log", "verify")
    assert code == 1, out
    assert f"TAMPERED: entry {index}: its search column {column} does not match" in out
    assert f"first bad index: {index}\n" in out
    assert ALICE not in out and BOB not in out

    code, out = await logged.cli("log", "verify", "--json")
    assert code == 1 and f'"start": {index}' in out


async def test_a_report_never_shows_another_subjects_disclosure(
    logged: Logged, partners: dict[str, Partner]
) -> None:
    """Alice's disclosure d-0 moved to Bob's reference in the index: Bob's report refuses
    (503) instead of listing it; Alice's, which can no longer find it, is what verify
    catches (above)."""
    before = await subject_report(logged.store, logged.keys, partners, BOB)
    assert [r["disclosure_id"] for r in before] == ["d-1", "d-3", "d-5", "d-7", "d-9"]

    await logged.sql("UPDATE log_entries SET subject_ref = ? WHERE idx = 0", logged.ref(BOB, T0))
    with pytest.raises(GatewayError) as refused:
        await subject_report(logged.store, logged.keys, partners, BOB)
    assert refused.value.code == "log_unavailable" and refused.value.status == 503
    assert "log entry 0" in refused.value.detail and "subject_ref" in refused.value.detail
    assert BOB not in refused.value.detail and ALICE not in refused.value.detail

    code, out = await logged.cli("log", "search", "--subject", BOB)
    assert code != 0 and "log entry 0" in out and "d-0" not in out


@pytest.mark.parametrize(
    ("sql_column", "index", "value", "query"),
    [
        ("outcome", 3, "failed", Query(outcome="failed")),  # a sent disclosure shown failed
        ("partner", 2, "vientiane-police", Query(partner="vientiane-police")),
        ("purpose", 4, "marketing", Query(purpose="marketing")),
        ("legal_basis", 6, "consent", Query(legal_basis="consent")),
        ("kind", 1, "refused", Query(outcome="refused")),  # an outcome passed off as refused
    ],
    ids=["outcome", "partner", "purpose", "legal_basis", "kind"],
)
async def test_a_search_refuses_a_row_whose_columns_lie(
    logged: Logged, sql_column: str, index: int, value: str, query: Query
) -> None:
    await logged.sql(
        f"UPDATE log_entries SET {sql_column} = ? WHERE idx = ?",
        value,
        index,
    )
    with pytest.raises(GatewayError) as refused:
        _ = [found async for found in search(logged.store, query)]
    assert refused.value.code == "log_unavailable"
    assert f"log entry {index}" in refused.value.detail


async def test_an_intent_cut_from_its_outcomes_is_refused_not_shown_pending(
    logged: Logged,
) -> None:
    """The intent's disclosure id column changed: its outcome lookup would come back
    without it, and the report would show a sent disclosure as pending."""
    await logged.sql("UPDATE log_entries SET disclosure_id = 'd-x' WHERE idx = 0")
    refs = [logged.ref(ALICE, T0)]
    with pytest.raises(GatewayError) as refused:
        _ = [found async for found in search(logged.store, Query(subject_refs=refs))]
    assert refused.value.code == "log_unavailable" and "disclosure_id" in refused.value.detail


async def test_the_review_pages_periodic_verification_turns_red(logged: Logged) -> None:
    review = LogReviewBackend(logged.store, logged.service, logged.keys, lambda: T0)
    await review.audit()
    assert (await review.integrity()).ok is True

    await logged.sql("UPDATE log_entries SET subject_ref = NULL WHERE idx = 4")
    await review.audit()
    status = await review.integrity()
    assert status.ok is False
    assert "entry 4" in status.detail and "subject_ref" in status.detail


async def test_an_untouched_log_still_answers(logged: Logged, partners: dict[str, Partner]) -> None:
    report = await subject_report(logged.store, logged.keys, partners, ALICE)
    assert [r["disclosure_id"] for r in report] == ["d-0", "d-2", "d-4", "d-6", "d-8"]
    assert {r["outcome"] for r in report} == {"sent"}
    refused = [f async for f in search(logged.store, Query(outcome="refused"))]
    assert [f.index for f in refused] == [20]
    sent = [f async for f in search(logged.store, Query(outcome="sent"))]
    assert len(sent) == 10
