"""What the review-page tests share: reviewer accounts, a hand-written ReviewBackend fake,
a seeded disclosure log, and the gateway app with the review page mounted.

Imported as `browser.review_support` by tests/e2e/test_review_page.py and the browser
tests (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Collection, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from selenium.webdriver.common.by import By

from gateway.config.model import Config, Reviewer
from gateway.crypto.subject_keys import LogKeys
from gateway.errors import ConflictError, NotFoundError
from gateway.log.entries import intent_entry, outcome_entry, refused_entry, row_of
from gateway.log.record import EntryRecord
from gateway.log.service import EntryCheck
from gateway.partners.model import Partner
from gateway.policy.decide import Decision
from gateway.policy.request import DisclosureRequest
from gateway.store.base import Store
from gateway.store.records import LegalRequestRecord
from gateway.web.app import create_app
from gateway.web.keys import STORE
from gateway.web.review.backend import (
    REVIEW_BACKEND,
    IntegrityStatus,
    Justification,
    QueueItem,
)
from gateway.web.review.passwords import MIN_LN, hash_password

T = TypeVar("T")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

PASSWORDS = {
    "alice": "alice-has-a-long-passphrase",
    "bob": "bob-has-an-even-longer-one",
    "carol": "carol-registers-requests",
}
NAMES = {"alice": "Alice Vongsa", "bob": "Bob Keomany", "carol": "Carol Sisavath"}
# The cheapest cost the gateway accepts, so the tests log in fast; production uses DEFAULT_LN.
HASHES = {rid: hash_password(pw, ln=MIN_LN) for rid, pw in PASSWORDS.items()}

SUBJECT_A = "6f1c2a7e-0000-4000-8000-0000000000a1"
SUBJECT_B = "6f1c2a7e-0000-4000-8000-0000000000b2"
SUBJECT_C = "6f1c2a7e-0000-4000-8000-0000000000c3"
SUBJECTS = (SUBJECT_A, SUBJECT_B, SUBJECT_C)
INJECTED_PARTNER = '=HYPERLINK("http://evil.example","x")'


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def sign_in(client: TestClient, reviewer: str, password: str | None = None) -> str:
    """Sign in through the review page's form (the reviewer's own password unless
    `password`); the session's CSRF token."""
    form = await client.get("/review/login")
    token = CSRF.search(await form.text())
    assert token is not None
    r = await client.post(
        "/review/login",
        data={
            "csrf": token[1],
            "reviewer_id": reviewer,
            "next": "/review/",
            "password": PASSWORDS[reviewer] if password is None else password,
        },
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()
    return await csrf_of(client)


async def csrf_of(client: TestClient) -> str:
    """The signed-in session's CSRF token, as a page's forms carry it."""
    page = await client.get("/review/queue")
    found = CSRF.search(await page.text())
    assert found is not None
    return found[1]


def reviewers() -> dict[str, Reviewer]:
    return {rid: Reviewer(rid, NAMES[rid], HASHES[rid]) for rid in PASSWORDS}


def review_config(config: Config, db_path: str) -> Config:
    return replace(config, storage_url=f"sqlite:///{db_path}", reviewers=reviewers())


class FakeReviewBackend:
    """The ReviewBackend port by hand: real subject references (the log's period keys),
    scripted proofs and integrity, and an in-memory emergency queue."""

    def __init__(self, keys: LogKeys, now: datetime = NOW) -> None:
        self.keys = keys
        self.now = now
        self.checkpoint_size = 0
        self.failed_proofs: set[int] = set()
        self.proofs_checked: list[int] = []
        self.queue: dict[str, QueueItem] = {}
        self.justifications: dict[str, Justification] = {}
        self.status = IntegrityStatus(
            log_size=0,
            checkpoint_size=None,
            checkpoint_at=None,
            root_hash=None,
            checkpoint_note=None,
            verified_at=None,
            ok=None,
            detail="never verified",
        )

    async def subject_refs(self, subject: str) -> list[str]:
        return self.keys.subject_refs(subject, until=self.now)

    async def verify_entry(self, index: int) -> EntryCheck:
        self.proofs_checked.append(index)
        if index in self.failed_proofs:
            return EntryCheck(
                index,
                "failed",
                "the audit path gives root AAAA…, the checkpoint says BBBB…",
                tree_size=self.checkpoint_size,
                checkpoint_at=self.now,
            )
        if index >= self.checkpoint_size:
            return EntryCheck(index, "pending", "no checkpoint covers this entry yet")
        return EntryCheck(
            index,
            "verified",
            "the leaf and its audit path give the signed root",
            tree_size=self.checkpoint_size,
            checkpoint_at=self.now - timedelta(minutes=1),
        )

    async def integrity(self) -> IntegrityStatus:
        return self.status

    async def review_queue(self) -> list[QueueItem]:
        waiting = [q for q in self.queue.values() if q.disclosure_id not in self.justifications]
        return sorted(waiting, key=lambda q: q.time)

    async def justification(self, disclosure_id: str) -> Justification | None:
        return self.justifications.get(disclosure_id)

    async def justify(
        self, disclosure_id: str, reviewer_id: str, text: str, credential: str = ""
    ) -> Justification:
        if disclosure_id in self.justifications:
            raise ConflictError(f"{disclosure_id} was justified already")
        if disclosure_id not in self.queue:
            raise NotFoundError(f"{disclosure_id} is not in the emergency queue")
        record = Justification(disclosure_id, reviewer_id, text, self.now)
        self.justifications[disclosure_id] = record
        return record


@dataclass
class Seeded:
    """What `seed` wrote: disclosure ids by name, and the log indexes of their entries."""

    ids: dict[str, str] = field(default_factory=dict)
    indexes: dict[str, list[int]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


# name, partner, operation, purpose, basis, subject, age, outcome (None: pending, "refused")
DISCLOSURES: tuple[tuple[str, str, str, str, str, str, timedelta, str | None], ...] = (
    (
        "october",
        "lao-credit-bureau",
        "credit_check",
        "service_provision",
        "consent",
        SUBJECT_A,
        timedelta(days=40),
        "sent",
    ),
    (
        "credit",
        "lao-credit-bureau",
        "credit_check",
        "service_provision",
        "consent",
        SUBJECT_A,
        timedelta(days=5),
        "sent",
    ),
    (
        "charge",
        "bcel-payments",
        "charge",
        "service_provision",
        "contract",
        SUBJECT_B,
        timedelta(days=4),
        "sent",
    ),
    (
        "vital",
        "vientiane-police",
        "lawful_disclosure",
        "safety_security",
        "vital_interest",
        SUBJECT_C,
        timedelta(days=4, hours=-1),
        "sent",
    ),
    (
        "adreach",
        "adreach",
        "audience_upload",
        "marketing",
        "consent",
        SUBJECT_A,
        timedelta(days=3),
        "refused",
    ),
    (
        "quote",
        "lanexang-insurance",
        "quote",
        "service_provision",
        "contract",
        SUBJECT_B,
        timedelta(days=2),
        "failed",
    ),
    (
        "injected",
        INJECTED_PARTNER,
        "x",
        "service_provision",
        "contract",
        SUBJECT_B,
        timedelta(days=1),
        "refused",
    ),
    (
        "public",
        "vientiane-police",
        "lawful_disclosure",
        "safety_security",
        "public_interest",
        SUBJECT_A,
        timedelta(hours=1),
        "sent",
    ),
    (
        "veriid",
        "veriid",
        "verify_identity",
        "safety_security",
        "consent",
        SUBJECT_A,
        timedelta(minutes=10),
        None,
    ),
)


def _entries(
    name: str,
    partners: dict[str, Partner],
    keys: LogKeys,
    spec: tuple[str, str, str, str, str, str, timedelta, str | None],
) -> list[dict[str, Any]]:
    _, partner_id, operation, purpose, basis, subject, age, outcome = spec
    at = NOW - age
    disclosure_id = f"d-{uuid.uuid5(uuid.NAMESPACE_URL, name)}"
    request = DisclosureRequest(partner_id, operation, purpose, basis, subject, {"uuid": "u"})
    partner = partners.get(partner_id)
    common = {
        "caller": "sales-service",
        "request": request,
        "at": at,
        "keys": keys,
        "policy_version": "2024-09-30",
        "disclosure_id": disclosure_id,
    }
    if outcome == "refused":
        problem = "unknown_partner" if partner is None else "consent_required"
        decision = Decision(False, problem, (f"rule for {problem}",), {}, (), False)
        entry = refused_entry(partner=partner, decision=decision, **common)
        # Refusals logged before made-up partner ids were left out of the log kept them:
        # such an entry is what the pages must still render safely.
        entry["partner"] = partner_id
        return [entry]
    assert partner is not None
    op = partner.operations[operation]
    decision = Decision(
        allowed=True,
        problem=None,
        reasons=(),
        disclosed=dict(op.fields),
        withheld=("password",),
        needs_review=basis in ("vital_interest", "public_interest"),
    )
    entries = [
        intent_entry(
            partner=partner, operation=op, decision=decision, minimized={"uuid": "u"}, **common
        )
    ]
    if outcome is not None:
        entries.append(
            outcome_entry(
                disclosure_id=disclosure_id,
                outcome=outcome,
                at=at + timedelta(seconds=1),
                partner=partner_id,
                partner_status=201 if outcome == "sent" else None,
                attempts=1 if outcome == "sent" else 3,
                problem=None if outcome == "sent" else "partner_unavailable",
                maybe_received=None if outcome == "sent" else False,
            )
        )
    return entries


async def seed(
    store: Store,
    partners: dict[str, Partner],
    keys: LogKeys,
    fake: FakeReviewBackend,
    leave_out: Collection[str] = (),
) -> Seeded:
    """The DISCLOSURES in the log, oldest first, but those named in `leave_out`; emergency
    ones in the fake's queue."""
    seeded = Seeded()
    for spec in DISCLOSURES:
        if spec[0] in leave_out:
            continue
        entries = _entries(spec[0], partners, keys, spec)
        indexes = await store.append_log_entries([row_of(e) for e in entries])
        seeded.ids[spec[0]] = str(entries[0]["disclosure_id"])
        seeded.indexes[spec[0]] = indexes
        if entries[0].get("needs_review"):
            item = QueueItem.from_intent(EntryRecord.parse(indexes[0], row_of(entries[0]).entry))
            fake.queue[item.disclosure_id] = item
    fake.checkpoint_size = await store.log_size() - 1  # the last entry awaits a checkpoint
    return seeded


async def add_requests(store: Store) -> list[LegalRequestRecord]:
    """Two pending lawful requests registered by carol."""
    records = [
        LegalRequestRecord(
            id=f"LR-test-{n}",
            authority="Vientiane Capital Police",
            reference=f"VCP/2026/00{n}",
            instrument=f"court order {n}/2026",
            subjects=frozenset({SUBJECT_C}),
            partners=frozenset({"vientiane-police"}),
            received_at=NOW - timedelta(days=n),
            registered_by="carol",
        )
        for n in (1, 2)
    ]
    for record in records:
        await store.add_legal_request(record)
    return records


def review_app(
    config: Config, partners: dict[str, Partner], fake: FakeReviewBackend
) -> web.Application:
    """The gateway with the review page mounted, as the composition root will wire it."""
    app = create_app(config, partners=partners, env=dict(os.environ), clock=lambda: NOW)
    app[REVIEW_BACKEND] = fake  # create_app keeps a backend that is already there
    return app


class HexSealing:
    """A stand-in for the at-rest payload sealing (gateway.store.protected.PayloadSealing):
    reversible, and no personal value readable in the stored text."""

    def seal_payload(self, text: str) -> str:
        return "sealed:" + text.encode().hex()

    def open_payload(self, text: str) -> str:
        return bytes.fromhex(text.removeprefix("sealed:")).decode()


@dataclass
class SeededSite:
    """The review site of a seeded gateway, served in the test's loop."""

    client: TestClient
    store: Store
    fake: FakeReviewBackend
    seeded: Seeded
    config: Config


@asynccontextmanager
async def seeded_site(
    config: Config,
    partners: dict[str, Partner],
    db_path: Path,
    served_partners: dict[str, Partner] | None = None,
) -> AsyncIterator[SeededSite]:
    """`review_app` on a fresh SQLite store at `db_path`, seeded (`seed`) with `partners`;
    the app serves `served_partners` when given (a partner file changed since)."""
    cfg = review_config(config, str(db_path))
    keys = LogKeys.load(cfg.keys_dir)
    fake = FakeReviewBackend(keys)
    app = review_app(cfg, partners if served_partners is None else served_partners, fake)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        store = app[STORE]
        seeded = await seed(store, partners, keys, fake)
        yield SeededSite(client, store, fake, seeded, cfg)
    finally:
        await client.close()


class ServedGateway:
    """The gateway app on 127.0.0.1 (a free port), run by its own loop in a thread,
    so synchronous Selenium can drive it while the test reaches its store."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None)
        self.port = 0

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()

        async def start() -> int:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(self.runner.addresses[0][1])

        self.port = self.call(start())

    def stop(self) -> None:
        try:
            self.call(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> Store:
        return self.app[STORE]


@dataclass
class Gateway:
    served: ServedGateway
    fake: FakeReviewBackend
    seeded: Seeded

    @property
    def base(self) -> str:
        return self.served.base

    def url(self, path: str) -> str:
        return self.served.base + path


@contextmanager
def served_review_site(
    cfg: Config, partners: dict[str, Partner], leave_out: Collection[str] = ()
) -> Iterator[Gateway]:
    """`review_app` of `cfg` (a `review_config`) served on 127.0.0.1 for a browser,
    seeded (`seed`, but the DISCLOSURES named in `leave_out`) with `partners` and given the
    lawful requests of `add_requests`."""
    keys = LogKeys.load(cfg.keys_dir)
    fake = FakeReviewBackend(keys)
    served = ServedGateway(review_app(cfg, partners, fake))
    served.start()
    try:
        seeded = served.call(seed(served.store, partners, keys, fake, leave_out))
        served.call(add_requests(served.store))
        yield Gateway(served, fake, seeded)
    finally:
        served.stop()


_REPO = Path(__file__).resolve().parents[2]


def docs_screenshot(name: str) -> Path:
    """Where a screenshot shown in the docs is saved: docs/screenshots/ only when
    UPDATE_SCREENSHOTS=1 (a test run on a clone must not rewrite tracked files; the subject
    references in it change every run), test-artifacts/ otherwise, to look at."""
    folder = (
        _REPO / "docs" / "screenshots"
        if os.environ.get("UPDATE_SCREENSHOTS") == "1"
        else _REPO / "test-artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def menu_link(browser: Any, menu: str, label: str) -> Any:
    """The link `label` of the site navigation's menu `menu`, its menu opened (the links of
    a closed <details> are not shown, so not clickable)."""
    for summary in browser.find_elements(By.CSS_SELECTOR, "nav.site summary"):
        if summary.text.strip().rstrip("▾").strip() == menu:
            if summary.find_element(By.XPATH, "..").get_attribute("open") is None:
                summary.click()
            return summary.find_element(By.XPATH, f"../ul//a[normalize-space()='{label}']")
    raise AssertionError(f"no menu {menu!r} in the site navigation")
