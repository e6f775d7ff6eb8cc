"""Delivering a sealed payload to a partner: headers, retries, circuit breaker (the URL it
goes to: `gateway.outbound.partner_url`).

`Outbound.deliver` is the last step before data leaves the company. It sends
exactly the bytes it is given (already signed and encrypted) to the partner's
own host, with only the headers this module chooses; it retries what is
transient and stops at what is not; it refuses at once while the partner's
circuit is open.

What is retried (STYLE 4), with exponential backoff and full jitter, up to
the partner's `max_attempts`:

- connection refused, reset or closed, DNS failure: the partner may be back
  in a moment;
- a timeout (`timeout_s` per attempt);
- 408, 429, 500, 502, 503, 504. `Retry-After` (seconds or an HTTP date) is
  honoured exactly when present; beyond `RETRY_AFTER_CAP_S` the delivery
  gives up at once rather than hold the caller. 500 is retried too: with the
  Idempotency-Key a repeat is never a second disclosure, and most 500s seen
  in practice are a partner's deploy or database blip.

What is not retried:

- any other 4xx: the partner's answer, returned as a `PartnerReply`;
- 3xx: redirects are never followed (they would move personal data to a URL
  the partner file does not name) and fail as `partner_unavailable`, telling
  the operator to fix `base_url`;
- other 5xx (501, 505, …), TLS verification failures, an oversized reply:
  `partner_unavailable`.

Every request of one delivery carries `Idempotency-Key: <disclosure id>`, so
the partner can tell a retry from a second disclosure, and, only when tracing is on and
the partner's file says `forward_trace_context = true`, the W3C `traceparent` of its own
`delivery` span (`gateway.observe.tracing`). A 401 from an OAuth2
partner drops the token and re-sends once with a fresh one; that re-send is
outside the retry budget but counted in `attempts` (attempts = requests sent).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential
from yarl import URL

from gateway.crypto.acknowledgement import ACK_HEADER
from gateway.errors import (
    CircuitOpenError,
    ConfigErrors,
    InternalServerError,
    PartnerFailure,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from gateway.observe.tracing import AttributeValue, forward_trace_context, span
from gateway.outbound.breaker import Breakers, BreakerState
from gateway.outbound.credentials import Credentials, PartnerAuthenticator
from gateway.outbound.http import (
    TLS_FAILURES,
    TRANSIENT_STATUSES,
    USER_AGENT,
    read_limited,
    retry_after_seconds,
)
from gateway.outbound.partner_secrets import PartnerAuthError
from gateway.partners.model import Operation, Partner
from gateway.problem_catalog import PARTNER_RETRY_AFTER_S

log = logging.getLogger(__name__)


ACCEPT: Final = "application/jose, application/json;q=0.9, application/problem+json;q=0.8"

_DISCLOSURE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MEDIA_TYPE = re.compile(r"^[\x20-\x7e]{1,200}$")


@dataclass(frozen=True)
class PartnerReply:
    """The partner's answer: a 2xx, or a 4xx it meant (not retried)."""

    status: int
    content_type: str
    body: bytes
    attempts: int
    # The partner's `Disclosure-Acknowledgement` header (a compact JWS), as it came: the
    # flow verifies it when the partner's file asks for one (gateway.crypto.acknowledgement).
    acknowledgement: str | None = None


class DeliveryError(PartnerFailure):
    """A delivery that did not get a usable answer from the partner.

    `attempts`: requests sent. `reached_partner`: whether any of them may have
    reached the partner (a timeout after sending counts as maybe; a refused
    connection does not) — the log's outcome needs it. `misconfigured`: the
    gateway's own setup (a missing secret or key file) stopped it before any
    request. `retry_after_s`: when trying again can help — set exactly when the failure
    was transient (gateway_client.problems states the rule); None when an operator must
    fix something first.
    """

    def __init__(
        self,
        detail: str,
        *,
        attempts: int,
        reached_partner: bool,
        disclosure_id: str | None = None,
        misconfigured: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail, disclosure_id=disclosure_id, retry_after_s=retry_after_s)
        self.attempts = attempts
        self.reached_partner = reached_partner
        self.misconfigured = misconfigured


class DeliveryFailed(DeliveryError, PartnerUnavailableError):
    """partner_unavailable: no usable answer after the retries, or no safe way to send."""


class DeliveryTimedOut(DeliveryError, PartnerTimeoutError):
    """partner_timeout: the last try got no answer within the partner's `timeout_s`."""


class DeliveryCircuitOpen(DeliveryError, CircuitOpenError):
    """circuit_open: the breaker refused the call; nothing was sent."""


class _Transient(Exception):
    """One failed attempt that a later attempt may cure; tenacity retries on it."""

    def __init__(self, reason: str, *, timeout: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout
        self.retry_after = retry_after


@dataclass
class _Run:
    """One delivery in progress."""

    partner: Partner
    operation: Operation
    url: URL
    body: bytes
    content_type: str
    disclosure_id: str
    attempts: int = 0  # requests sent to the partner
    tries: int = 0  # rounds of the retry loop (a token fetch that failed is one)
    reached: bool = False
    refreshed: bool = False

    def span_attributes(self) -> dict[str, AttributeValue]:
        """The next request's span: ids and its number, nothing of the URL or body."""
        return {
            "gateway.disclosure_id": self.disclosure_id,
            "gateway.partner": self.partner.id,
            "gateway.operation": self.operation.name,
            "gateway.delivery.attempt": self.attempts + 1,
            "http.request.method": self.operation.method,
        }

    @property
    def where(self) -> str:
        return f"partner {self.partner.id} operation {self.operation.name}"

    def fail(
        self,
        cls: type[DeliveryError],
        detail: str,
        *,
        misconfigured: bool = False,
        retry_after_s: float | None = None,
    ) -> DeliveryError:
        return cls(
            f"{self.where}: {detail}",
            attempts=self.attempts,
            reached_partner=self.reached,
            disclosure_id=self.disclosure_id,
            misconfigured=misconfigured,
            retry_after_s=retry_after_s,
        )


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    retry_after: str | None
    body: bytes
    acknowledgement: str | None = None


def client_session() -> aiohttp.ClientSession:
    """The session `Outbound` needs: no cookie jar, no default headers, no session auth.

    Call it inside the running loop (e.g. in the app's cleanup_ctx) and close it there.
    """
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=100, limit_per_host=20),
        trust_env=False,
    )


class Outbound:
    """Sends sealed payloads to partners. One per process, sharing one aiohttp session."""

    MAX_REPLY_BYTES: Final = 4 * 1024 * 1024
    RETRY_AFTER_CAP_S: Final = 30.0
    BACKOFF_MIN_S: Final = 0.1
    BACKOFF_MULTIPLIER_S: Final = 0.5
    BACKOFF_MAX_S: Final = PARTNER_RETRY_AFTER_S  # also the Retry-After of a transient failure

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        env: Mapping[str, str],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
    ) -> None:
        # A cookie jar would hand one partner's cookies back to it across
        # subjects, and default headers or session auth would leak into every
        # partner request: the session must carry nothing of its own.
        if not isinstance(session.cookie_jar, aiohttp.DummyCookieJar):
            raise ValueError("Outbound needs a session without cookies: use client_session()")
        if session.headers or session.auth is not None:
            raise ValueError("Outbound needs a session without default headers or auth")
        self._session = session
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._auth = PartnerAuthenticator(session, env=env, clock=clock, user_agent=USER_AGENT)
        self._breakers = Breakers(
            threshold=breaker_threshold, cooldown_s=breaker_cooldown_s, clock=clock
        )
        self._backoff = wait_random_exponential(
            multiplier=self.BACKOFF_MULTIPLIER_S, min=self.BACKOFF_MIN_S, max=self.BACKOFF_MAX_S
        )

    def preflight(self, partners: Iterable[Partner]) -> None:
        """Load every partner's secrets, keys and certificates now; ConfigErrors if any is missing.

        Run at start-up so a missing environment variable stops the gateway
        instead of failing the first disclosure.
        """
        errors = [
            partner.error(problem, "auth")
            for partner in partners
            for problem in self._auth.check(partner)
        ]
        if errors:
            raise ConfigErrors(errors)

    def forget(self, partner_id: str) -> None:
        """Drop what was cached for the partner (secrets, keys, TLS, token): its file changed."""
        self._auth.forget(partner_id)

    def breaker_state(self, partner_id: str) -> BreakerState:
        """`closed`, `open` or `half_open`, for metrics."""
        return self._breakers.state(partner_id)

    async def deliver(
        self,
        partner: Partner,
        operation: Operation,
        *,
        body: bytes,
        content_type: str,
        url: URL,
        disclosure_id: str,
    ) -> PartnerReply:
        """Send `body` to `url` (made by `build_url`, before the intent is logged), retrying
        what is transient. Raises a DeliveryError subclass when the partner gives no usable
        answer.
        """
        if not _DISCLOSURE_ID.match(disclosure_id):
            raise InternalServerError(
                "disclosure id must be 1-128 letters, digits, '.', '_', ':', '-'"
            )
        if not _MEDIA_TYPE.match(content_type):
            raise InternalServerError("content type must be printable ASCII")
        run = _Run(partner, operation, url, body, content_type, disclosure_id)
        breaker = self._breakers.for_partner(partner.id)
        if not breaker.try_acquire():
            wait = breaker.retry_in()
            when = f"next trial in {wait:.0f} s" if wait > 0 else "a trial delivery is under way"
            raise run.fail(
                DeliveryCircuitOpen,
                f"circuit open after repeated failures; nothing sent, {when}",
                retry_after_s=max(wait, 1.0),
            )
        try:
            reply = await self._with_retries(run)
        except DeliveryError as exc:
            if exc.misconfigured:
                breaker.release()
            else:
                breaker.record_failure()
                if exc.retry_after_s is not None:
                    # This failure may have opened the circuit: no trial before it half-opens.
                    exc.retry_after_s = max(exc.retry_after_s, breaker.retry_in())
            raise
        except BaseException:
            breaker.release()
            raise
        breaker.record_success()
        return reply

    async def _with_retries(self, run: _Run) -> PartnerReply:
        try:
            # Most deliveries succeed at once: the retry machinery starts at a failure.
            return await self._attempt(run)
        except _Transient as exc:
            first_failure: list[_Transient] = [exc]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(run.partner.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if first_failure:  # tenacity's attempt 1 is the one already made
                        raise first_failure.pop()
                    return await self._attempt(run)
        except _Transient as exc:
            cls = DeliveryTimedOut if exc.timeout else DeliveryFailed
            # Transient, so a later call can succeed: after the partner's own Retry-After
            # when it gave one, else after the longest pause the gateway itself makes.
            raise run.fail(
                cls,
                f"{exc.reason}; gave up after {run.tries} tries",
                retry_after_s=exc.retry_after or PARTNER_RETRY_AFTER_S,
            ) from exc
        raise AssertionError("tenacity ended without an outcome")

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Transient) and failure.retry_after is not None:
            return failure.retry_after
        return self._backoff(state)

    async def _attempt(self, run: _Run) -> PartnerReply:
        run.tries += 1
        credentials = await self._credentials(run)
        answer = await self._traced_send(run, credentials)
        if (
            answer.status == 401
            and credentials.bearer is not None
            and not run.refreshed
            and self._auth.refreshable(run.partner)
        ):
            # The token may have been revoked or rotated early: one fresh
            # token, one re-send; a second 401 is the partner's answer.
            run.refreshed = True
            self._auth.drop_token(run.partner, credentials.bearer)
            credentials = await self._credentials(run)
            answer = await self._traced_send(run, credentials)
        return self._judge(run, answer)

    async def _credentials(self, run: _Run) -> Credentials:
        try:
            return await self._auth.credentials(run.partner)
        except PartnerAuthError as exc:
            if exc.transient:
                raise _Transient(exc.detail) from exc
            raise run.fail(DeliveryFailed, exc.detail, misconfigured=exc.misconfigured) from exc

    async def _traced_send(self, run: _Run, credentials: Credentials) -> _Answer:
        """One request in its own `delivery` span (tracing on): the span whose
        `traceparent` a partner with `forward_trace_context` receives."""
        with span("delivery", run.span_attributes, client=True) as notes:
            answer = await self._send(run, credentials)
            notes.note("http.response.status_code", answer.status)
            return answer

    async def _send(self, run: _Run, credentials: Credentials) -> _Answer:
        # Only these headers, whatever the caller sent us: its Authorization,
        # cookies and internal headers never reach a partner.
        headers = {
            "Content-Type": run.content_type,
            "Accept": ACCEPT,
            "User-Agent": USER_AGENT,
            "Idempotency-Key": run.disclosure_id,
            **credentials.headers,
        }
        if run.partner.forward_trace_context:
            forward_trace_context(headers)
        try:
            tls = self._auth.ssl_for(run.partner)
        except PartnerAuthError as exc:
            raise run.fail(DeliveryFailed, exc.detail, misconfigured=True) from exc
        run.attempts += 1
        try:
            async with self._session.request(
                run.operation.method,
                run.url,
                data=run.body,
                headers=headers,
                skip_auto_headers=("Accept-Encoding",),
                timeout=aiohttp.ClientTimeout(total=run.partner.timeout_s),
                allow_redirects=False,
                raise_for_status=False,
                ssl=tls,
            ) as response:
                run.reached = True
                body = await read_limited(response, self.MAX_REPLY_BYTES)
                if body is None:
                    raise run.fail(
                        DeliveryFailed,
                        f"reply larger than {self.MAX_REPLY_BYTES} bytes; not accepted",
                    )
                return _Answer(
                    response.status,
                    response.headers.get("Content-Type", "application/octet-stream"),
                    response.headers.get("Retry-After"),
                    body,
                    response.headers.get(ACK_HEADER),
                )
        except TLS_FAILURES as exc:
            raise run.fail(
                DeliveryFailed,
                f"TLS verification failed ({exc.__class__.__name__}); check the partner's "
                "certificate, its ca_bundle and (for mtls) the client certificate",
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise self._transient(
                run, f"no connection within {run.partner.timeout_s} s", exc
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise self._transient(run, f"cannot connect ({exc.__class__.__name__})", exc) from exc
        except TimeoutError as exc:
            # The request may have been sent before the clock ran out.
            run.reached = True
            raise self._transient(run, f"no answer within {run.partner.timeout_s} s", exc) from exc
        except aiohttp.ClientError as exc:
            run.reached = True
            raise self._transient(
                run, f"connection lost mid-request ({exc.__class__.__name__})", exc
            ) from exc

    def _transient(self, run: _Run, reason: str, cause: BaseException) -> _Transient:
        log.warning("%s attempt %d: %s", run.where, run.attempts, reason)
        return _Transient(reason, timeout=isinstance(cause, TimeoutError))

    def _judge(self, run: _Run, answer: _Answer) -> PartnerReply:
        status = answer.status
        if 200 <= status < 300 or (400 <= status < 500 and status not in TRANSIENT_STATUSES):
            return PartnerReply(
                status, answer.content_type, answer.body, run.attempts, answer.acknowledgement
            )
        if status in TRANSIENT_STATUSES:
            wait = retry_after_seconds(answer.retry_after, self._wall_clock())
            if wait is not None and wait > self.RETRY_AFTER_CAP_S:
                raise run.fail(
                    DeliveryFailed,
                    f"answered {status} asking to retry after {wait:.0f} s, beyond the "
                    f"{self.RETRY_AFTER_CAP_S:.0f} s the gateway waits; try again later",
                    retry_after_s=wait,
                )
            log.warning("%s attempt %d: answered %d", run.where, run.attempts, status)
            raise _Transient(f"answered {status}", retry_after=wait)
        if 300 <= status < 400:
            raise run.fail(
                DeliveryFailed,
                f"answered {status} (a redirect); redirects are not followed — if the "
                "partner moved, update base_url in its partner file",
            )
        raise run.fail(DeliveryFailed, f"answered {status}; not retried")
