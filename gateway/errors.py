"""One error family for the whole gateway.

Each error carries the problem code of CONTRACT §4 and its HTTP status; the
web layer turns any of them into an RFC 9457 problem document in one place,
the CLI into a message and an exit code. Details never hold a personal value.
"""

from __future__ import annotations

from typing import Final

PROBLEM_BASE: Final = "https://gateway.invalid/problems/"

# code -> (HTTP status, title)
PROBLEMS: Final[dict[str, tuple[int, str]]] = {
    "unauthenticated": (401, "Caller not authenticated"),
    "forbidden": (403, "Caller may not do this"),
    "unknown_partner": (404, "Unknown partner"),
    "unknown_operation": (404, "Unknown operation"),
    "unknown_subject": (404, "Unknown subject"),
    "not_found": (404, "Not found"),
    "invalid_request": (400, "Invalid request"),
    "payload_too_large": (413, "Payload too large"),
    "uri_too_long": (414, "Request line too long"),
    "headers_too_large": (431, "Request header too large"),
    "purpose_not_allowed": (403, "Purpose not allowed"),
    "legal_basis_not_allowed": (403, "Legal basis not allowed"),
    "consent_required": (403, "Consent required"),
    "consent_withdrawn": (403, "Consent withdrawn"),
    "consent_expired": (403, "Consent expired"),
    "explicit_consent_required": (403, "Explicit consent required"),
    "subject_restricted": (403, "Subject restricted processing"),
    "subject_under_age": (403, "Subject under age"),
    "date_of_birth_conflict": (403, "Dates of birth disagree"),
    "legal_request_required": (403, "Approved lawful request required"),
    "policy_not_in_force": (403, "Consent given under a policy no longer in force"),
    "partner_suspended": (403, "Partner suspended"),
    "agreement_expired": (403, "Data-processing agreement expired"),
    # 503, not 403: nothing is wrong with the caller's right to disclose; the gateway
    # cannot encrypt to the partner until it publishes a current key (then it works again).
    "partner_key_expired": (503, "Partner encryption key expired"),
    "conflict": (409, "Conflict"),
    "log_unavailable": (503, "Disclosure log unavailable"),
    "partner_unavailable": (502, "Partner unavailable"),
    "partner_timeout": (504, "Partner timed out"),
    "circuit_open": (503, "Partner circuit open"),
    "internal_error": (500, "Internal error"),
}


class GatewayError(Exception):
    """A refusal or failure with a contract problem code.

    `detail` says what is wrong and what would make it pass; it must never
    quote a personal value.
    """

    def __init__(self, code: str, detail: str, *, disclosure_id: str | None = None) -> None:
        if code not in PROBLEMS:
            raise ValueError(f"unknown problem code {code!r}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.disclosure_id = disclosure_id

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]

    @property
    def title(self) -> str:
        return PROBLEMS[self.code][1]

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
