"""One error family for the whole gateway: one class per problem code.

Each class carries the problem code of CONTRACT §4 as `code`, and its HTTP `status` and
`title` from the problem table (gateway_client.problems, the SDK's, which the server reads
so the two cannot disagree). The classes are grouped by what the caller does next, as the
SDK's are (gateway_client.errors): `RequestError` (fix the call; the SDK's `CallerError`),
`DisclosureRefusal` and its `ConsentRefusal` (the policy says no; `DisclosureRefused`,
`ConsentProblem`), `GatewayFailure` (the gateway could not act; `RetryableProblem`) and
`PartnerFailure` (`PartnerProblem`). A server class is named as the SDK's class of the
same code with `Error` appended (`ConsentRequiredError` ↔ `ConsentRequired`), except
`InternalServerError` ↔ `InternalError`: one module can import both without aliasing.

Raise the class of the code (`raise ConsentRequiredError(detail)`); where the code is only
known at run time (a policy decision's, an HTTP status's), `error_for(code, detail)`. The
web layer turns any of them into an RFC 9457 problem document in one place, the CLI into a
message and an exit code. Details never hold a personal value.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

from gateway_client.problems import CATALOGUE, PROBLEM_PATH

PROBLEM_BASE: Final = PROBLEM_PATH
"""Each problem's `type` is this relative reference + its code; GET /problems/<code>
on the gateway explains the code (gateway_client.problems holds the text)."""

# code -> (HTTP status, title)
PROBLEMS: Final[dict[str, tuple[int, str]]] = {
    code: (kind.status, kind.title) for code, kind in CATALOGUE.items()
}


class GatewayError(Exception):
    """A refusal or failure with a contract problem code: the base of every class below.

    `detail` says what is wrong and what would make it pass; it must never
    quote a personal value. `retry_after_s`: when a retry can succeed, if known.
    """

    code: ClassVar[str]
    status: ClassVar[int]
    title: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls):  # one class per code: its status and title are the table's
            if cls.code not in PROBLEMS:
                raise ValueError(f"unknown problem code {cls.code!r}")
            cls.status, cls.title = PROBLEMS[cls.code]

    def __init__(
        self,
        detail: str,
        *,
        disclosure_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        if not hasattr(type(self), "code"):
            raise TypeError(
                f"{type(self).__name__} is a family: raise the class of a problem code, "
                "or error_for(code, detail)"
            )
        super().__init__(f"{self.code}: {detail}")
        self.detail = detail
        self.disclosure_id = disclosure_id
        # Seconds after which the same call can succeed (the answer's Retry-After); None
        # leaves it to the table's rule for the code (gateway_client.problems).
        self.retry_after_s = retry_after_s

    def problem(self) -> dict[str, object]:
        """The RFC 9457 problem document for this error."""
        doc: dict[str, object] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.disclosure_id is not None:
            doc["disclosure_id"] = self.disclosure_id
        return doc


class RequestError(GatewayError):
    """The call itself is wrong (credentials, rights, body, unknown ids): the caller fixes it."""


class DisclosureRefusal(GatewayError):
    """The privacy policy does not allow this disclosure; nothing is sent."""


class ConsentRefusal(DisclosureRefusal):
    """A refusal the customer can lift with a (renewed, explicit) consent."""


class GatewayFailure(GatewayError):
    """The gateway could not act and sent nothing; the same call may pass later."""


class PartnerFailure(GatewayError):
    """The partner failed, or cannot be reached safely now."""


class UnauthenticatedError(RequestError):
    """The request carries no credentials the gateway accepts."""

    code = "unauthenticated"


class ForbiddenError(RequestError):
    """The caller may not use this partner/operation/purpose, or lacks the role."""

    code = "forbidden"


class UnknownPartnerError(RequestError):
    """No partner with this id is onboarded."""

    code = "unknown_partner"


class UnknownOperationError(RequestError):
    """The partner has no such operation."""

    code = "unknown_operation"


class UnknownSubjectError(RequestError):
    """The gateway knows nothing of this subject."""

    code = "unknown_subject"


class NotFoundError(RequestError):
    """No such resource (consent, lawful request, route)."""

    code = "not_found"


class InvalidRequestError(RequestError):
    """The body or a parameter is malformed; the detail names the key."""

    code = "invalid_request"


class PayloadTooLargeError(RequestError):
    """The body is larger than the gateway accepts."""

    code = "payload_too_large"


class UriTooLongError(RequestError):
    """The request line is longer than the gateway reads (a value belongs in a body)."""

    code = "uri_too_long"


class HeadersTooLargeError(RequestError):
    """A request header is longer than the gateway reads."""

    code = "headers_too_large"


class MethodNotAllowedError(RequestError):
    """The path exists but not for this method; the `Allow` header names those it takes."""

    code = "method_not_allowed"


class ConflictError(RequestError):
    """The resource's state refuses this (an Idempotency-Key reused or in progress, an id taken)."""

    code = "conflict"


class PurposeNotAllowedError(DisclosureRefusal):
    """The partner operation does not serve this purpose."""

    code = "purpose_not_allowed"


class LegalBasisNotAllowedError(DisclosureRefusal):
    """The partner operation does not accept this legal basis."""

    code = "legal_basis_not_allowed"


class SubjectRestrictedError(DisclosureRefusal):
    """The customer objected to or restricted this processing."""

    code = "subject_restricted"


class SubjectUnderAgeError(DisclosureRefusal):
    """The customer is under 14: no such disclosure."""

    code = "subject_under_age"


class DateOfBirthConflictError(DisclosureRefusal):
    """The payload's date of birth and the stored profile's differ (both 14 or over)."""

    code = "date_of_birth_conflict"


class LegalRequestRequiredError(DisclosureRefusal):
    """`legal_obligation` needs an approved lawful request id in `legal_request`."""

    code = "legal_request_required"


class PartnerSuspendedError(DisclosureRefusal):
    """The privacy team suspended disclosures to this partner."""

    code = "partner_suspended"


class AgreementExpiredError(DisclosureRefusal):
    """The data-processing agreement with this partner has expired."""

    code = "agreement_expired"


class ConsentRequiredError(ConsentRefusal):
    """No consent covers this subject, purpose and partner."""

    code = "consent_required"


class ConsentWithdrawnError(ConsentRefusal):
    """The consent that covered this was withdrawn."""

    code = "consent_withdrawn"


class ConsentExpiredError(ConsentRefusal):
    """The consent that covered this has expired."""

    code = "consent_expired"


class ExplicitConsentRequiredError(ConsentRefusal):
    """A special-category field needs an explicit consent naming it."""

    code = "explicit_consent_required"


class PolicyNotInForceError(ConsentRefusal):
    """The consent was given under a privacy policy no longer in force."""

    code = "policy_not_in_force"


class LogUnavailableError(GatewayFailure):
    """The disclosure log (the store) cannot be written or read: nothing is sent."""

    code = "log_unavailable"


class LogOverloadedError(GatewayFailure):
    """Too many log entries wait for their commit: refused at once, nothing logged or sent."""

    code = "log_overloaded"


class CallerRateLimitedError(GatewayFailure):
    """The calling service is over its `rate` or `max_in_flight`: shed, nothing sent."""

    code = "caller_rate_limited"


class PartnerRateLimitedError(GatewayFailure):
    """The partner's `rate` or `max_in_flight` is reached: shed, nothing sent."""

    code = "partner_rate_limited"


class SignInUnavailableError(GatewayFailure):
    """The review site's OpenID provider cannot be used now: no one is signed in."""

    code = "sign_in_unavailable"


class InternalServerError(GatewayFailure):
    """The gateway failed unexpectedly; the operators have the details."""

    code = "internal_error"


class PartnerUnavailableError(PartnerFailure):
    """The partner gave no usable answer after the retries, or cannot be reached safely."""

    code = "partner_unavailable"


class PartnerTimeoutError(PartnerFailure):
    """The partner did not answer in time (it may have received the data)."""

    code = "partner_timeout"


class CircuitOpenError(PartnerFailure):
    """The partner failed repeatedly; the gateway is not calling it for a while."""

    code = "circuit_open"


class PartnerKeyExpiredError(PartnerFailure):
    """The partner's encryption key expired; it works again once it publishes one."""

    code = "partner_key_expired"


def _per_code(cls: type[GatewayError]) -> list[type[GatewayError]]:
    found = [cls] if "code" in vars(cls) else []
    for sub in cls.__subclasses__():
        found += _per_code(sub)
    return found


ERROR_CLASSES: Final[Mapping[str, type[GatewayError]]] = MappingProxyType(
    {cls.code: cls for cls in _per_code(GatewayError)}
)
"""The class of each problem code; a subclass of one (gateway.store.records.StoreUnavailable
is a LogUnavailableError) defines no `code` of its own and is not listed."""


def error_for(
    code: str,
    detail: str,
    *,
    disclosure_id: str | None = None,
    retry_after_s: float | None = None,
) -> GatewayError:
    """The error of a code known only at run time (a policy decision's, an HTTP status's)."""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        raise ValueError(f"unknown problem code {code!r}")
    return cls(detail, disclosure_id=disclosure_id, retry_after_s=retry_after_s)


class ConfigError(Exception):
    """A partner file or config.toml that breaks a rule, located as `file:line`."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class ConfigErrors(Exception):
    """Every problem found in a set of files, so an operator fixes them in one pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
