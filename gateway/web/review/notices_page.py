"""The review page's notice outbox (issue #19 item 3): every notice (erasure,
rectification, consent withdrawal) a partner has not accepted yet, and those given up
after the last attempt — kind, partner, reference, age, attempts, next attempt, last
error. What `gateway notices list` prints. The subject and the identifiers a notice
sends stay sealed in the store: nothing here can show a personal value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from gateway.store.records import OutboxNotice
from gateway.web.review.site import SignedIn, context, render, reviewer_page, store

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


@reviewer_page
async def notices_list(request: web.Request, who: SignedIn) -> web.StreamResponse:
    now = context(request).clock()
    kept = await store(request).outbox_notices(("pending", "failed"))
    # Given-up notices first (they wait for a person), then the oldest pending.
    rows = sorted(
        (NoticeRow.of(n, now) for n in kept), key=lambda r: (r.status != "failed", r.created_at)
    )
    return render(
        request,
        "notices.html",
        who=who,
        nav="notices",
        rows=rows,
        pending=sum(r.status == "pending" for r in rows),
        failed=sum(r.status == "failed" for r in rows),
    )


def add_notice_pages(sub: web.Application) -> None:
    sub.router.add_get("/notices", notices_list, name="notices")
