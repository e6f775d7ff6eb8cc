"""The exceptions of the SDK: one class per problem code, grouped by what the caller does next.

Families in the manner of httpx: `CallerError` (fix the call), `DisclosureRefused` and its
`ConsentProblem` (the policy says no; nothing was sent), `RetryableProblem` (the gateway
could not act; nothing was sent; retry with the same key) and `PartnerProblem` (the partner
failed or cannot be reached safely; the answer is final for that Idempotency-Key). Each
per-code class carries `code` and `status` (the table's, gateway_client.problems). No
answer at all is `GatewayUnreachable`; an answer that is no problem document of the gateway
(a proxy's HTML page) is `UnexpectedResponse`.

The server raises classes of the same codes (gateway.errors), named `<this name>Error`
(`ConsentRequired` here, `ConsentRequiredError` there; `InternalError` here,
`InternalServerError` there), so a module can import both without aliasing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from gateway_client.problems import CATALOGUE


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


class ReceiptPending(GatewayClientError):
    """The disclosure's receipt is not ready: no witnessed checkpoint covers its entry yet
    (a 202, not a problem). Ask again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GatewayProblem(GatewayClientError):
    """A problem document (RFC 9457) of the gateway. Subclasses: one per problem code.

    `detail` says what is wrong and what would make the call pass (the gateway never
    puts a personal value in it); `disclosure_id` is set when the gateway assigned
    one (quote it to the legal team); `retry_after` is seconds from `Retry-After`;
    `help_url` is the document's `type` resolved against the gateway: the page that says
    what the code means, its usual causes, its fix and whether a retry can succeed.
    """

    code: str = ""
    """The class's problem code; an instance holds the code it was raised for."""
    status: int = 500
    """The code's HTTP status (from the table); an instance holds the answer's status."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls):  # one class per code: its status and title are the table's
            kind = CATALOGUE[cls.code]
            cls.status = kind.status

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
        self.status = status if status is not None else type(self).status
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

    code = "unauthenticated"


class Forbidden(CallerError):
    """403: the caller may not use this partner/operation/purpose, or lacks the role."""

    code = "forbidden"


class UnknownPartner(CallerError):
    """404: no partner with this id is onboarded."""

    code = "unknown_partner"


class UnknownOperation(CallerError):
    """404: the partner has no such operation."""

    code = "unknown_operation"


class UnknownSubject(CallerError):
    """404: the gateway knows nothing of this subject."""

    code = "unknown_subject"


class NotFound(CallerError):
    """404: no such resource (consent, lawful request, route)."""

    code = "not_found"


class InvalidRequest(CallerError):
    """400: the body or a parameter is malformed; the detail names the key."""

    code = "invalid_request"


class PayloadTooLarge(CallerError):
    """413: the body is larger than the gateway accepts."""

    code = "payload_too_large"


class UriTooLong(CallerError):
    """414: the request line is longer than the gateway reads (a value belongs in a body)."""

    code = "uri_too_long"


class HeadersTooLarge(CallerError):
    """431: a request header is longer than the gateway reads."""

    code = "headers_too_large"


class MethodNotAllowed(CallerError):
    """405: the path exists but not for this method (a client older or newer than the
    gateway); the `Allow` header names the methods it takes."""

    code = "method_not_allowed"


class Conflict(CallerError):
    """409: the Idempotency-Key was used for another body, or is still in progress."""

    code = "conflict"


class PurposeNotAllowed(DisclosureRefused):
    """403: the partner operation does not serve this purpose."""

    code = "purpose_not_allowed"


class LegalBasisNotAllowed(DisclosureRefused):
    """403: the partner operation does not accept this legal basis."""

    code = "legal_basis_not_allowed"


class SubjectRestricted(DisclosureRefused):
    """403: the customer objected to or restricted this processing."""

    code = "subject_restricted"


class SubjectUnderAge(DisclosureRefused):
    """403: the customer is under 14: no such disclosure."""

    code = "subject_under_age"


class DateOfBirthConflict(DisclosureRefused):
    """403: the payload's date of birth and the stored profile's differ (both 14 or over)."""

    code = "date_of_birth_conflict"


class LegalRequestRequired(DisclosureRefused):
    """403: `legal_obligation` needs an approved lawful request id in `legal_request`."""

    code = "legal_request_required"


class PartnerSuspended(DisclosureRefused):
    """403: the privacy team suspended disclosures to this partner."""

    code = "partner_suspended"


class AgreementExpired(DisclosureRefused):
    """403: the data-processing agreement with this partner has expired."""

    code = "agreement_expired"


class ConsentRequired(ConsentProblem):
    """403: no consent covers this subject, purpose and partner."""

    code = "consent_required"


class ConsentWithdrawn(ConsentProblem):
    """403: the consent that covered this was withdrawn."""

    code = "consent_withdrawn"


class ConsentExpired(ConsentProblem):
    """403: the consent that covered this has expired."""

    code = "consent_expired"


class ExplicitConsentRequired(ConsentProblem):
    """403: a special-category field needs an explicit consent naming it."""

    code = "explicit_consent_required"


class PolicyNotInForce(ConsentProblem):
    """403: the consent was given under a privacy policy no longer in force."""

    code = "policy_not_in_force"


class LogUnavailable(RetryableProblem):
    """503: the disclosure log cannot be written, so nothing was sent."""

    code = "log_unavailable"


class LogOverloaded(RetryableProblem):
    """503: too many log entries wait for their commit; refused at once, nothing sent."""

    code = "log_overloaded"


class SignInUnavailable(RetryableProblem):
    """503: the review site's OpenID provider could not be used; no one signed in."""

    code = "sign_in_unavailable"


class CallerRateLimited(RetryableProblem):
    """429: the calling service is over its rate or in-flight limit; nothing sent."""

    code = "caller_rate_limited"


class PartnerRateLimited(RetryableProblem):
    """429: the partner's rate or in-flight limit is reached; nothing sent."""

    code = "partner_rate_limited"


class InternalError(RetryableProblem):
    """500: the gateway failed unexpectedly; the operators have the details."""

    code = "internal_error"


class PartnerUnavailable(PartnerProblem):
    """502: the partner failed after the gateway's retries."""

    code = "partner_unavailable"


class PartnerTimeout(PartnerProblem):
    """504: the partner did not answer in time (it may have received the data)."""

    code = "partner_timeout"


class CircuitOpen(PartnerProblem):
    """503: the partner failed repeatedly; the gateway is not calling it for a while."""

    code = "circuit_open"


class PartnerKeyExpired(PartnerProblem):
    """503: the partner's encryption key expired; it works again once it publishes one."""

    code = "partner_key_expired"


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
