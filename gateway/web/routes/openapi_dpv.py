"""The OpenAPI schemas of consents as DPV JSON-LD records (gateway.policy.dpv): the
`application/ld+json` bodies of POST /v1/consents and GET /v1/subjects/{id}/consents, and
the context document. Apart from routes/openapi.py, which passes in its shared
primitives, so that the document's largest module does not grow by this media type."""

from __future__ import annotations

from typing import Any

from gateway import vocabulary as v
from gateway.policy import dpv

Schema = dict[str, Any]


def _const(value: str) -> Schema:
    return {"type": "string", "const": value}


def _array(items: Schema, **more: Any) -> Schema:
    return {"type": "array", "items": items, **more}


def consent_record_schemas(
    *, time: Schema, utc_time: Schema, subject_id: Schema, text: Schema
) -> dict[str, Schema]:
    """`ConsentRecordRequest` (what POST reads), `ConsentRecord` and `ConsentRecords`
    (what is answered), `JsonLdContext` (the served context)."""
    purposes = sorted(dpv.PURPOSE_OF_DPV)
    categories = [dpv.CATEGORY + c for c in v.PARTNER_CATEGORIES]
    fields = [dpv.FIELD + f for f in sorted(v.SPECIAL_FIELDS)]
    subject = {
        "type": "object",
        "additionalProperties": False,
        "required": ["identifier"],
        "properties": {"@type": _const("DataSubject"), "identifier": subject_id},
    }
    controller = {
        "type": "object",
        "required": ["@id"],
        "description": "This gateway's data controller ([controller] in config.toml); any "
        "other is a 400.",
        "properties": {
            "@id": {"type": "string"},
            "@type": _const("DataController"),
            "hasName": {"type": "string"},
        },
    }
    notice = {
        "type": "object",
        "additionalProperties": False,
        "required": ["version"],
        "properties": {
            "@id": {"type": "string", "description": f"{dpv.POLICY}<version>"},
            "@type": _const("PrivacyNotice"),
            "version": {
                "type": "string",
                "format": "date",
                "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                "description": "The privacy-policy version the subject agreed to: the version "
                "in force or an earlier one (a later one is a 400).",
            },
        },
    }
    special = {
        "type": "object",
        "additionalProperties": False,
        "required": ["@id"],
        "properties": {
            "@id": {"type": "string", "enum": fields},
            "@type": _const("SpecialCategoryPersonalData"),
        },
    }

    def state(kind: Schema, at: Schema) -> Schema:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["@type"],
            "properties": {
                "@type": kind,
                "isIndicatedAtTime": at,
                "hasIndicationMethod": text,
                "hasDuration": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["@type", "value"],
                    "properties": {"@type": _const("UntilTimeDuration"), "value": at},
                    "description": "The consent's expiry: later than the time given.",
                },
            },
        }

    members: Schema = {
        "@type": _const("ConsentRecord"),
        "hasDataSubject": subject,
        "hasDataController": controller,
        "hasPurpose": _array({"type": "string", "enum": purposes}, minItems=1),
        "hasLegalBasis": _const("Consent"),
        "hasRecipient": _array(
            {"type": "string", "pattern": f"^{dpv.PARTNER}.+$"},
            description=f"{dpv.PARTNER}<onboarded partner id>; any other id is a 400.",
        ),
        "recipientCategory": _array({"type": "string", "enum": categories}),
        "hasPersonalData": _array(special, description="Explicit consent for these fields."),
        "hasNotice": notice,
        "evidence": text,
    }
    return {
        "ConsentRecordRequest": {
            "type": "object",
            "description": "A consent as a W3C DPV consent record, in the compact form of "
            f"the gateway's context ({dpv.CONTEXT_PATH}); `@id` and `identifier` are the "
            "gateway's.",
            "additionalProperties": False,
            "required": [
                "@context",
                "@type",
                "hasDataSubject",
                "hasPurpose",
                "hasNotice",
                "hasConsentStatus",
            ],
            "anyOf": [
                {"required": ["hasRecipient"], "properties": {"hasRecipient": {"minItems": 1}}},
                {
                    "required": ["recipientCategory"],
                    "properties": {"recipientCategory": {"minItems": 1}},
                },
            ],
            "properties": {
                "@context": {
                    "description": f"The URL of {dpv.CONTEXT_PATH} on this gateway (or the "
                    "path alone), or that document's @context inline.",
                    "anyOf": [{"type": "string"}, {"type": "object"}],
                },
                **members,
                "hasConsentStatus": _array(
                    state(_const("ConsentGiven"), time), minItems=1, maxItems=1
                ),
            },
        },
        "ConsentRecord": {
            "type": "object",
            "description": "A consent as a W3C DPV consent record (a posted one also has "
            "`@context`); ConsentExpired once its expiry has passed, ConsentWithdrawn "
            "once withdrawn, ConsentInvalidated (no time) when given under a policy version "
            "older than [policy] min_consent_version (it lapsed).",
            "required": [
                "@id",
                "@type",
                "identifier",
                "hasDataSubject",
                "hasDataController",
                "hasPurpose",
                "hasLegalBasis",
                "hasNotice",
                "hasConsentStatus",
            ],
            "properties": {
                "@context": {"type": "string", "format": "uri"},
                "@id": {"type": "string", "description": f"{dpv.CONSENT}<consent id>"},
                "identifier": {"type": "string"},
                **members,
                "hasConsentStatus": _array(
                    state(
                        {
                            "enum": [
                                "ConsentGiven",
                                "ConsentExpired",
                                "ConsentWithdrawn",
                                "ConsentInvalidated",
                            ]
                        },
                        utc_time,
                    ),
                    minItems=1,
                ),
            },
        },
        "ConsentRecords": {
            "type": "object",
            "required": ["@context", "@graph"],
            "properties": {
                "@context": {"type": "string", "format": "uri"},
                "@graph": _array({"$ref": "#/components/schemas/ConsentRecord"}),
            },
        },
        "JsonLdContext": {
            "type": "object",
            "required": ["@context"],
            "properties": {"@context": {"type": "object"}},
        },
    }
