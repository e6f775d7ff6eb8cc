"""An async Python client for internal services that call the gateway (CONTRACT §4).

    async with GatewayClient("https://gateway.internal", token_provider=idp_token) as gw:
        try:
            answer = await gw.disclose(partner="lao-credit-bureau", operation="credit_check",
                                       purpose="service_provision", legal_basis="consent",
                                       subject=customer.id, data=customer.record,
                                       idempotency_key=f"order-{order.id}")
        except ConsentProblem as refused:      # ask the customer; nothing was sent
            ...
        except RetryableProblem as later:      # nothing was sent; same call, same key, later
            ...

Every problem document of the gateway becomes one exception class per problem
code (`ConsentRequired`, `LogUnavailable`, …), grouped by what the caller does
next (httpx-style families): `CallerError` (fix the call), `DisclosureRefused`
and its `ConsentProblem` (the policy says no; nothing was sent), `RetryableProblem`
(the gateway could not act; nothing was sent; retry with the same key) and
`PartnerProblem` (the partner failed or cannot be reached safely; the answer is
final for that Idempotency-Key). No answer at all is `GatewayUnreachable`; an
answer that is no problem document of the gateway (a proxy's HTML page) is
`UnexpectedResponse`. Exception messages never quote what was sent.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, ClassVar, Final
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from gateway.policy.decide import Decision
from gateway.policy.facts import Consent
from gateway.problem_catalog import problem_code

PROBLEM_JSON: Final = "application/problem+json"
TokenProvider = Callable[[], Awaitable[str] | str]


# -- exceptions ---------------------------------------------------------------------------


class GatewayClientError(Exception):
    """Anything this client raises."""


class GatewayUnreachable(GatewayClientError):
    """No answer from the gateway: connection refused or reset, DNS, TLS, timeout.

    `request_sent` is False when the request certainly never reached the gateway
    (no connection). When True, a disclosure may have happened: repeat it with the
    same Idempotency-Key, which returns the first answer and sends nothing again.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class UnexpectedResponse(GatewayClientError):
    """An answer that is neither a success nor a problem document of the gateway
    (for example a load balancer's HTML error page)."""

    def __init__(self, message: str, *, status: int, content_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.content_type = content_type


class GatewayProblem(GatewayClientError):
    """A problem document (RFC 9457) of the gateway. Subclasses: one per problem code.

    `detail` says what is wrong and what would make the call pass (the gateway never
    puts a personal value in it); `disclosure_id` is set when the gateway assigned
    one (quote it to the legal team); `retry_after` is seconds from `Retry-After`;
    `help_url` is the document's `type` resolved against the gateway: the page that says
    what the code means, its usual causes, its fix and whether a retry can succeed.
    """

    code: str = ""  # the class's code; an instance holds the code it was raised for
    default_status: ClassVar[int] = 500

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str = "",
        disclosure_id: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        document: Mapping[str, Any] | None = None,
        help_url: str | None = None,
    ) -> None:
        self.code = code or type(self).code
        self.status = status if status is not None else type(self).default_status
        self.detail = detail
        self.title = title
        self.disclosure_id = disclosure_id
        self.retry_after = retry_after
        self.request_id = request_id
        self.document: Mapping[str, Any] = dict(document or {})
        self.help_url = help_url
        where = f" (disclosure {disclosure_id})" if disclosure_id else ""
        super().__init__(f"{self.code} ({self.status}){where}: {detail}")


class CallerError(GatewayProblem):
    """The call itself is wrong (credentials, rights, body, unknown ids): fix it."""


class DisclosureRefused(GatewayProblem):
    """The privacy policy does not allow this disclosure; nothing was sent, the refusal
    is in the disclosure log. Retrying the same call changes nothing."""


class ConsentProblem(DisclosureRefused):
    """A refusal the customer can lift: ask for (renewed, explicit) consent."""


class RetryableProblem(GatewayProblem):
    """The gateway could not act and sent nothing: the same call, with the same
    Idempotency-Key, may be retried later (see `retry_after`)."""


class PartnerProblem(GatewayProblem):
    """The partner failed after retries, or cannot be reached safely now. The answer is
    final for this Idempotency-Key: after `retry_after`, try again with a new key,
    knowingly (a timed-out attempt may have reached the partner)."""


class Unauthenticated(CallerError):
    """401: send a valid bearer token of your service."""

    code, default_status = "unauthenticated", 401


class Forbidden(CallerError):
    """403: the caller may not use this partner/operation/purpose, or lacks the role."""

    code, default_status = "forbidden", 403


class UnknownPartner(CallerError):
    """404: no partner with this id is onboarded."""

    code, default_status = "unknown_partner", 404


class UnknownOperation(CallerError):
    """404: the partner has no such operation."""

    code, default_status = "unknown_operation", 404


class UnknownSubject(CallerError):
    """404: the gateway knows nothing of this subject."""

    code, default_status = "unknown_subject", 404


class NotFound(CallerError):
    """404: no such resource (consent, lawful request, route)."""

    code, default_status = "not_found", 404


class InvalidRequest(CallerError):
    """400: the body or a parameter is malformed; the detail names the key."""

    code, default_status = "invalid_request", 400


class PayloadTooLarge(CallerError):
    """413: the body is larger than the gateway accepts."""

    code, default_status = "payload_too_large", 413


class UriTooLong(CallerError):
    """414: the request line is longer than the gateway reads (a value belongs in a body)."""

    code, default_status = "uri_too_long", 414


class HeadersTooLarge(CallerError):
    """431: a request header is longer than the gateway reads."""

    code, default_status = "headers_too_large", 431


class MethodNotAllowed(CallerError):
    """405: the path exists but not for this method (a client older or newer than the
    gateway); the `Allow` header names the methods it takes."""

    code, default_status = "method_not_allowed", 405


class Conflict(CallerError):
    """409: the Idempotency-Key was used for another body, or is still in progress."""

    code, default_status = "conflict", 409


class PurposeNotAllowed(DisclosureRefused):
    """403: the partner operation does not serve this purpose."""

    code, default_status = "purpose_not_allowed", 403


class LegalBasisNotAllowed(DisclosureRefused):
    """403: the partner operation does not accept this legal basis."""

    code, default_status = "legal_basis_not_allowed", 403


class SubjectRestricted(DisclosureRefused):
    """403: the customer objected to or restricted this processing."""

    code, default_status = "subject_restricted", 403


class SubjectUnderAge(DisclosureRefused):
    """403: the customer is under 14: no such disclosure."""

    code, default_status = "subject_under_age", 403


class DateOfBirthConflict(DisclosureRefused):
    """403: the payload's date of birth and the stored profile's differ (both 14 or over)."""

    code, default_status = "date_of_birth_conflict", 403


class LegalRequestRequired(DisclosureRefused):
    """403: `legal_obligation` needs an approved lawful request id in `legal_request`."""

    code, default_status = "legal_request_required", 403


class PartnerSuspended(DisclosureRefused):
    """403: the privacy team suspended disclosures to this partner."""

    code, default_status = "partner_suspended", 403


class AgreementExpired(DisclosureRefused):
    """403: the data-processing agreement with this partner has expired."""

    code, default_status = "agreement_expired", 403


class ConsentRequired(ConsentProblem):
    """403: no consent covers this subject, purpose and partner."""

    code, default_status = "consent_required", 403


class ConsentWithdrawn(ConsentProblem):
    """403: the consent that covered this was withdrawn."""

    code, default_status = "consent_withdrawn", 403


class ConsentExpired(ConsentProblem):
    """403: the consent that covered this has expired."""

    code, default_status = "consent_expired", 403


class ExplicitConsentRequired(ConsentProblem):
    """403: a special-category field needs an explicit consent naming it."""

    code, default_status = "explicit_consent_required", 403


class PolicyNotInForce(ConsentProblem):
    """403: the consent was given under a privacy policy no longer in force."""

    code, default_status = "policy_not_in_force", 403


class LogUnavailable(RetryableProblem):
    """503: the disclosure log cannot be written, so nothing was sent."""

    code, default_status = "log_unavailable", 503


class InternalError(RetryableProblem):
    """500: the gateway failed unexpectedly; the operators have the details."""

    code, default_status = "internal_error", 500


class PartnerUnavailable(PartnerProblem):
    """502: the partner failed after the gateway's retries."""

    code, default_status = "partner_unavailable", 502


class PartnerTimeout(PartnerProblem):
    """504: the partner did not answer in time (it may have received the data)."""

    code, default_status = "partner_timeout", 504


class CircuitOpen(PartnerProblem):
    """503: the partner failed repeatedly; the gateway is not calling it for a while."""

    code, default_status = "circuit_open", 503


class PartnerKeyExpired(PartnerProblem):
    """503: the partner's encryption key expired; it works again once it publishes one."""

    code, default_status = "partner_key_expired", 503


def _subclasses(cls: type[GatewayProblem]) -> Iterable[type[GatewayProblem]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


PROBLEM_CLASSES: Final[Mapping[str, type[GatewayProblem]]] = {
    cls.code: cls for cls in _subclasses(GatewayProblem) if "code" in vars(cls)
}


def problem_class(code: str) -> type[GatewayProblem]:
    """The exception class of a problem code. A code this client has no class for (from a
    newer gateway) is raised as GatewayProblem itself, with that `code`."""
    return PROBLEM_CLASSES.get(code, GatewayProblem)


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisclosureResponse:
    """The partner's answer as the gateway relays it (CONTRACT §4.1).

    `status` is the partner's: a partner's own 4xx answer (not retried) arrives here
    too, with `ok` False — the disclosure did happen. `fields` are the field names
    that were sent; `replayed` is True when an Idempotency-Key repeat returned the
    first answer and nothing was sent again.
    """

    status: int
    disclosure_id: str
    fields: tuple[str, ...]
    body: bytes
    content_type: str
    replayed: bool = False
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The partner's body as JSON (ValueError if it is not JSON)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class ErasureReport:
    """`POST /v1/subjects/{id}/erasure`: the notices sent, and partners to follow up by hand."""

    kind: str
    reference: str
    notices: tuple[Mapping[str, Any], ...]
    manual_follow_up: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()


# -- the client ---------------------------------------------------------------------------


class GatewayClient:
    """One gateway, one caller identity. Use as `async with`, or call `close()`.

    `token` is a fixed bearer token; `token_provider` is called before every request
    (sync or async) so tokens can be refreshed by the caller's IdP library. A
    `session` passed in is used and left open; otherwise the client owns one.
    `timeout` bounds each call, in seconds: a disclosure waits for the partner,
    whose retries the gateway runs, so keep it above the partners' worst case.
    """

    def __init__(
        self,
        base_url: str | URL,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if (token is None) == (token_provider is None):
            raise ValueError("pass exactly one of token= and token_provider=")
        base = URL(str(base_url))
        if not base.is_absolute() or base.scheme not in ("http", "https"):
            raise ValueError("base_url must be an absolute http:// or https:// URL")
        self._base = str(base).rstrip("/")
        self._origin = str(base.origin())
        self._token = token
        self._token_provider = token_provider
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = dict(headers or {})

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- disclosures ----------------------------------------------------------------

    async def disclose(
        self,
        *,
        partner: str,
        operation: str,
        purpose: str,
        legal_basis: str,
        subject: str,
        data: Mapping[str, Any],
        legal_request: str | None = None,
        idempotency_key: str | None = None,
    ) -> DisclosureResponse:
        """`POST /v1/disclosures`: decide, minimize, seal, log, deliver; the partner's answer.

        Raises the GatewayProblem subclass of the refusal or failure. With an
        `idempotency_key`, a repeat returns the first answer and sends nothing again.
        """
        body = _disclosure_body(
            partner, operation, purpose, legal_basis, subject, data, legal_request
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        reply = await self._call("POST", "/v1/disclosures", body, headers=headers)
        if "Disclosure-Fields" not in reply.headers:
            # A relayed partner answer always names the fields sent; anything else is
            # a problem of the gateway (or of something between us and it).
            self._raise(reply)
        fields = reply.headers.get("Disclosure-Fields", "")
        return DisclosureResponse(
            status=reply.status,
            disclosure_id=reply.headers.get("Disclosure-Id", ""),
            fields=tuple(f for f in fields.split(",") if f),
            body=reply.body,
            content_type=reply.headers.get("Content-Type", ""),
            replayed=reply.headers.get("Idempotency-Replayed") == "true",
            request_id=reply.headers.get("X-Request-Id"),
        )

    async def decide(
        self,
        *,
        partner: str,
        operation: str,
        purpose: str,
        legal_basis: str,
        subject: str,
        data: Mapping[str, Any],
        legal_request: str | None = None,
    ) -> Decision:
        """`POST /v1/decisions`: what a disclosure would do, sending and logging nothing.

        A refused decision is returned (`allowed` False, `problem` its code), not raised.
        """
        body = _disclosure_body(
            partner, operation, purpose, legal_basis, subject, data, legal_request
        )
        doc = _object(await self._json("POST", "/v1/decisions", body), "decision")
        return Decision(
            allowed=bool(doc.get("allowed")),
            problem=_opt_str(doc.get("problem")),
            reasons=tuple(str(r) for r in doc.get("reasons") or ()),
            disclosed={str(k): str(v) for k, v in (doc.get("disclosed") or {}).items()},
            withheld=tuple(str(w) for w in doc.get("withheld") or ()),
            needs_review=bool(doc.get("needs_review")),
            withheld_reasons={
                str(k): str(v) for k, v in (doc.get("withheld_reasons") or {}).items()
            },
            consent_id=_opt_str(doc.get("consent_id")),
            legal_request_id=_opt_str(doc.get("legal_request_id")),
            bound_by_policy_version=_opt_str(doc.get("bound_by_policy_version")),
        )

    # -- consents, restriction, profile ---------------------------------------------------

    async def grant_consent(
        self,
        *,
        subject: str,
        purposes: Iterable[str],
        policy_version: str,
        method: str,
        partners: Iterable[str] = (),
        partner_categories: Iterable[str] = (),
        special_categories: Iterable[str] = (),
        obtained_at: datetime | None = None,
        expires_at: datetime | None = None,
        evidence: str | None = None,
    ) -> Consent:
        """`POST /v1/consents`: record a consent; the gateway assigns its id."""
        body: dict[str, Any] = {
            "subject": subject,
            "purposes": list(purposes),
            "partners": list(partners),
            "partner_categories": list(partner_categories),
            "special_categories": list(special_categories),
            "policy_version": policy_version,
            "method": method,
        }
        if obtained_at is not None:
            body["obtained_at"] = _rfc3339(obtained_at)
        if expires_at is not None:
            body["expires_at"] = _rfc3339(expires_at)
        if evidence is not None:
            body["evidence"] = evidence
        return _consent(await self._json("POST", "/v1/consents", body))

    async def withdraw_consent(self, consent_id: str) -> Consent:
        """`POST /v1/consents/{id}/withdraw`: binding for every disclosure after the answer."""
        path = f"/v1/consents/{_segment(consent_id)}/withdraw"
        return _consent(await self._json("POST", path, None))

    async def consents(self, subject: str) -> list[Consent]:
        """`GET /v1/subjects/{subject}/consents`."""
        doc = _object(
            await self._json("GET", f"/v1/subjects/{_segment(subject)}/consents"), "consents"
        )
        return [_consent(c) for c in doc.get("consents") or ()]

    async def set_restriction(self, subject: str, restricted: bool, reason: str = "") -> None:
        """`PUT /v1/subjects/{subject}/restriction`: objection or restriction (or lift it)."""
        body = {"restricted": restricted, "reason": reason}
        await self._json("PUT", f"/v1/subjects/{_segment(subject)}/restriction", body)

    async def set_profile(self, subject: str, date_of_birth: date) -> None:
        """`PUT /v1/subjects/{subject}/profile`: the date of birth for the under-14 rule."""
        body = {"date_of_birth": date_of_birth.isoformat()}
        await self._json("PUT", f"/v1/subjects/{_segment(subject)}/profile", body)

    # -- subject rights -------------------------------------------------------------------

    async def subject_disclosures(self, subject: str) -> list[dict[str, Any]]:
        """`GET /v1/subjects/{subject}/disclosures`: every disclosure of the subject."""
        doc = _object(
            await self._json("GET", f"/v1/subjects/{_segment(subject)}/disclosures"),
            "subject report",
        )
        return [dict(row) for row in doc.get("disclosures") or ()]

    async def request_erasure(
        self, subject: str, kind: str = "erasure", data: Mapping[str, Any] | None = None
    ) -> ErasureReport:
        """`POST /v1/subjects/{subject}/erasure`: notify every partner that received data."""
        body: dict[str, Any] = {"kind": kind}
        if data is not None:
            body["data"] = dict(data)
        doc = _object(
            await self._json("POST", f"/v1/subjects/{_segment(subject)}/erasure", body),
            "erasure result",
        )
        return ErasureReport(
            kind=str(doc.get("kind", kind)),
            reference=str(doc.get("reference", "")),
            notices=tuple(doc.get("notices") or ()),
            manual_follow_up=tuple(doc.get("manual_follow_up") or ()),
        )

    # -- transport ------------------------------------------------------------------------

    async def _json(self, method: str, path: str, body: object = None) -> Any:
        reply = await self._call(method, path, body)
        if not 200 <= reply.status < 300:
            self._raise(reply)
        try:
            return json.loads(reply.body)
        except ValueError:
            raise UnexpectedResponse(
                f"{method} {_route(path)} answered {reply.status} with a body that is not JSON",
                status=reply.status,
                content_type=reply.content_type,
            ) from None

    async def _bearer(self) -> str:
        if self._token is not None:
            return self._token
        assert self._token_provider is not None
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    async def _call(
        self,
        method: str,
        path: str,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> _Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        sent_headers = {
            **self._headers,
            **(headers or {}),
            "Authorization": f"Bearer {await self._bearer()}",
            "Accept": f"application/json, {PROBLEM_JSON}, */*;q=0.5",
        }
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            sent_headers["Content-Type"] = "application/json"
        url = URL(self._base + path, encoded=True)
        # Messages name the origin and the route, never the path: it may hold a subject id.
        where = f"{self._origin} ({method} {_route(path)})"
        try:
            async with self._session.request(
                method,
                url,
                data=payload,
                headers=sent_headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return _Reply(response.status, response.headers, await response.read())
        except aiohttp.ConnectionTimeoutError:
            raise GatewayUnreachable(
                f"gateway at {where}: no connection within the timeout", request_sent=False
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise GatewayUnreachable(
                f"gateway at {where}: cannot connect ({exc.__class__.__name__})",
                request_sent=False,
            ) from None
        except TimeoutError:
            raise GatewayUnreachable(
                f"gateway at {where}: no answer within {self._timeout.total} s; the request "
                "may have been received (repeat a disclosure with the same Idempotency-Key)",
                request_sent=True,
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayUnreachable(
                f"gateway at {where}: connection lost ({exc.__class__.__name__}); the request "
                "may have been received (repeat a disclosure with the same Idempotency-Key)",
                request_sent=True,
            ) from None

    def _raise(self, reply: _Reply) -> None:
        """Raise the exception for a non-success answer."""
        doc: Any = None
        if reply.content_type == PROBLEM_JSON:
            try:
                doc = json.loads(reply.body)
            except ValueError:
                doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise UnexpectedResponse(
                f"the gateway at {self._origin} answered {reply.status} "
                f"{reply.content_type or 'without a content type'}, not a problem document",
                status=reply.status,
                content_type=reply.content_type,
            )
        # `/problems/<code>` since 2026-12; older gateways sent an absolute URI ending the same.
        code = problem_code(doc["type"])
        try:
            help_url: str | None = str(URL(self._base + "/").join(URL(doc["type"])))
        except ValueError:
            help_url = None
        raise problem_class(code)(
            str(doc.get("detail", "")),
            status=reply.status,
            code=code,
            title=str(doc.get("title", "")),
            disclosure_id=_opt_str(doc.get("disclosure_id")) or reply.headers.get("Disclosure-Id"),
            retry_after=_retry_after(reply.headers.get("Retry-After")),
            request_id=reply.headers.get("X-Request-Id"),
            document=doc,
            help_url=help_url,
        )


# -- helpers ------------------------------------------------------------------------------


def _disclosure_body(
    partner: str,
    operation: str,
    purpose: str,
    legal_basis: str,
    subject: str,
    data: Mapping[str, Any],
    legal_request: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner": partner,
        "operation": operation,
        "purpose": purpose,
        "legal_basis": legal_basis,
        "subject": subject,
        "data": dict(data),
    }
    if legal_request is not None:
        body["legal_request"] = legal_request
    return body


def _segment(value: str) -> str:
    """One path segment, percent-encoded ('/' included)."""
    return quote(value, safe="")


def _route(path: str) -> str:
    """The path with its identifier segments elided, for messages."""
    parts = path.split("/")
    named = {"v1", "subjects", "consents", "withdraw", "restriction", "profile"}
    named |= {"disclosures", "decisions", "erasure"}
    return "/".join(p if p in named or not p else "…" for p in parts)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times sent to the gateway must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedResponse(
            f"the gateway sent a {what} that is not a JSON object",
            status=200,
            content_type="application/json",
        )
    return value


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value)


def _consent(value: Any) -> Consent:
    doc = _object(value, "consent")
    obtained = _time(doc.get("obtained_at"))
    if obtained is None:
        raise UnexpectedResponse(
            "the gateway sent a consent without obtained_at",
            status=200,
            content_type="application/json",
        )
    return Consent(
        id=str(doc.get("id", "")),
        subject=str(doc.get("subject", "")),
        purposes=frozenset(doc.get("purposes") or ()),
        partners=frozenset(doc.get("partners") or ()),
        partner_categories=frozenset(doc.get("partner_categories") or ()),
        special_categories=frozenset(doc.get("special_categories") or ()),
        policy_version=str(doc.get("policy_version", "")),
        obtained_at=obtained,
        expires_at=_time(doc.get("expires_at")),
        withdrawn_at=_time(doc.get("withdrawn_at")),
        method=str(doc.get("method") or ""),
        evidence=str(doc.get("evidence") or ""),
    )
