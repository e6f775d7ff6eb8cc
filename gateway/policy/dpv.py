"""A consent as a W3C Data Privacy Vocabulary (DPV 2) consent record in JSON-LD, and back.

`GET /v1/subjects/{id}/consents` answers `Accept: application/ld+json` with these records and
`POST /v1/consents` takes one with `Content-Type: application/ld+json` (CONTRACT §4.3).
The records are written in the compact form of one context, the package file
`consent-context.jsonld` that the gateway serves at `CONTEXT_PATH`; a reader expands them
with any JSON-LD processor, the gateway itself needs none. Every term is a DPV 2 term
(https://w3id.org/dpv#) or Dublin Core, except the two DPV has no term for, in the
gateway's own namespace `urn:disclosure-gateway:`: `recipientCategory` (a category of
partner, not a recipient itself) and `evidence` (the reference to the proof of consent).

Reading a record first translates it into the CONTRACT §4.3 body and then parses that with
`parse_consent`, so both shapes are refused for the same reasons; a refusal names the DPV
member (`'hasRecipient[0]'`), never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from gateway import vocabulary as v
from gateway.config.model import ControllerConfig
from gateway.errors import GatewayError, InvalidRequestError
from gateway.policy.facts import Consent, invalid, parse_consent

MEDIA_TYPE: Final = "application/ld+json"
CONTEXT_PATH: Final = "/v1/contexts/consent.jsonld"
CONTEXT_FILE: Final = "consent-context.jsonld"

DPV: Final = "https://w3id.org/dpv#"
GATEWAY_NS: Final = "urn:disclosure-gateway:"

# policy: II purposes → the DPV 2 purpose each one is (one to one, so a record reads back).
DPV_PURPOSES: Final[Mapping[str, str]] = {
    "service_provision": "ServiceProvision",
    "safety_security": "EnforceSecurity",
    "user_support": "CustomerCare",
    "research_development": "ResearchAndDevelopment",
    "legal": "LegalCompliance",
    "marketing": "Marketing",
}
PURPOSE_OF_DPV: Final[Mapping[str, str]] = {dpv: ours for ours, dpv in DPV_PURPOSES.items()}
assert set(DPV_PURPOSES) == set(v.PURPOSES), "every policy purpose needs its DPV purpose"

# Prefixes of the gateway's own IRIs (compact, as the context writes them).
PARTNER: Final = "gw:partner:"
CATEGORY: Final = "gw:partner-category:"
FIELD: Final = "gw:field:"
CONSENT: Final = "gw:consent:"
POLICY: Final = "gw:privacy-policy:"

# The members of a record that POST accepts; `@id` and `identifier` are the gateway's.
RECORD_MEMBERS: Final = (
    "@context",
    "@type",
    "hasDataSubject",
    "hasDataController",
    "hasPurpose",
    "hasLegalBasis",
    "hasRecipient",
    "recipientCategory",
    "hasPersonalData",
    "hasNotice",
    "hasConsentStatus",
    "evidence",
)
GIVEN: Final = "hasConsentStatus[0]"
# The CONTRACT §4.3 member → the DPV member that carries it, for the refusals of
# `parse_consent` when the body came as a record.
DPV_MEMBER: Final[Mapping[str, str]] = {
    "subject": "hasDataSubject.identifier",
    "purposes": "hasPurpose",
    "partners": "hasRecipient",
    "partner_categories": "recipientCategory",
    "special_categories": "hasPersonalData",
    "policy_version": "hasNotice.version",
    "obtained_at": f"{GIVEN}.isIndicatedAtTime",
    "expires_at": f"{GIVEN}.hasDuration.value",
    "method": f"{GIVEN}.hasIndicationMethod",
    "evidence": "evidence",
}
_QUOTED_MEMBER = re.compile(r"'(" + "|".join(DPV_MEMBER) + r")(\[\d+\])?'")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- a consent → its record ------------------------------------------------------------


def consent_record(
    consent: Consent,
    *,
    subject: str,
    controller: ControllerConfig,
    now: datetime,
    min_consent_version: str = "",
) -> dict[str, Any]:
    """One consent as a `dpv:ConsentRecord` (without `@context`). `subject` is the id the
    request named (the store keeps only a keyed reference); `now` decides `ConsentExpired`,
    `min_consent_version` ([policy]) `ConsentInvalidated`."""
    record: dict[str, Any] = {
        "@id": CONSENT + consent.id,
        "@type": "ConsentRecord",
        "identifier": consent.id,
        "hasDataSubject": {"@type": "DataSubject", "identifier": subject},
        "hasDataController": {
            "@id": controller.iri,
            "@type": "DataController",
            "hasName": controller.name,
        },
        "hasPurpose": sorted(DPV_PURPOSES[p] for p in consent.purposes),
        "hasLegalBasis": "Consent",
    }
    if consent.partners:
        record["hasRecipient"] = [PARTNER + p for p in sorted(consent.partners)]
    if consent.partner_categories:
        record["recipientCategory"] = [CATEGORY + c for c in sorted(consent.partner_categories)]
    if consent.special_categories:
        record["hasPersonalData"] = [
            {"@id": FIELD + f, "@type": "SpecialCategoryPersonalData"}
            for f in sorted(consent.special_categories)
        ]
    record["hasNotice"] = {
        "@id": POLICY + consent.policy_version,
        "@type": "PrivacyNotice",
        "version": consent.policy_version,
    }
    record["hasConsentStatus"] = list(
        consent_statuses(consent, now=now, min_consent_version=min_consent_version)
    )
    if consent.evidence:
        record["evidence"] = consent.evidence
    return record


def consent_statuses(
    consent: Consent, *, now: datetime, min_consent_version: str = ""
) -> Iterable[dict[str, Any]]:
    """The consent's states in time order: given; expired, once its expiry has passed;
    withdrawn; last, invalidated when not withdrawn and given under a policy version older
    than `min_consent_version` (it lapsed: no decision counts it). That state has no time:
    the lapse is an action entry of the log, not a column of the consent."""
    given: dict[str, Any] = {
        "@type": "ConsentGiven",
        "isIndicatedAtTime": _time(consent.obtained_at),
    }
    if consent.method:
        given["hasIndicationMethod"] = consent.method
    if consent.expires_at is not None:
        given["hasDuration"] = {"@type": "UntilTimeDuration", "value": _time(consent.expires_at)}
    later: list[tuple[datetime, str]] = []
    if consent.expires_at is not None and consent.expires_at <= now:
        later.append((consent.expires_at, "ConsentExpired"))
    if consent.withdrawn_at is not None:
        later.append((consent.withdrawn_at, "ConsentWithdrawn"))
    yield given
    for at, status in sorted(later):
        yield {"@type": status, "isIndicatedAtTime": _time(at)}
    if consent.withdrawn_at is None and consent.policy_version < min_consent_version:
        yield {"@type": "ConsentInvalidated"}


def consent_records(
    consents: Iterable[Consent],
    *,
    subject: str,
    controller: ControllerConfig,
    now: datetime,
    context: str,
    min_consent_version: str = "",
) -> dict[str, Any]:
    """A subject's consents as one JSON-LD document: `context` (the URL of the served
    context) and a `@graph` of records."""
    return {
        "@context": context,
        "@graph": [
            consent_record(
                c,
                subject=subject,
                controller=controller,
                now=now,
                min_consent_version=min_consent_version,
            )
            for c in consents
        ],
    }


# -- a record → a consent --------------------------------------------------------------


def parse_consent_record(
    body: object,
    *,
    consent_id: str,
    now: datetime,
    controller: ControllerConfig,
    is_our_context: Callable[[object], bool],
) -> Consent:
    """A record in the shape `consent_record` writes (without `@id` and `identifier`) →
    the Consent `parse_consent` makes of the same CONTRACT §4.3 body. `is_our_context`
    says whether a `@context` is the gateway's (its URL, or its content inline)."""
    plain = contract_body(body, controller=controller, is_our_context=is_our_context)
    try:
        return parse_consent(plain, consent_id=consent_id, now=now)
    except InvalidRequestError as refusal:
        raise named_for_record(refusal) from None


def named_for_record(refusal: GatewayError) -> GatewayError:
    """A CONTRACT §4.3 refusal whose detail names the DPV member instead (positions kept:
    a record's lists are translated in their order)."""

    def rename(match: re.Match[str]) -> str:
        return f"'{DPV_MEMBER[match.group(1)]}{match.group(2) or ''}'"

    return invalid(_QUOTED_MEMBER.sub(rename, refusal.detail))


def contract_body(
    body: object,
    *,
    controller: ControllerConfig,
    is_our_context: Callable[[object], bool],
) -> dict[str, Any]:
    """The CONTRACT §4.3 body a record says, refusing what is DPV-specific."""
    if not isinstance(body, dict):
        raise invalid("a consent record must be a JSON object")
    if "@id" in body or "identifier" in body:
        raise invalid(
            "'@id' and 'identifier' are set by the gateway; withdraw with "
            "POST /v1/consents/{id}/withdraw"
        )
    extra = sorted(set(body) - set(RECORD_MEMBERS))
    if extra:
        raise invalid(
            f"unknown consent record member {extra[0]!r}; valid: {', '.join(RECORD_MEMBERS)}"
        )
    if not is_our_context(body.get("@context")):
        raise invalid(
            f"'@context' must be the gateway's consent context, \"{CONTEXT_PATH}\" (its URL "
            "on this gateway) or that document's @context inline"
        )
    if body.get("@type") != "ConsentRecord":
        raise invalid("'@type' must be \"ConsentRecord\"")
    _check_controller(body.get("hasDataController"), controller)
    if body.get("hasLegalBasis", "Consent") not in ("Consent", "dpv:Consent", DPV + "Consent"):
        raise invalid("'hasLegalBasis' must be \"Consent\" (or left out)")
    plain: dict[str, Any] = {
        "subject": _subject(body.get("hasDataSubject")),
        "purposes": _purposes(body.get("hasPurpose")),
        "partners": _iris(body, "hasRecipient", PARTNER, "partner id"),
        "partner_categories": _iris(body, "recipientCategory", CATEGORY, "partner category"),
        "special_categories": _personal_data(body.get("hasPersonalData", [])),
        "policy_version": _notice_version(body.get("hasNotice")),
        **_given(body.get("hasConsentStatus")),
    }
    if "evidence" in body:
        plain["evidence"] = body["evidence"]
    return plain


def _expanded(value: object) -> object:
    """A compact IRI of ours (`gw:…`) as is; its full form (`urn:disclosure-gateway:…`)
    compacted, so either spelling is read alike."""
    if isinstance(value, str) and value.startswith(GATEWAY_NS):
        return "gw:" + value.removeprefix(GATEWAY_NS)
    return value


def _check_controller(value: object, controller: ControllerConfig) -> None:
    if value is None:
        return
    named = value.get("@id") if isinstance(value, dict) else value
    if named != controller.iri:
        raise invalid(
            "'hasDataController' must be this gateway's data controller "
            f"({controller.iri}, [controller] iri in config.toml) or left out"
        )


def _subject(value: object) -> object:
    if not isinstance(value, dict) or set(value) - {"@type", "identifier"}:
        raise invalid(
            '\'hasDataSubject\' must be {"@type": "DataSubject", "identifier": "<subject id>"}'
        )
    if value.get("@type", "DataSubject") not in ("DataSubject", "dpv:DataSubject"):
        raise invalid("'hasDataSubject.@type' must be \"DataSubject\"")
    return value.get("identifier")


def _purposes(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid("'hasPurpose' must be a list of at least one DPV purpose")
    purposes = []
    for position, purpose in enumerate(value):
        name = purpose.removeprefix("dpv:").removeprefix(DPV) if isinstance(purpose, str) else ""
        if name not in PURPOSE_OF_DPV:
            raise invalid(
                f"'hasPurpose[{position}]' is not one of: {', '.join(sorted(PURPOSE_OF_DPV))}"
            )
        purposes.append(PURPOSE_OF_DPV[name])
    return purposes


def _iris(body: Mapping[str, Any], member: str, prefix: str, what: str) -> list[str]:
    values = body.get(member, [])
    if not isinstance(values, list):
        raise invalid(f"'{member}' must be a list of IRIs {prefix}<{what}>")
    ids = []
    for position, value in enumerate(values):
        compact = _expanded(value)
        if not isinstance(compact, str) or not compact.startswith(prefix):
            raise invalid(f"'{member}[{position}]' must be an IRI {prefix}<{what}>")
        ids.append(compact.removeprefix(prefix))
    return ids


def _personal_data(values: object) -> list[str]:
    if not isinstance(values, list):
        raise invalid("'hasPersonalData' must be a list")
    fields = []
    for position, value in enumerate(values):
        node = value if isinstance(value, dict) else {"@id": value}
        compact = _expanded(node.get("@id"))
        if (
            set(node) - {"@id", "@type"}
            or node.get("@type", "SpecialCategoryPersonalData") != "SpecialCategoryPersonalData"
            or not isinstance(compact, str)
            or not compact.startswith(FIELD)
        ):
            raise invalid(
                f"'hasPersonalData[{position}]' must be "
                f'{{"@id": "{FIELD}<sensitive field>", "@type": "SpecialCategoryPersonalData"}}'
            )
        fields.append(compact.removeprefix(FIELD))
    return fields


def _notice_version(value: object) -> object:
    if not isinstance(value, dict) or "version" not in value:
        raise invalid(
            '\'hasNotice\' must be {"@type": "PrivacyNotice", "version": "<policy version '
            'YYYY-MM-DD>"}'
        )
    if (
        set(value) - {"@id", "@type", "version"}
        or value.get("@type", "PrivacyNotice") != "PrivacyNotice"
    ):
        raise invalid("'hasNotice' may hold only '@id', '@type' (\"PrivacyNotice\") and 'version'")
    version = value["version"]
    if "@id" in value and _expanded(value["@id"]) != f"{POLICY}{version}":
        raise invalid(f"'hasNotice.@id' must be {POLICY}<its version> (or left out)")
    return version


def _given(value: object) -> dict[str, Any]:
    """The one `ConsentGiven` state of a record to record: when, how, until when."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise invalid(
            "'hasConsentStatus' must be a list of one ConsentGiven state; ConsentWithdrawn "
            "and ConsentExpired are the gateway's (withdraw with POST /v1/consents/{id}/withdraw)"
        )
    given = value[0]
    if given.get("@type") != "ConsentGiven":
        raise invalid(f"'{GIVEN}.@type' must be \"ConsentGiven\"")
    extra = sorted(
        set(given) - {"@type", "isIndicatedAtTime", "hasIndicationMethod", "hasDuration"}
    )
    if extra:
        raise invalid(
            f"unknown member {extra[0]!r} of '{GIVEN}'; valid: @type, isIndicatedAtTime, "
            "hasIndicationMethod, hasDuration"
        )
    plain: dict[str, Any] = {}
    if "isIndicatedAtTime" in given:
        plain["obtained_at"] = given["isIndicatedAtTime"]
    if "hasIndicationMethod" in given:
        plain["method"] = given["hasIndicationMethod"]
    if "hasDuration" in given:
        duration = given["hasDuration"]
        if (
            not isinstance(duration, dict)
            or duration.get("@type") != "UntilTimeDuration"
            or set(duration) != {"@type", "value"}
        ):
            raise invalid(
                f"'{GIVEN}.hasDuration' must be "
                '{"@type": "UntilTimeDuration", "value": "<RFC 3339 expiry time>"}'
            )
        plain["expires_at"] = duration["value"]
    return plain
