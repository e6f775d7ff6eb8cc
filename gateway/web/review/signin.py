"""Signing in to the review site: the sign-in page, the password form, signing out.

Without `[oidc]` the `[[reviewers]]` accounts sign in with their passwords. With `[oidc]`
people sign in through the provider (gateway.web.review.oidc) and passwords are off: the
page sends the browser straight there, a posted password is refused, naming the provider,
and a password session made before ends — so the company's sign-on, MFA and leaver process
apply to everyone who acts. `[oidc] allow_passwords = true`, the break-glass for a provider
that is down, keeps the password form beside the provider's button; each password sign-in
then is an application-log WARNING.

Every sign-in stores its session's row (gateway.web.review.session) before the cookie is
set; signing out ends that row, so the cookie, copied or not, opens nothing anywhere.
"Sign out everywhere" (`POST /review/sessions/end`, on the tokens page) ends every session
of the person, on every instance: an `end_sessions` action entry (target
`sessions:<person id>`), written before the rows change, as every act of a person is
(gateway.log.actions).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from multidict import MultiDictProxy

from gateway.config.model import Reviewer
from gateway.errors import ConfigError, ForbiddenError
from gateway.log.actions import target
from gateway.policy.request import MAX_ID
from gateway.web.problems import problem_response
from gateway.web.review.passwords import (
    PasswordHashError,
    PasswordVerifier,
    parse_password_hash,
)
from gateway.web.review.session import LOGIN_TTL
from gateway.web.review.site import (
    COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    Account,
    ReviewContext,
    SignedIn,
    actions,
    check_same_origin,
    context,
    redirect,
    render,
    reviewer_page,
    safe_next,
    secure_cookies,
    store,
    wants_html,
)

__all__ = [
    "OIDC_START",
    "accounts_of",
    "add_sign_in_pages",
    "login_page",
    "set_session_cookie",
    "start_session",
]

log = logging.getLogger("gateway.review")

OIDC_START = f"{PREFIX}/oidc/start"


def _text(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def provider_name(ctx: ReviewContext) -> str | None:
    """The provider as the sign-in button names it: `[oidc] name`, else its issuer's host."""
    if ctx.oidc is None:
        return None
    if ctx.oidc.config.name:
        return ctx.oidc.config.name
    return urlsplit(ctx.oidc.config.issuer).netloc or ctx.oidc.config.issuer


def login_page(
    request: web.Request, *, message: str | None = None, status: int = 200, next_url: str
) -> web.Response:
    ctx = context(request)
    cookie, token = ctx.signer.issue_login(ctx.clock())
    response = render(
        request,
        "login.html",
        status=status,
        message=message,
        login_csrf=token,
        next=next_url,
        provider=provider_name(ctx),
        provider_url=f"{OIDC_START}?{urlencode({'next': next_url})}",
        passwords=ctx.passwords_on and bool(ctx.accounts),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=int(LOGIN_TTL.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
    )
    return response


async def start_session(
    request: web.Request,
    person: str,
    fingerprint_source: str,
    *,
    name: str | None = None,
    roles: frozenset[str] = frozenset(),
) -> str:
    """A new session of `person`, its row stored (StoreUnavailable: no session); the
    cookie that carries it."""
    ctx = context(request)
    now = ctx.clock()
    cookie, session = ctx.signer.issue(person, fingerprint_source, now, name=name, roles=roles)
    await store(request).add_review_session(session.id, person, now, session.expires)
    return cookie


def set_session_cookie(request: web.Request, response: web.StreamResponse, cookie: str) -> None:
    """The session cookie: HttpOnly and SameSite=Strict, so no other site's page or form
    ever sends it."""
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(context(request).signer.ttl.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    next_url = safe_next(request.query.get("next"))
    if await ctx.signed_in(request) is not None:
        return redirect(next_url)
    if ctx.oidc is not None and not (ctx.passwords_on and ctx.accounts):
        return redirect(f"{OIDC_START}?{urlencode({'next': next_url})}")
    return login_page(request, next_url=next_url)


def _passwords_off(request: web.Request, ctx: ReviewContext, next_url: str) -> web.Response:
    """A posted password while `[oidc]` replaces passwords: refused before any check, with
    where sign-in goes instead (the page, or problem+json to a client not asking for HTML)."""
    assert ctx.oidc is not None
    error = ForbiddenError(
        f"password sign-in is off: sign-in goes through {ctx.oidc.config.issuer} (use "
        f"'Sign in with {provider_name(ctx)}'); an operator may allow the [[reviewers]] "
        "passwords while the provider is down with [oidc] allow_passwords = true"
    )
    log.info("review password sign-in refused: passwords are off beside [oidc]")
    if wants_html(request):
        return login_page(request, message=error.detail, status=error.status, next_url=next_url)
    return problem_response(error)


async def login_submit(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    check_same_origin(request)
    form = await request.post()
    if not ctx.passwords_on:
        return _passwords_off(request, ctx, safe_next(_text(form, "next")))
    now = ctx.clock()
    expected = ctx.signer.login_token(request.cookies.get(LOGIN_COOKIE), now)
    sent = _text(form, "csrf")
    if expected is None or sent is None or not hmac.compare_digest(sent, expected):
        raise ForbiddenError(
            "the sign-in form expired or did not come from this page; reload it and sign in",
        )
    reviewer_id = (_text(form, "reviewer_id") or "").strip()[:MAX_ID]
    password = _text(form, "password") or ""
    next_url = safe_next(_text(form, "next"))
    locked = ctx.throttle.locked_for(reviewer_id, now)
    if locked is not None:
        minutes = max(1, round(locked.total_seconds() / 60))
        return login_page(
            request,
            message=f"Too many failed sign-ins for this reviewer id. Try again in about "
            f"{minutes} minute(s).",
            status=429,
            next_url=next_url,
        )
    account = ctx.accounts.get(reviewer_id)
    matched = False
    verifier = account.verifier if account is not None else _decoy(ctx)
    if verifier is not None:
        async with ctx.hashing:
            # scrypt is CPU-bound: in a thread, so the gateway keeps serving meanwhile.
            matched = await asyncio.get_running_loop().run_in_executor(
                None, verifier.matches, password
            )
    if account is None or not matched:
        ctx.throttle.failed(reviewer_id, now)
        log.info("review sign-in failed")  # no id: it may be a mistyped password
        return login_page(
            request,
            message="Sign-in failed: unknown reviewer id or wrong password.",
            status=401,
            next_url=next_url,
        )
    ctx.throttle.succeeded(reviewer_id)
    cookie = await start_session(request, reviewer_id, account.reviewer.password_hash)
    if ctx.oidc is not None:
        # The break-glass is in use: whoever reads the log should see each time it was.
        log.warning(
            "reviewer %s signed in with a password beside the provider ([oidc] "
            "allow_passwords = true): turn it off once the provider is back",
            reviewer_id,
        )
    else:
        log.info("reviewer %s signed in", reviewer_id)
    response = redirect(next_url)
    set_session_cookie(request, response, cookie)
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


def _decoy(ctx: ReviewContext) -> PasswordVerifier | None:
    """A verifier for ids that do not exist, costing what a real one costs."""
    for account in ctx.accounts.values():
        return account.verifier.decoy()
    return None


def _signed_out() -> web.Response:
    response = redirect(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


@reviewer_page
async def logout(request: web.Request, who: SignedIn) -> web.StreamResponse:
    """End this session on the server, not only this browser's cookie."""
    await store(request).end_review_session(
        who.session.id, who.reviewer.id, context(request).clock()
    )
    log.info("reviewer %s signed out", who.reviewer.id)
    return _signed_out()


@reviewer_page
async def end_all_sessions(request: web.Request, who: SignedIn) -> web.StreamResponse:
    """Sign out everywhere: every live session of the person ends, this one with them."""
    at = context(request).clock()
    await actions(request).record(
        who.person, "end_sessions", at=at, target=target("sessions", who.reviewer.id)
    )
    ended = await store(request).end_review_sessions_of(who.reviewer.id, at)
    log.info("a reviewer signed out everywhere: %d sessions ended", ended)  # names no one
    return _signed_out()


def accounts_of(reviewers: Mapping[str, Reviewer], source: str) -> dict[str, Account]:
    """Parse every configured hash now, so an unusable one stops the start, named."""
    accounts: dict[str, Account] = {}
    for reviewer_id, reviewer in reviewers.items():
        try:
            verifier = parse_password_hash(reviewer.password_hash)
        except PasswordHashError as exc:
            raise ConfigError(
                source, None, f"reviewer {reviewer_id!r}: password_hash: {exc}"
            ) from None
        accounts[reviewer_id] = Account(reviewer, verifier)
    return accounts


def add_sign_in_pages(sub: web.Application) -> None:
    sub.router.add_get("/login", login_form, name="login")
    sub.router.add_post("/login", login_submit, name="login_submit")
    sub.router.add_post("/logout", logout, name="logout")
    sub.router.add_post("/sessions/end", end_all_sessions, name="end_sessions")
