"""Signing in to the review site through the OpenID provider of `[oidc]`.

``GET /review/oidc/start`` sends the browser to the provider's authorization endpoint with
a fresh ``state``, ``nonce`` and PKCE challenge; their secrets travel in a signed,
short-lived, HttpOnly flow cookie (no server memory: several instances). That cookie is
``SameSite=Lax`` — the provider answers with a *cross-site* redirect to
``GET /review/oidc/callback``, which a Strict cookie would not accompany.

The callback checks the state against the cookie, exchanges the code (with the PKCE
verifier) and checks the ID token (gateway.web.review.oidc_client). Then it stores the
session's row (gateway.web.review.signin.start_session) and sets the session cookie,
which stays ``SameSite=Strict``, and answers with a short page that moves on to the site:
a redirect straight from the callback would still be part of the provider's cross-site
navigation, and the browser would not send the Strict cookie it has just received.

Every refusal shows the sign-in page again with what went wrong (problem+json for a
client that does not ask for HTML); nothing of the token or the person's claims is logged.
"""

from __future__ import annotations

import hmac
import logging
from typing import Final

from aiohttp import web

from gateway.errors import (
    ForbiddenError,
    GatewayError,
    NotFoundError,
    SignInUnavailableError,
    UnauthenticatedError,
)
from gateway.web.problems import problem_response
from gateway.web.review.oidc_client import OidcClient
from gateway.web.review.session import OIDC_FLOW_TTL
from gateway.web.review.signin import login_page, set_session_cookie, start_session
from gateway.web.review.site import (
    LOGIN_COOKIE,
    PREFIX,
    context,
    render,
    safe_next,
    secure_cookies,
    wants_html,
)

__all__ = ["CALLBACK_PATH", "FLOW_COOKIE", "add_oidc_pages", "redirect_uri"]

log = logging.getLogger("gateway.review")

FLOW_COOKIE: Final = "gateway_review_oidc"
FLOW_PATH: Final = f"{PREFIX}/oidc"
CALLBACK_PATH: Final = f"{PREFIX}/oidc/callback"
MAX_QUERY_VALUE: Final = 2048


def redirect_uri(request: web.Request) -> str:
    """The callback on `[server] public_url` when set, else on the address the browser used."""
    public_url = context(request).public_url
    origin = public_url or f"{request.scheme}://{request.host}"
    return origin + CALLBACK_PATH


def _provider(request: web.Request) -> OidcClient:
    provider = context(request).oidc
    if provider is None:
        raise NotFoundError("this gateway signs people in with passwords: [oidc] is not set")
    return provider


async def oidc_start(request: web.Request) -> web.StreamResponse:
    provider = _provider(request)
    ctx = context(request)
    next_url = safe_next(request.query.get("next"))
    try:
        auth = await provider.authorization_request(redirect_uri(request))
    except GatewayError as exc:
        return _refusal(request, exc, next_url)
    flow = {"state": auth.state, "nonce": auth.nonce, "verifier": auth.verifier, "next": next_url}
    response = web.Response(status=303, headers={"Location": auth.url})
    response.set_cookie(
        FLOW_COOKIE,
        ctx.signer.issue_flow(flow, ctx.clock()),
        max_age=int(OIDC_FLOW_TTL.total_seconds()),
        path=FLOW_PATH,
        httponly=True,
        samesite="Lax",  # the provider's answer is a cross-site top-level GET
        secure=secure_cookies(request),
    )
    return response


def _query(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value and len(value) <= MAX_QUERY_VALUE and value.isprintable() else None


async def oidc_callback(request: web.Request) -> web.StreamResponse:
    provider = _provider(request)
    ctx = context(request)
    now = ctx.clock()
    flow = ctx.signer.open_flow(request.cookies.get(FLOW_COOKIE), now)
    next_url = safe_next(flow.get("next") if flow else None)
    try:
        if flow is None:
            raise ForbiddenError(
                "this browser has no sign-in in progress (it was not started here, took more "
                f"than {int(OIDC_FLOW_TTL.total_seconds() // 60)} minutes, or the browser "
                "refused the sign-in cookie); start again from the sign-in page"
            )
        state = _query(request, "state")
        if state is None or not hmac.compare_digest(state.encode(), flow["state"].encode()):
            raise ForbiddenError(
                "the provider's answer does not belong to the sign-in this browser started "
                "(its state does not match); start again from the sign-in page"
            )
        error = _query(request, "error")
        if error is not None:
            shown = error if error.replace("_", "").isalnum() and len(error) <= 64 else "error"
            raise UnauthenticatedError(f"the provider did not sign you in ({shown})")
        code = _query(request, "code")
        if code is None:
            raise UnauthenticatedError("the provider's answer holds no authorization code")
        person = await provider.sign_in(
            code, redirect_uri(request), flow["verifier"], flow["nonce"]
        )
    except GatewayError as exc:
        return _refusal(request, exc, next_url)
    cookie = await start_session(
        request, person.id, provider.fingerprint_source, name=person.name, roles=person.roles
    )
    log.info("a person of the sign-in provider signed in")  # no id: the log names no one
    response = render(request, "signed_in.html", next=next_url)
    set_session_cookie(request, response, cookie)
    response.del_cookie(FLOW_COOKIE, path=FLOW_PATH)
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


def _refusal(request: web.Request, error: GatewayError, next_url: str) -> web.Response:
    if isinstance(error, SignInUnavailableError):  # the operators' problem: say which URL
        log.warning("review sign-in: the provider cannot be used: %s", error.detail)
    else:
        log.info("review sign-in through the provider refused: %s", error.code)
    if wants_html(request):
        response = login_page(request, message=error.detail, status=error.status, next_url=next_url)
    else:
        response = problem_response(error)
    response.del_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


def add_oidc_pages(sub: web.Application) -> None:
    sub.router.add_get("/oidc/start", oidc_start, name="oidc_start")
    sub.router.add_get("/oidc/callback", oidc_callback, name="oidc_callback")
