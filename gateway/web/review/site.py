"""The review sub-application's plumbing: its context, templates, guards and headers.

Every response under ``/review`` carries a strict Content-Security-Policy (no script at
all, styles only from the page's own CSS file), ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``. Every page but the login
page and the CSS needs a reviewer session (`reviewer_page`); every POST needs the
session's CSRF token and, when the browser sends an ``Origin``, this host as origin.
Errors become an HTML page for browsers and problem+json for other clients; a bearer
token of the JSON API opens nothing here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from gateway.config.model import Reviewer
from gateway.errors import (
    ForbiddenError,
    GatewayError,
    InternalServerError,
    NotFoundError,
    UnauthenticatedError,
    error_for,
)
from gateway.log.actions import ActionLog, Person
from gateway.partners.model import Partner
from gateway.policy.request import MAX_ID
from gateway.store.base import Store
from gateway.web.keys import ACTIONS, STORE
from gateway.web.problems import problem_headers, problem_response
from gateway.web.review.backend import REVIEW_BACKEND, ReviewBackend
from gateway.web.review.labels import label_html, label_of
from gateway.web.review.oidc_client import REVIEWER, OidcClient
from gateway.web.review.passwords import PasswordVerifier
from gateway.web.review.personal_tokens import DEFAULT_MAX_DAYS
from gateway.web.review.session import LoginThrottle, Sealer, Session, SessionSigner

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "PREFIX",
    "REVIEW",
    "Account",
    "FormPage",
    "Outcome",
    "ReviewContext",
    "SignedIn",
    "form_page_handler",
    "html_error",
    "path_id",
    "post_form",
    "redirect",
    "render",
    "review_middleware",
    "reviewer_page",
    "secure_cookies",
]

log = logging.getLogger("gateway.review")

PREFIX: Final = "/review"
COOKIE: Final = "gateway_review"
LOGIN_COOKIE: Final = "gateway_review_login"
# Package data, read through importlib.resources so an installed wheel (or a zip) serves it.
TEMPLATES: Final = resources.files(__package__) / "templates"

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# Problem titles speak of API callers; a reviewer reads these instead.
PAGE_TITLES: Final = {
    "forbidden": "Not allowed",
    "unauthenticated": "Please sign in",
    "invalid_request": "Invalid request",
    "not_found": "Not found",
    "conflict": "Already done",
    "log_unavailable": "Disclosure log unavailable",
    "internal_error": "Something went wrong",
}

_HTTP_CODES: Final = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


@dataclass(frozen=True)
class Account:
    """A configured reviewer and their parsed password hash."""

    reviewer: Reviewer
    verifier: PasswordVerifier


@dataclass(frozen=True)
class SignedIn:
    """The reviewer behind a request, with their session (for the CSRF token)."""

    reviewer: Reviewer
    session: Session
    # How the sign-in proved them when it was not a password (the OpenID provider).
    credential: str | None = None

    @property
    def person(self) -> Person:
        """The reviewer as an `action` entry records them: proven by their account's
        password (the session carries a keyed fingerprint of its hash, never the hash),
        or by the OpenID provider (id: its issuer and their subject)."""
        return Person(self.reviewer.id, self.credential or f"password:{self.reviewer.id}")


@dataclass
class ReviewContext:
    """Everything the review handlers share; built once by `add_review_routes`."""

    accounts: Mapping[str, Account]
    signer: SessionSigner
    sealer: Sealer
    partners: Mapping[str, Partner]
    clock: Callable[[], datetime]
    templates: jinja2.Environment
    # [oidc]: people sign in through this provider (None: passwords only).
    oidc: OidcClient | None = None
    public_url: str | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # scrypt at N=2**17 takes 128 MiB and half a second: a few at a time, not a flood.
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    @property
    def passwords_on(self) -> bool:
        """Whether `[[reviewers]]` passwords sign anyone in: without a provider, or with its
        break-glass `[oidc] allow_passwords = true`."""
        return self.oidc is None or self.oidc.config.allow_passwords

    @property
    def token_max_days(self) -> int:
        """How long a personal API token may last ([oidc] personal_token_max_days)."""
        return DEFAULT_MAX_DAYS if self.oidc is None else self.oidc.config.personal_token_max_days

    async def signed_in(self, request: web.Request) -> SignedIn | None:
        """Who the request's session proves; None without a live one. Its row is read each
        time (another instance may have ended it): StoreUnavailable (503) when the store
        cannot say, so no page opens on a session nobody could check."""
        now = self.clock()
        who = self._cookie_holder(request, now)
        if who is None:
            return None
        if not await store(request).review_session_live(who.session.id, who.reviewer.id, now):
            return None  # signed out, out everywhere, or ended by an operator
        return who

    def _cookie_holder(self, request: web.Request, now: datetime) -> SignedIn | None:
        """Who the session cookie names, if config.toml still lets them in."""
        session = self.signer.open(request.cookies.get(COOKIE), now)
        if session is None:
            return None
        if session.name is not None:  # signed in through the OpenID provider
            provider = self.oidc
            if provider is None or REVIEWER not in session.roles:
                return None  # the provider left config.toml: the session ends
            if session.fingerprint != self.signer.fingerprint(provider.fingerprint_source):
                return None  # another provider or client since: the session ends
            person = Reviewer(session.reviewer_id, session.name, "")
            return SignedIn(person, session, provider.credential)
        if not self.passwords_on:
            return None  # a provider replaced passwords since: the session ends
        account = self.accounts.get(session.reviewer_id)
        if account is None:
            return None  # removed from config.toml: the session ends
        if session.fingerprint != self.signer.fingerprint(account.reviewer.password_hash):
            return None  # password changed since: the session ends
        return SignedIn(account.reviewer, session)


REVIEW: Final = web.AppKey("review_context", ReviewContext)


def context(request: web.Request) -> ReviewContext:
    return request.config_dict[REVIEW]


def secure_cookies(request: web.Request) -> bool:
    """Whether the site's cookies are Secure: the request came over TLS, or `[server]
    public_url` is https (TLS ends at a proxy in front, which talks plain HTTP to us)."""
    public_url = context(request).public_url
    return request.secure or (public_url or "").startswith("https://")


def store(request: web.Request) -> Store:
    return request.config_dict[STORE]


def actions(request: web.Request) -> ActionLog:
    """Where a reviewer's acts and personal-scope reads are recorded (the disclosure log)."""
    found = request.config_dict.get(ACTIONS)
    if found is None:
        raise InternalServerError(
            "the review page cannot record acts: the composition root must set app[ACTIONS]",
        )
    return found


def backend(request: web.Request) -> ReviewBackend:
    found = request.config_dict.get(REVIEW_BACKEND)
    if found is None:
        raise InternalServerError(
            "the review page has no ReviewBackend: the composition root "
            "must set app[REVIEW_BACKEND]",
        )
    return found


def templates_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        # The review pages first, then the page skeleton they share with the problem pages.
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader(__package__, "templates"),
                jinja2.PackageLoader("gateway.web", "templates"),
            ]
        ),
        autoescape=True,  # every template, whatever its name: no value reaches HTML unescaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["prefix"] = PREFIX
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.filters["show"] = _show
    env.filters["label"] = label_html  # words for a code, the code on hover
    env.filters["words"] = label_of  # the same words as plain text
    return env


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(delta: timedelta) -> str:
    hours = max(0, int(delta.total_seconds() // 3600))
    if hours < 1:
        return f"{max(0, int(delta.total_seconds() // 60))} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if days else f"{hours} h"


def _show(value: object) -> str:
    """A log entry member as text (its values are ids, vocabulary, numbers, digests)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_show(x) for x in value) or "—"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def render(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    who: SignedIn | None = None,
    **values: Any,
) -> web.Response:
    ctx = context(request)
    values.setdefault("nav", None)
    text = ctx.templates.get_template(template).render(
        reviewer=who.reviewer if who else None,
        csrf=who.session.csrf if who else None,
        now=ctx.clock(),
        **values,
    )
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs `location`."""
    return web.Response(status=303, headers={"Location": location})


def path_id(value: str, what: str) -> str:
    """An id from a path (a disclosure, a lawful request, a partner): anything unprintable
    names nothing here."""
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise NotFoundError(f"no {what} with this id")
    return value


def _flash(value: str | None) -> str | None:
    """What the last form did, from the query its redirect set: shown only when printable."""
    return value if value and len(value) <= MAX_ID and value.isprintable() else None


@dataclass(frozen=True)
class Outcome:
    """What a page with forms says above its content: why the form just posted was refused
    (the page then answers with that error's status), or what the last post did."""

    error: GatewayError | None = None
    done: str | None = None

    @property
    def status(self) -> int:
        return 200 if self.error is None else self.error.status

    def values(self) -> dict[str, Any]:
        """The template values of this outcome (`render` takes the status separately)."""
        return {"error": self.error, "done": self.done}


FormPage = Callable[[web.Request, SignedIn, Outcome], Awaitable[web.Response]]
"""A page with forms, rendered with the outcome of the last post."""


def form_page_handler(page: FormPage, key: str) -> PageHandler:
    """The GET handler of `page`: it shows what the last post did, which `post_form`'s
    redirect put in the query parameter `key`."""

    async def show(request: web.Request, who: SignedIn) -> web.Response:
        return await page(request, who, Outcome(done=_flash(request.query.get(key))))

    return show


async def post_form(
    request: web.Request,
    who: SignedIn,
    act: Callable[[], Awaitable[str]],
    *,
    page: FormPage,
    back: str,
    key: str,
) -> web.StreamResponse:
    """Run a form's action. Refused: show `page` again with the reason, except
    log_unavailable, which goes to the error page (with its Retry-After). Done: redirect to
    `back` (a path under PREFIX) with what `act` returned as the query parameter `key`."""
    try:
        done = await act()
    except GatewayError as exc:
        if exc.code == "log_unavailable":
            raise
        return await page(request, who, Outcome(error=exc))
    return redirect(f"{PREFIX}{back}?{urlencode([(key, done)])}")


def safe_next(value: str | None) -> str:
    """A path under /review/ to return to after login; anything else goes to the list."""
    home = PREFIX + "/"
    if not value or not value.startswith(home) or len(value) > 2000:
        return home
    parts = urlsplit(value)
    if (
        parts.scheme
        or parts.netloc
        or "\\" in value
        or any(c < " " for c in value)
        or ".." in parts.path.split("/")
    ):
        return home
    return value


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


async def html_error(request: web.Request, error: GatewayError) -> web.Response:
    if not wants_html(request):
        return problem_response(error)
    who = await _header_person(request)
    title = PAGE_TITLES.get(error.code, error.title)
    page = render(request, "error.html", status=error.status, who=who, error=error, title=title)
    page.headers.update(problem_headers(error))  # e.g. Retry-After of log_unavailable
    return page


async def _header_person(request: web.Request) -> SignedIn | None:
    """Who the error page's header names: nobody when the session cannot be checked (the
    error shown may be that very store being down)."""
    if REVIEW not in request.config_dict:
        return None
    try:
        return await context(request).signed_in(request)
    except GatewayError:
        return None


def _http_error(request: web.Request, exc: web.HTTPException) -> GatewayError:
    code = _HTTP_CODES.get(exc.status, "invalid_request")
    if exc.status == 404:
        return error_for(code, f"there is no review page at {request.path[:200]}")
    if exc.status == 405:
        return error_for(code, f"{request.method} is not allowed on {request.path[:200]}")
    return error_for(code, exc.reason)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def review_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = await html_error(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = await html_error(request, _http_error(request, exc))
    except Exception:
        log.exception("review page failed on %s", request.match_info.route.name)
        response = await html_error(
            request,
            InternalServerError(
                "the review page failed unexpectedly; the operators have the details in the "
                "application log",
            ),
        )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _same_origin(request: web.Request) -> bool:
    """False when the browser says the form came from another origin.

    Fetch metadata first: browsers set ``Sec-Fetch-Site`` themselves and a page cannot
    forge it. ``Origin`` is ``null`` under our no-referrer policy, so it only counts
    when it names an origin. Clients that send neither still need the CSRF token.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.host


PageHandler = Callable[[web.Request, SignedIn], Awaitable[web.StreamResponse]]


def reviewer_page(handler: PageHandler) -> Handler:
    """Guard a handler: a live reviewer session, and for POST a matching CSRF token.
    Without one a GET goes to the sign-in page; so does a browser's POST whose session has
    ended (other clients: 401 problem+json), while a POST that never had one is refused."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        who = await context(request).signed_in(request)
        if who is None:
            if request.method == "GET":
                query = urlencode({"next": request.path_qs})
                return redirect(f"{PREFIX}/login?{query}")
            ended = COOKIE in request.cookies  # a session this browser had
            if ended and wants_html(request):
                return redirect(f"{PREFIX}/login")
            if ended:
                raise UnauthenticatedError(
                    "your review-site session has ended (signed out, signed out everywhere, "
                    "ended by an operator, or expired); sign in again and send the form again"
                )
            raise ForbiddenError(
                "sign in as a reviewer first; this form was sent without a session"
            )
        if request.method == "POST":
            form = await request.post()
            token = form.get("csrf")
            if not _same_origin(request) or not who.session.csrf_matches(
                token if isinstance(token, str) else None
            ):
                raise ForbiddenError(
                    "the form's CSRF token is missing or does not belong to your session; "
                    "reload the page and send the form again",
                )
        return await handler(request, who)

    return guarded


def check_same_origin(request: web.Request) -> None:
    if not _same_origin(request):
        raise ForbiddenError("the form was sent from another site")
