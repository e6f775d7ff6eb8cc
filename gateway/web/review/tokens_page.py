"""The review page's personal API tokens (`/review/tokens`): a signed-in person makes a
token for the CLI (shown once), sees their tokens and revokes one. Making and revoking
are each an `action` entry, written before the row (gateway.log.actions); the entry names
the token by its id, never its secret."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import InvalidRequestError, NotFoundError
from gateway.log.actions import target
from gateway.web.review.oidc_client import REVIEWER
from gateway.web.review.personal_tokens import PersonalTokenError, lifetimes_days, mint
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

__all__ = ["add_token_pages"]


def _roles(who: SignedIn) -> frozenset[str]:
    """A person of the provider has the roles their groups gave; a password account is a
    reviewer (the review page's one role)."""
    return who.session.roles or frozenset({REVIEWER})


async def _tokens_page(
    request: web.Request, who: SignedIn, outcome: Outcome, created: str | None = None
) -> web.Response:
    now = context(request).clock()
    tokens = await store(request).personal_tokens_of(who.reviewer.id)
    values: dict[str, Any] = outcome.values()
    return render(
        request,
        "tokens.html",
        status=outcome.status,
        who=who,
        nav="tokens",
        rows=[(t, t.usable(now)) for t in tokens],
        lifetimes=lifetimes_days(context(request).token_max_days),
        created=created,
        roles=sorted(_roles(who)),
        **values,
    )


tokens_list = reviewer_page(form_page_handler(_tokens_page, "revoked"))


@reviewer_page
async def create_token(request: web.Request, who: SignedIn) -> web.StreamResponse:
    form = await request.post()
    days_text = form.get("days")
    try:
        days = int(days_text) if isinstance(days_text, str) and days_text.isdigit() else 0
        ctx = context(request)
        minted = mint(who.reviewer.id, _roles(who), ctx.clock(), days, ctx.token_max_days)
    except PersonalTokenError as exc:
        error = InvalidRequestError(f"{exc}; choose one of the offered lifetimes")
        return await _tokens_page(request, who, Outcome(error=error))
    record = minted.record
    await actions(request).record(
        who.person,
        "create_personal_token",
        at=record.created_at,
        target=target("personal_token", record.id),
    )
    await store(request).add_personal_token(record)
    # Answered here, not by a redirect: the token must reach no URL, history or log.
    return await _tokens_page(request, who, Outcome(), created=minted.text)


@reviewer_page
async def revoke_token(request: web.Request, who: SignedIn) -> web.StreamResponse:
    token_id = path_id(request.match_info["token_id"], "personal token")

    async def revoke() -> str:
        mine = {t.id: t for t in await store(request).personal_tokens_of(who.reviewer.id)}
        found = mine.get(token_id)
        if found is None or found.revoked_at is not None:
            raise NotFoundError(f"you have no unrevoked personal token {token_id}")
        at = context(request).clock()
        await actions(request).record(
            who.person, "revoke_personal_token", at=at, target=target("personal_token", token_id)
        )
        if not await store(request).revoke_personal_token(token_id, who.reviewer.id, at):
            raise NotFoundError(f"the personal token {token_id} was revoked meanwhile")
        return token_id

    return await post_form(request, who, revoke, page=_tokens_page, back="/tokens", key="revoked")


def add_token_pages(sub: web.Application) -> None:
    sub.router.add_get("/tokens", tokens_list, name="tokens")
    sub.router.add_post("/tokens", create_token, name="create_token")
    sub.router.add_post("/tokens/{token_id}/revoke", revoke_token, name="revoke_token")
