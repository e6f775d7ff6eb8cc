"""What every problem code of the gateway means, what usually causes it, what fixes it,
its HTTP status, and whether (and when) the same call can succeed later.

The one place that says so, for the server and the SDK alike (so the two cannot disagree):
it lives in the SDK because the SDK imports nothing of the server, while the server may
import this leaf (it imports nothing but the standard library). The exception classes of
both sides take their status from here (gateway.errors, gateway_client.errors), GET
/problems/<code> renders an entry as a page (gateway.web.problem_pages), and
problem_response (gateway.web.problems) sets `Retry-After` from the error's own
`retry_after_s` or, when the raise site knows no better, from the entry's
`retry_after_s`. Each problem document's `type` is the relative reference
`/problems/<code>` (RFC 9457 §3.1.1 allows one), so it resolves on the gateway itself.

The rule for `Retry-After`, decided per code and stated in each entry's `retry`: it is
sent on a 429, 502, 503 or 504 exactly when repeating the call can succeed without anyone
changing a file or a key — the store coming back, the partner recovering, the circuit
half-opening, a partner's newly published key being fetched, a load limit's slot or token
freeing (always, for a 429). A failure that waits for a
person (a missing secret, a TLS or redirect misconfiguration, a key file to replace)
carries none: a client that retried on a timer would only repeat the refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

PROBLEM_PATH: Final = "/problems/"
LEGACY_PROBLEM_BASE: Final = "https://gateway.invalid/problems/"
"""The absolute `type` prefix gateways before 2026-12 sent; clients accept both forms."""

LOG_RETRY_AFTER_S: Final = 5.0
"""Retry-After of `log_unavailable`: every request tries the store afresh, so a short wait
suffices, and a few seconds keeps a database that is coming back from a stampede."""

PARTNER_RETRY_AFTER_S: Final = 8.0
"""Retry-After of a transient partner failure whose partner named no wait of its own: the
longest pause the gateway makes between its own tries (gateway.outbound.delivery BACKOFF_MAX_S)."""

SHED_RETRY_AFTER_S: Final = 1.0
"""Retry-After of a request shed because a queue or an in-flight limit is full: a slot
frees as soon as one disclosure ends, so a second is a short wait that still spreads a
crowd of retries out (a rate limit says instead when its next token is due)."""

KEY_RECHECK_S: Final = 30.0
"""While every key of a JWKS partner has expired, the gateway fetches its JWKS again at
most this often (gateway.crypto.seal PartnerKeyCache): the Retry-After of partner_key_expired."""


@dataclass(frozen=True)
class ProblemKind:
    """One problem code: the page GET /problems/<code> shows, and the HTTP status and title
    every problem document of this code carries."""

    code: str
    status: int
    title: str
    meaning: str
    causes: tuple[str, ...]
    fix: str
    retry: str
    """Whether a retry of the same call can succeed, and when (`Retry-After` or not)."""
    retry_after_s: float | None = None
    """Retry-After when the raise site sets none; None: no header unless the site sets one."""
    retry_after_when: str = ""
    """In a few words, when answers of this code carry Retry-After; empty: never."""

    @property
    def type(self) -> str:
        return PROBLEM_PATH + self.code


_NO_RETRY = (
    "Repeating the same call gives the same answer: no `Retry-After`. Change what the fix "
    "says first."
)
_REFUSAL_RETRY = (
    "Repeating the same call gives the same refusal until the facts change (a consent is "
    "recorded, a lawful request approved, a partner file reloaded): no `Retry-After`."
)

_KINDS: Final = (
    ProblemKind(
        "unauthenticated",
        401,
        "Caller not authenticated",
        "The request carries no credentials the gateway accepts, so it does not know which "
        "internal service is calling.",
        (
            "No `Authorization: Bearer …` header (and no client certificate over mTLS).",
            "The token expired, names another issuer or audience than config.toml `[auth]`, "
            "or is signed by a key not in the configured JWKS.",
            "The token uses `alg: none` or an HS* algorithm, which are never accepted.",
        ),
        "Send a fresh access token of your service (`gateway token CALLER_ID` on a "
        "development setup; your identity provider in production), whose `sub` is a "
        "`[[callers]]` id. The `WWW-Authenticate` header names the scheme.",
        "Retry only with a valid token: no `Retry-After`.",
    ),
    ProblemKind(
        "forbidden",
        403,
        "Caller may not do this",
        "The caller is authenticated but config.toml does not allow it this partner, "
        "operation or purpose, or it lacks the role the endpoint needs.",
        (
            "The `[[callers]]` entry's `partners` or `purposes` does not list this one.",
            "The endpoint needs a role (`discloser`, `consent_writer`, `reviewer`, "
            "`rights_officer`) the caller does not hold.",
            "A client certificate's CN is not a configured caller.",
        ),
        "Call with a service that has the right, or ask the gateway's operators to add the "
        "partner, purpose or role to that caller in config.toml (the detail names which).",
        _NO_RETRY,
    ),
    ProblemKind(
        "unknown_partner",
        404,
        "Unknown partner",
        "No onboarded partner has this id: there is no `partners/<id>.toml` for it.",
        (
            "A typing mistake in `partner`.",
            "The partner was never onboarded, or its file was removed.",
        ),
        "Use a partner id that `gateway partners list` shows, or onboard the partner with a "
        "partner file and reload the gateway.",
        _NO_RETRY,
    ),
    ProblemKind(
        "unknown_operation",
        404,
        "Unknown operation",
        "The partner exists but its file has no `[operations.<name>]` of this name.",
        (
            "A typing mistake in `operation`.",
            "The operation is planned but not yet in the partner file.",
        ),
        "Use an operation the partner's file defines (`gateway partners list` shows them).",
        _NO_RETRY,
    ),
    ProblemKind(
        "unknown_subject",
        404,
        "Unknown subject",
        "The gateway holds nothing about this subject id.",
        ("The subject id is mistyped, or no consent or profile was ever recorded for it.",),
        "Check the subject id; record a consent or profile first where that is the intent.",
        _NO_RETRY,
    ),
    ProblemKind(
        "not_found",
        404,
        "Not found",
        "There is nothing at this path, or the resource it names does not exist.",
        (
            "A mistyped path (GET /openapi.json lists every route).",
            "An id (consent, lawful request, log index, problem code) that does not exist.",
        ),
        "Use a path from GET /openapi.json and an id the gateway gave you.",
        _NO_RETRY,
    ),
    ProblemKind(
        "method_not_allowed",
        405,
        "Method not allowed",
        "The path exists but not for this HTTP method.",
        ("A GET where a POST is meant, or the other way round.",),
        "Use a method the `Allow` header of the answer names.",
        _NO_RETRY,
    ),
    ProblemKind(
        "invalid_request",
        400,
        "Invalid request",
        "The request cannot be read as the contract describes: the detail names the key, "
        "the rule it breaks and what would pass.",
        (
            "Malformed JSON, a wrong Content-Type, wrong types, a missing or unknown key.",
            "A value outside a closed vocabulary (purpose, legal basis, category).",
            "A NUL character or a lone surrogate in a string; nesting deeper than "
            "server.max_json_depth.",
        ),
        "Fix the body or query as the detail says; GET /openapi.json has every schema.",
        _NO_RETRY,
    ),
    ProblemKind(
        "payload_too_large",
        413,
        "Payload too large",
        "The request body is larger than the gateway accepts.",
        ("A body over `server.max_body_bytes` of config.toml.",),
        "Send less (only the fields the partner operation needs), or raise "
        "server.max_body_bytes if the limit is too tight for a legitimate use.",
        _NO_RETRY,
    ),
    ProblemKind(
        "uri_too_long",
        414,
        "Request line too long",
        "The request line (method, path and query) is longer than the gateway's HTTP parser "
        "reads (8190 bytes). The answer quotes nothing of it.",
        ("A subject id, filter or other value far longer than any real one in the path or query.",),
        "Shorten the path or query; long values belong in a request body.",
        _NO_RETRY,
    ),
    ProblemKind(
        "headers_too_large",
        431,
        "Request header too large",
        "A request header is longer than the gateway's HTTP parser reads (8190 bytes). The "
        "answer quotes nothing of it.",
        ("An oversized bearer token or cookie.", "A client or proxy adding huge headers."),
        "Send headers of normal size: a bearer token from the company's identity provider, "
        "no oversized cookies.",
        _NO_RETRY,
    ),
    ProblemKind(
        "purpose_not_allowed",
        403,
        "Purpose not allowed",
        "The partner operation does not serve this purpose: its partner file does not list "
        "it under `purposes`.",
        ("The disclosure asks for a purpose the agreement with this partner does not cover.",),
        "Use a purpose the operation lists; if the agreement covers more, the partner file "
        "must say so first.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "legal_basis_not_allowed",
        403,
        "Legal basis not allowed",
        "The partner operation does not accept this legal basis: its partner file does not "
        "list it under `legal_bases`.",
        ("The disclosure names a basis the operation was not onboarded for.",),
        "Use a legal basis the operation lists.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "consent_required",
        403,
        "Consent required",
        "The legal basis is `consent` and no consent of the subject covers this purpose "
        "and partner.",
        (
            "The customer never consented to this purpose, or not for this partner or "
            "partner category.",
        ),
        "Ask the customer for consent and record it (POST /v1/consents), then call again.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "consent_withdrawn",
        403,
        "Consent withdrawn",
        "The consent that covered this disclosure was withdrawn; it counts for no "
        "disclosure that starts after the withdrawal.",
        ("The customer withdrew consent (app, web, support).",),
        "Do not disclose; only a new consent from the customer allows it again.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "consent_expired",
        403,
        "Consent expired",
        "The consent that covered this disclosure has passed its `expires_at`.",
        ("The consent was time-limited and the time has passed.",),
        "Ask the customer to renew the consent and record the new one.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "explicit_consent_required",
        403,
        "Explicit consent required",
        "The payload holds a special-category (sensitive) field, which needs a consent "
        "naming that category explicitly.",
        (
            "A field such as `health_status` or `religion` is sent under a consent without "
            "`special_categories` naming it.",
        ),
        "Leave the field out, or obtain and record an explicit consent naming the category.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "subject_restricted",
        403,
        "Subject restricted processing",
        "The customer objected to or restricted the processing of their data: only "
        "`legal_obligation` and `vital_interest` disclosures pass while that holds.",
        ("A restriction was recorded (PUT /v1/subjects/{subject}/restriction).",),
        "Do not disclose; the restriction is lifted only by the customer's request.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "subject_under_age",
        403,
        "Subject under age",
        "The subject is under 14, and the privacy policy allows no such disclosure of a "
        "child's data.",
        ("The payload's or the stored profile's date of birth makes the subject under 14.",),
        "Do not disclose; if the date of birth is wrong, correct the profile.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "date_of_birth_conflict",
        403,
        "Dates of birth disagree",
        "The payload's `data.date_of_birth` and the subject's stored profile both say 14 or "
        "over but are different dates. The gateway does not guess which is true, and a "
        "payload never overrides the stored profile.",
        (
            "The service holds an outdated or mistyped date of birth.",
            "The stored profile (PUT /v1/subjects/{id}/profile) is wrong.",
        ),
        "Send the stored date (or no date of birth), or correct the profile first "
        "(PUT /v1/subjects/{id}/profile, or a rectification). Legal obligation and vital "
        "interest disclosures are not refused for this.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "legal_request_required",
        403,
        "Approved lawful request required",
        "A `legal_obligation` disclosure must name a lawful request that two reviewers "
        "approved and that covers this subject and partner.",
        (
            "No `legal_request` in the body.",
            "The request is still pending (one approval or none), or does not cover this "
            "subject or partner.",
            "The request was rejected by a reviewer: a rejection is final.",
        ),
        "Register the authority's request (POST /v1/legal-requests), have two reviewers "
        "approve it, then send its id in `legal_request`; after a rejection, register the "
        "authority's new request.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "policy_not_in_force",
        403,
        "Consent given under a policy no longer in force",
        "The consent was given under a privacy-policy version older than "
        "`[policy] min_consent_version`, so it no longer counts.",
        ("The privacy policy changed since the customer consented.",),
        "Ask the customer to consent again under the policy in force.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "partner_suspended",
        403,
        "Partner suspended",
        "A reviewer suspended all disclosures to this partner (for example after a breach "
        "at the partner).",
        ("`gateway partners suspend` or the review page's partner view.",),
        "Wait until a reviewer resumes the partner (`gateway partners resume ID`).",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "agreement_expired",
        403,
        "Data-processing agreement expired",
        "The data-processing agreement with the partner ended (`agreement_expires_on` of "
        "its file has passed), so nothing may be disclosed to it.",
        ("The agreement was not renewed in time.",),
        "Renew the agreement, set the new `agreement_expires_on` in the partner file and "
        "reload the gateway.",
        _REFUSAL_RETRY,
    ),
    ProblemKind(
        "partner_key_expired",
        503,
        "Partner encryption key expired",
        "Every encryption key the gateway knows for the partner has expired, and an expired "
        "key is never used: nothing can be encrypted to the partner. Nothing is wrong with "
        "the caller's right to disclose, hence 503 and not 403.",
        (
            "The partner rotated its key late, or its JWKS still lists only expired keys.",
            "The partner's key file in keys/partners/ holds an expired key.",
        ),
        "The partner publishes a current key at its `public_key_url` (the gateway fetches "
        "it by itself), or sends one that replaces its `public_key` file (then reload).",
        "For a partner with a `public_key_url`, yes: the gateway looks for a new key at "
        f"most every {KEY_RECHECK_S:.0f} s while all keys have expired, and "
        "`Retry-After` says when the next look is due. For a partner with a key file, "
        "no `Retry-After`: only an operator replacing the file and reloading ends it.",
        retry_after_when="for a partner with a public_key_url",
    ),
    ProblemKind(
        "conflict",
        409,
        "Conflict",
        "The resource is in a state that refuses this request.",
        (
            "An Idempotency-Key reused for a different body, or still in progress.",
            "An id (consent, lawful request) that already exists; an emergency disclosure "
            "already justified; a lawful request already approved by this reviewer.",
            "A lawful request approved or rejected that is already rejected, or already "
            "approved (a rejection is final), often because another reviewer acted first: "
            "the detail names who.",
        ),
        "Use a new Idempotency-Key or id for a new request; for a key still in progress, "
        "wait for the first request's answer; for a lawful request, read its state (GET "
        "/v1/legal-requests/{id}) before acting again.",
        "Only a key still in progress can succeed later (when the first request ends); the "
        "others need a new key or id. No `Retry-After`.",
    ),
    ProblemKind(
        "caller_rate_limited",
        429,
        "Caller over its limit",
        "The calling service already has its `max_in_flight` disclosures under way through "
        "this gateway instance, or has used up its `rate`: the request was shed at once, "
        "before anything was read, decided or logged, and nothing was sent.",
        (
            "The service sends faster than its `[[callers]]` entry in config.toml allows "
            "(`rate`, `rate_burst`, `max_in_flight`), e.g. a batch job without pacing.",
            "A compromised or looping service: the limit is what keeps it from draining its "
            "allowlist at full speed.",
        ),
        "Slow down: wait for `Retry-After`, then retry the same call with the same "
        "Idempotency-Key. If the load is legitimate, ask the operators to raise the "
        "caller's limits in config.toml.",
        "Yes: `Retry-After` is always sent — when the caller's next token is due under "
        f"its `rate`, else {SHED_RETRY_AFTER_S:.0f} s (an in-flight slot frees as soon as "
        "one of its disclosures ends). The key is not spent: nothing was sent.",
        retry_after_s=SHED_RETRY_AFTER_S,
        retry_after_when="always",
    ),
    ProblemKind(
        "partner_rate_limited",
        429,
        "Partner limit reached",
        "The partner's file limits how many disclosures go to it at once (`max_in_flight`) "
        "or how fast (`rate`), per gateway instance, and this one would exceed it: the "
        "request was shed at once, before anything was decided or logged, and nothing was "
        "sent.",
        (
            "More disclosures to this partner than its file allows at once, often because "
            "the partner answers slowly and deliveries pile up.",
            "A burst of calls faster than the partner's `rate` (and `rate_burst`).",
        ),
        "Wait for `Retry-After`, then retry the same call with the same Idempotency-Key. "
        "Operators: the limits are the partner's (its agreement or its capacity); raise "
        "them in `partners/<id>.toml` only with the partner's consent, then reload.",
        "Yes: `Retry-After` is always sent — when the partner's next token is due under "
        f"its `rate`, else {SHED_RETRY_AFTER_S:.0f} s (a slot frees as soon as one "
        "delivery to it ends). The key is not spent: nothing was sent.",
        retry_after_s=SHED_RETRY_AFTER_S,
        retry_after_when="always",
    ),
    ProblemKind(
        "log_unavailable",
        503,
        "Disclosure log unavailable",
        "The disclosure log (the store) cannot be written or read. A disclosure is never "
        "sent unless its intent entry is durable first, so nothing was sent.",
        (
            "The database is down, restarting, full, or unreachable over the network.",
            "Several instances stored checkpoints at the same moment (rare; transient).",
        ),
        "Nothing for the caller: retry later with the same Idempotency-Key. Operators: "
        "GET /readyz says what the store answered.",
        f"Yes: `Retry-After` is sent ({LOG_RETRY_AFTER_S:.0f} s); the same call with the "
        "same Idempotency-Key may be repeated then, and nothing was sent the first time.",
        retry_after_s=LOG_RETRY_AFTER_S,
        retry_after_when="always",
    ),
    ProblemKind(
        "log_overloaded",
        503,
        "Disclosure log overloaded",
        "More log entries wait for their commit than `[log] max_pending_appends` allows: "
        "the store is not keeping up. The disclosure was refused at once, before anything "
        "was logged, instead of queueing behind the others; nothing was sent. A disclosure "
        "whose intent is already logged is never refused for this.",
        (
            "The database is slow (disk saturated, a failover, a long lock) while requests "
            "keep arriving.",
            "`[log] max_pending_appends` set lower than the load this instance carries.",
        ),
        "Nothing for the caller: retry after `Retry-After` with the same Idempotency-Key. "
        "Operators: see `gateway_log_pending_appends` and `gateway_log_append_seconds` on "
        "/metrics, and what slows the store.",
        f"Yes: `Retry-After` is always sent ({SHED_RETRY_AFTER_S:.0f} s); nothing was "
        "sent or logged, so the same call with the same Idempotency-Key may be repeated.",
        retry_after_s=SHED_RETRY_AFTER_S,
        retry_after_when="always",
    ),
    ProblemKind(
        "sign_in_unavailable",
        503,
        "Sign-in provider unavailable",
        "The review site's OpenID provider (`[oidc] issuer`) could not be used: its "
        "discovery document, JWKS or token endpoint did not answer, or answered something "
        "the gateway cannot use. No one was signed in; nothing else was affected.",
        (
            "The provider is down or unreachable from the gateway's host.",
            "`[oidc] issuer` names a URL that is not that provider's issuer (its discovery "
            "document names another), or its JWKS holds no usable public key.",
        ),
        "Try again later. Operators: the detail and the application log's WARNING name the "
        "URL and what it answered; while the provider stays down, `[oidc] allow_passwords "
        "= true` is the break-glass for the `[[reviewers]]` password accounts.",
        f"Yes, once the provider answers: `Retry-After` is sent ({LOG_RETRY_AFTER_S:.0f} s).",
        retry_after_s=LOG_RETRY_AFTER_S,
        retry_after_when="always",
    ),
    ProblemKind(
        "partner_unavailable",
        502,
        "Partner unavailable",
        "The partner gave no usable answer after the gateway's retries, or cannot be "
        "reached safely. A delivery attempt may have reached it (see the log's outcome).",
        (
            "The partner is down, refuses connections, or kept answering 408, 429 or 5xx.",
            "Its token endpoint or JWKS URL failed.",
            "It answered with a redirect (never followed), an oversized reply, a reply the "
            "gateway cannot decrypt, or a 5xx that is not retried (501, 505).",
            "TLS verification failed, or a secret or certificate the partner file names "
            "is missing.",
        ),
        "Transient failures pass by themselves. The others need the operators: fix "
        "`base_url`, the certificate or secret the detail names, then reload.",
        "When the failure was transient (connection, timeout, 408/429/5xx, the token "
        "endpoint or JWKS fetch failing), `Retry-After` is sent: the partner's own "
        "Retry-After when it gave one, the breaker's remaining open time when this failure "
        f"opened the circuit, else {PARTNER_RETRY_AFTER_S:.0f} s (the longest pause "
        "between the gateway's own tries). "
        "When an operator must fix something first, no `Retry-After`. Retry with a new "
        "Idempotency-Key, knowingly: an attempt may have reached the partner.",
        retry_after_when="when the failure was transient",
    ),
    ProblemKind(
        "partner_timeout",
        504,
        "Partner timed out",
        "The partner did not answer within its `timeout_s` on the last of the gateway's "
        "tries. It may have received the data.",
        ("The partner is slow or overloaded; `timeout_s` in its file is too tight.",),
        "Retry later with a new Idempotency-Key, knowingly; if it persists, the partner's "
        "operators (or a larger `timeout_s`) must fix it.",
        "Yes: `Retry-After` is always sent — the breaker's remaining open time when this "
        f"failure opened the circuit, else {PARTNER_RETRY_AFTER_S:.0f} s.",
        retry_after_s=PARTNER_RETRY_AFTER_S,
        retry_after_when="always",
    ),
    ProblemKind(
        "circuit_open",
        503,
        "Partner circuit open",
        "The partner failed several deliveries in a row, so the gateway stops calling it "
        "for a cool-down (30 s); nothing was sent.",
        ("Repeated partner failures (see partner_unavailable and partner_timeout).",),
        "Wait: after the cool-down one trial delivery goes through; its success closes the "
        "circuit.",
        "Yes: `Retry-After` is the breaker's remaining open time (at least 1 s while a "
        "trial delivery is under way).",
        retry_after_s=30.0,
        retry_after_when="always (the breaker's remaining open time)",
    ),
    ProblemKind(
        "internal_error",
        500,
        "Internal error",
        "The gateway failed unexpectedly. Nothing more is shown to the caller; the "
        "operators have the details in the application log.",
        ("A bug, or a broken key or partner key file on the gateway's disk.",),
        "Tell the gateway's operators the time and the X-Request-Id of the answer.",
        "Maybe, once the operators fixed the cause: no `Retry-After`.",
    ),
)

CATALOGUE: Final[Mapping[str, ProblemKind]] = MappingProxyType({k.code: k for k in _KINDS})
"""Every problem code the gateway emits, in the order of the contract's table."""


def problem_code(type_uri: str) -> str:
    """The code of a problem document's `type`: `/problems/<code>` or the legacy absolute
    `https://gateway.invalid/problems/<code>` (the last path segment either way)."""
    return type_uri.rstrip("/").rsplit("/", 1)[-1]
