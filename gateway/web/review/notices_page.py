"""The review page's notice outbox (issue #19 item 3): every notice (erasure,
rectification, consent withdrawal) a partner has not accepted yet, and those given up
after the last attempt — kind, partner, reference, age, attempts, next attempt, last
error. What `gateway notices list` prints. The subject and the identifiers a notice
sends stay sealed in the store: nothing here can show a personal value.

"Download CSV" gives the same rows in the columns of `gateway notices list --format csv`
(an `export` act of the reviewer, as the other lists' downloads).

A Retry button per notice and "Retry all" send now, as `gateway notices retry` does
(`gateway.rights.outbox.retry_as`): a POST with the session's CSRF token, each notice an
`action` entry `retry_notice` by the signed-in reviewer; the page then says what became
of them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from gateway.errors import InternalServerError, NotFoundError
from gateway.log.entries import target
from gateway.rights.outbox import LISTED_MEMBERS, NoticeOutbox, outbox_json, retry_as
from gateway.store.records import OutboxNotice
from gateway.web.keys import NOTICES
from gateway.web.review.labels import label
from gateway.web.review.listing import csv_cell
from gateway.web.review.site import (
    Outcome,
    SignedIn,
    actions,
    context,
    form_page_handler,
    path_id,
    post_form,
    render,
    reviewer_page,
    store,
)

__all__ = ["NoticeRow", "add_notice_pages"]


@dataclass(frozen=True)
class NoticeRow:
    """One kept notice as the page shows it."""

    id: str
    kind: str
    partner: str
    reference: str
    status: str
    attempts: int
    created_at: datetime
    age: str
    next_at: datetime | None
    last_error: str

    @classmethod
    def of(cls, notice: OutboxNotice, now: datetime) -> NoticeRow:
        return cls(
            id=notice.id,
            kind=notice.kind,
            partner=notice.partner,
            reference=notice.reference,
            status=notice.status,
            attempts=notice.attempts,
            created_at=notice.created_at,
            age=age_text((now - notice.created_at).total_seconds()),
            next_at=notice.next_at if notice.status == "pending" else None,
            last_error=notice.last_error,
        )


def age_text(seconds: float) -> str:
    """An age as a person reads it: minutes, hours or days."""
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def schedule_text(schedule_s: Sequence[float], max_age: timedelta) -> str:
    """The outbox's retry schedule as the page states it, from `[notices]` (not a fixed
    text that a configured schedule would make wrong): "1 min, 5 min, then every 12 h for
    7 d"."""

    def interval(seconds: float) -> str:
        return f"{int(seconds)} s" if seconds < 60 else age_text(seconds)

    *growing, last = schedule_s
    steps = ", ".join(interval(s) for s in growing)
    every = f"then every {interval(last)}" if growing else f"every {interval(last)}"
    return f"{steps + ', ' if steps else ''}{every} for {age_text(max_age.total_seconds())}"


async def _waiting(request: web.Request) -> list[OutboxNotice]:
    """The pending and failed notices, given-up ones first (they wait for a person), then
    the oldest pending: the page's order, and its CSV's."""
    kept = await store(request).outbox_notices(("pending", "failed"))
    return sorted(kept, key=lambda n: (n.status != "failed", n.created_at))


def csv_text(notices: Sequence[OutboxNotice], now: datetime) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LISTED_MEMBERS)
    for notice in notices:
        record = outbox_json(notice, now)
        writer.writerow([csv_cell(record[column]) for column in LISTED_MEMBERS])
    return out.getvalue()


async def _page(request: web.Request, who: SignedIn, outcome: Outcome) -> web.Response:
    now = context(request).clock()
    outbox = _outbox(request)
    rows = [NoticeRow.of(n, now) for n in await _waiting(request)]
    return render(
        request,
        "notices.html",
        status=outcome.status,
        who=who,
        nav="notices",
        rows=rows,
        pending=sum(r.status == "pending" for r in rows),
        failed=sum(r.status == "failed" for r in rows),
        schedule=schedule_text(outbox.schedule_s, outbox.max_age),
        **outcome.values(),
    )


notices_list = reviewer_page(form_page_handler(_page, "done"))


def _outbox(request: web.Request) -> NoticeOutbox:
    found = request.config_dict.get(NOTICES)
    if found is None:
        raise InternalServerError(
            "the notice outbox is not wired: the composition root must set app[NOTICES]"
        )
    return found


def retried_text(done: Sequence[OutboxNotice], asked: int) -> str:
    """What a retry did, in one line (the page shows it above the list)."""
    if asked == 0:
        return "Nothing to retry: every notice was accepted"
    if len(done) == 1 == asked:
        notice = done[0]
        if notice.status == "sent":
            return f"Notice {notice.id} to {notice.partner} was accepted"
        return (
            f"Notice {notice.id} to {notice.partner} was not accepted: {label(notice.last_error)}"
        )
    accepted = sum(n.status == "sent" for n in done)
    busy = asked - len(done)
    text = f"{asked} retried: {accepted} accepted, {len(done) - accepted} not accepted"
    return text + (f", {busy} being sent by another instance" if busy else "")


async def _retry(request: web.Request, who: SignedIn, chosen: list[OutboxNotice]) -> str:
    waiting = [n for n in chosen if n.status != "sent"]
    done = await retry_as(_outbox(request), actions(request), who.person, waiting)
    return retried_text(done, len(waiting))


@reviewer_page
async def retry_one(request: web.Request, who: SignedIn) -> web.StreamResponse:
    notice_id = path_id(request.match_info["notice_id"], "notice")

    async def act() -> str:
        notice = await store(request).outbox_notice(notice_id)
        if notice is None:
            raise NotFoundError(f"no notice {notice_id} in the outbox; reload the page")
        return await _retry(request, who, [notice])

    return await post_form(request, who, act, page=_page, back="/notices", key="done")


@reviewer_page
async def retry_all(request: web.Request, who: SignedIn) -> web.StreamResponse:
    async def act() -> str:
        return await _retry(
            request, who, await store(request).outbox_notices(("pending", "failed"))
        )

    return await post_form(request, who, act, page=_page, back="/notices", key="done")


@reviewer_page
async def notices_csv(request: web.Request, who: SignedIn) -> web.StreamResponse:
    now = context(request).clock()
    kept = await _waiting(request)
    await actions(request).record(who.person, "export", target=target("notice"))
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return web.Response(
        text=csv_text(kept, now),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="notices-{stamp}.csv"'},
    )


def add_notice_pages(sub: web.Application) -> None:
    sub.router.add_get("/notices", notices_list, name="notices")
    sub.router.add_get("/notices.csv", notices_csv, name="notices_csv")
    sub.router.add_post("/notices/retry", retry_all, name="notices_retry_all")
    sub.router.add_post("/notices/{notice_id}/retry", retry_one, name="notice_retry")
