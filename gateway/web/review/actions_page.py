"""The review page's record of people's acts (issue #18 item 5): the `action` entries of
the disclosure log — who, with which credential, did what, to what, when, at which index
— newest first, by keyset pages, optionally of one actor and one kind of act, with a CSV
download of the same filter. The same rows, found by the
subject's references, are the "acts and reads concerning this subject" shown on the
disclosures page when it is filtered by one subject.

An entry holds no free text (only its keyed hash) and no subject id (only its keyed
reference), so nothing here can show a personal value."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.errors import InvalidRequestError
from gateway.log.columns import checked_search
from gateway.log.entries import ACTIONS, target
from gateway.log.record import EntryRecord
from gateway.store.ports import LogRowStore
from gateway.store.records import LogQuery
from gateway.web.review.listing import parse_after
from gateway.web.review.site import (
    PREFIX,
    SignedIn,
    actions,
    context,
    render,
    reviewer_page,
    store,
)

__all__ = ["ActionRow", "ActionsPage", "action_page", "add_action_pages"]

PAGE_SIZE: Final = 50
SCAN_BUDGET: Final = 2000
BATCH: Final = 200


@dataclass(frozen=True)
class ActionRow:
    """One act as the page shows it."""

    index: int
    time: datetime
    actor: str
    credential: str
    action: str
    target: str
    text_hash: str | None

    @classmethod
    def of(cls, entry: EntryRecord) -> ActionRow:
        target = str(entry.target or "")
        kind, _, ident = target.partition(":")
        if kind == "subject":  # a keyed reference: long, and meaningless to read in full
            target = f"subject {ident[:12]}…"
        return cls(
            index=entry.index,
            time=entry.at,
            actor=str(entry.actor),
            credential=str(entry.credential),
            action=str(entry.action),
            target=target,
            text_hash=entry.text_hash,
        )


@dataclass(frozen=True)
class ActionsPage:
    rows: list[ActionRow]
    next_after: int | None  # the index to continue after, or None at the end
    scanned: int


async def action_page(
    db: LogRowStore,
    *,
    actor: str | None = None,
    action: str | None = None,
    refs: Sequence[str] | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> ActionsPage:
    """A page of action entries, newest first, older than index `after`: of `actor` and
    `action` if given (checked on the entries read, at most SCAN_BUDGET of them), of the
    subject whose references are `refs` if given (answered by the log's index)."""
    query = LogQuery(
        kind="action", subject_refs=refs, after_index=after, limit=BATCH, newest_first=True
    )
    rows: list[ActionRow] = []
    scanned = 0
    while scanned < SCAN_BUDGET and not query.matches_nothing:
        found = await checked_search(db, query)
        if not found:
            return ActionsPage(rows, None, scanned)
        for entry in found:
            scanned += 1
            if (actor is None or entry.actor == actor) and (
                action is None or entry.action == action
            ):
                rows.append(ActionRow.of(entry))
                if len(rows) == size:
                    return ActionsPage(rows, entry.index, scanned)
        query = query.after(found[-1].index)
    return ActionsPage(rows, None if query.matches_nothing else query.after_index, scanned)


def _choice(value: str | None, allowed: frozenset[str] | None, what: str) -> str | None:
    if not value:
        return None
    if len(value) > 200 or not value.isprintable() or (allowed and value not in allowed):
        raise InvalidRequestError(f"'{what}' must be one of the listed values")
    return value


@reviewer_page
async def actions_list(request: web.Request, who: SignedIn) -> web.StreamResponse:
    actor = _choice(request.query.get("actor"), None, "actor")
    action = _choice(request.query.get("action"), ACTIONS, "action")
    page = await action_page(
        store(request), actor=actor, action=action, after=parse_after(request.query.get("after"))
    )
    shown = [(k, v) for k, v in (("actor", actor), ("action", action)) if v]
    # The actor and the act are checked on the entries read: counted only without them.
    total = None if shown else await store(request).log_count(LogQuery(kind="action"))
    csv_url = f"{PREFIX}/actions.csv" + (f"?{urlencode(shown)}" if shown else "")
    next_url = None
    if page.next_after is not None:
        next_url = f"{PREFIX}/actions?" + urlencode([*shown, ("after", str(page.next_after))])
    return render(
        request,
        "actions.html",
        who=who,
        nav="actions",
        page=page,
        actor=actor,
        action=action,
        actions=sorted(ACTIONS),
        next_url=next_url,
        first_url=f"{PREFIX}/actions" + (f"?{urlencode(shown)}" if shown else ""),
        csv_url=csv_url,
        total=total,
    )


CSV_COLUMNS: Final = ("index", "time", "actor", "credential", "action", "target", "text_hash")
EXPORT_MAX: Final = 100_000
"""Most acts one download holds (it says so on its last line when cut)."""


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@reviewer_page
async def actions_csv(request: web.Request, who: SignedIn) -> web.StreamResponse:
    """The acts of the list's filter, every page of it, newest first, as the page shows
    them (a subject only as the start of its keyed reference)."""
    actor = _choice(request.query.get("actor"), None, "actor")
    action = _choice(request.query.get("action"), ACTIONS, "action")
    await actions(request).record(who.person, "export", target=target("log"))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    after: int | None = None
    written = 0
    while written < EXPORT_MAX:
        page = await action_page(store(request), actor=actor, action=action, after=after)
        for row in page.rows:
            time = row.time.isoformat().replace("+00:00", "Z")
            values = (row.actor, row.credential, row.action, row.target)
            writer.writerow([row.index, time, *(_cell(v) for v in values), row.text_hash or ""])
        written += len(page.rows)
        if page.next_after is None:
            break
        after = page.next_after
    else:
        out.write(f"EXPORT CUT at {EXPORT_MAX} acts: narrow the filter\r\n")
    stamp = context(request).clock().strftime("%Y%m%dT%H%M%SZ")
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="acts-{stamp}.csv"'},
    )


def add_action_pages(sub: web.Application) -> None:
    sub.router.add_get("/actions", actions_list, name="actions")
    sub.router.add_get("/actions.csv", actions_csv, name="actions_csv")
