"""The OpenAPI 3.1 document of the gateway's HTTP API (CONTRACT §4), served at GET /openapi.json.

It is written by hand, not derived from the handlers, so that it states the
contract precisely: closed vocabularies as enums, the exact body shapes the
parsers accept, every refusal as `application/problem+json` with one Problem
schema, and the headers a caller relies on (Disclosure-Id, Disclosure-Fields,
Retry-After, Idempotency-Key). tests/e2e/test_openapi.py keeps it in step with
the router (a route missing here, or a path documented but not served, fails)
and tests/e2e/test_bad_input.py lets schemathesis hold the server to it.

The review pages under /review/ are HTML for people, not API, and are left out.
"""

from __future__ import annotations

import copy
import json
from importlib import metadata
from typing import Any, Final

from aiohttp import web

from gateway import vocabulary as v
from gateway.disclosure.idempotency import MAX_IDEMPOTENCY_KEY
from gateway.errors import PROBLEM_BASE, PROBLEMS
from gateway.partners.standing import MAX_REASON
from gateway.policy import dpv
from gateway.policy.facts import CONSENT_MEMBERS, MAX_TEXT
from gateway.policy.request import FIELD_NAME_PATTERN, MAX_FIELD_NAME, MAX_ID
from gateway.problem_catalog import CATALOGUE
from gateway.rights import lawful_requests as legal_requests
from gateway.subject_id import GRAMMAR, MAX_SUBJECT_ID
from gateway.subject_id import PATTERN as SUBJECT_ID_PATTERN
from gateway.web.routes.openapi_dpv import consent_record_schemas

__all__ = ["UNDOCUMENTED_PREFIXES", "add_openapi_route", "openapi_document"]

# Routes under these prefixes are browser pages, deliberately outside the API document.
UNDOCUMENTED_PREFIXES: Final = ("/review/",)

PROBLEM_JSON: Final = "application/problem+json"
# The parsers' own limits, so the document cannot drift from what they enforce.
MAX_LEGAL_TEXT: Final = legal_requests.MAX_TEXT
MAX_LEGAL_SUBJECTS: Final = legal_requests.MAX_SUBJECTS

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _problem(description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


def _response(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1},
    }


def _body(schema: Schema, description: str) -> Schema:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _with_json_ld(message: Schema, schema: Schema) -> Schema:
    """A request body or response that is also sent as JSON-LD (gateway.policy.dpv)."""
    return {**message, "content": {**message["content"], dpv.MEDIA_TYPE: {"schema": schema}}}


def _text_string(max_length: int) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


# A string with at least one non-space character (the lawful-request parser strips).
def _stripped_text(max_length: int) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}


TIME: Final[Schema] = {
    "description": "An RFC 3339 time with a zone (e.g. 2026-01-31T09:00:00Z), or a date "
    "YYYY-MM-DD taken as midnight UTC.",
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date", "minLength": 10, "maxLength": 10},
    ],
}
# Log indexes and tree sizes: what a signed 64-bit column holds.
LOG_INDEX: Final[Schema] = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
UTC_TIME: Final[Schema] = {"type": "string", "format": "date-time"}
BASE64: Final[Schema] = {"type": "string", "pattern": r"^[A-Za-z0-9+/]*={0,2}$"}
# gateway.subject_id: one grammar for every subject id the API takes.
SUBJECT_ID: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_SUBJECT_ID,
    "pattern": SUBJECT_ID_PATTERN,
    "description": f"A subject id: {GRAMMAR}. Any other id is a 400.",
}


def _schemas() -> dict[str, Schema]:
    scalar = {"type": ["string", "number", "boolean", "null"]}
    field_name: Schema = {"pattern": FIELD_NAME_PATTERN, "maxLength": MAX_FIELD_NAME}
    payment_record: Schema = {
        "type": "object",
        "description": "A nested payment object; keys other than these are withheld.",
        "properties": {key: scalar for key in sorted(v.PAYMENT_RECORD_KEYS)},
        "propertyNames": field_name,
    }
    data_properties: dict[str, Schema] = {}
    for field in sorted(v.FIELDS):
        if field == "payment_records":
            data_properties[field] = {
                "oneOf": [payment_record, {"type": "array", "items": payment_record}]
            }
        elif field == "date_of_birth":
            data_properties[field] = {"type": ["string", "null"], "format": "date"}
        else:
            data_properties[field] = scalar
    problem_codes = sorted(PROBLEMS)
    return {
        "Problem": {
            "type": "object",
            "description": "An RFC 9457 problem document: every refusal and failure.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri-reference",
                    "enum": [PROBLEM_BASE + code for code in problem_codes],
                    "description": f"{PROBLEM_BASE}<code>, a reference relative to the "
                    "gateway (RFC 9457 §3.1.1): GET it for what the code means, its causes, "
                    "its fix and whether a retry can succeed.",
                },
                "title": {"type": "string", "minLength": 1},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {
                    "type": "string",
                    "description": "What is wrong and what would make it pass; never a "
                    "personal value.",
                },
                "disclosure_id": {
                    "type": "string",
                    "description": "The disclosure id, where one was assigned.",
                },
            },
        },
        "ProblemCode": {"type": "string", "enum": sorted(PROBLEMS)},
        "Purpose": {"type": "string", "enum": list(v.PURPOSES)},
        "LegalBasis": {"type": "string", "enum": list(v.LEGAL_BASES)},
        "PartnerCategory": {"type": "string", "enum": list(v.PARTNER_CATEGORIES)},
        "SpecialCategory": {"type": "string", "enum": sorted(v.SPECIAL_FIELDS)},
        "Transform": {"type": "string", "enum": list(v.TRANSFORMS)},
        "DisclosureData": {
            "type": "object",
            "description": "Field names to values. A field no category knows is withheld and "
            "named in the decision's `withheld` (the log counts it, never names it); a "
            "name that is not lower_snake_case is refused; `password` is never disclosed.",
            "properties": data_properties,
            "additionalProperties": True,
            "propertyNames": field_name,
        },
        "DisclosureRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["partner", "operation", "purpose", "legal_basis", "subject", "data"],
            "properties": {
                "partner": {**_text_string(MAX_ID), "examples": ["lao-credit-bureau"]},
                "operation": {**_text_string(MAX_ID), "examples": ["credit_check"]},
                "purpose": _ref("Purpose"),
                "legal_basis": _ref("LegalBasis"),
                "subject": SUBJECT_ID,
                "data": _ref("DisclosureData"),
                "legal_request": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "description": "An approved lawful request covering the subject and the "
                    "partner; required for `legal_obligation`.",
                },
            },
            "examples": [
                {
                    "partner": "lao-credit-bureau",
                    "operation": "credit_check",
                    "purpose": "service_provision",
                    "legal_basis": "contract",
                    "subject": "6f1c2a7e-0000-4000-8000-000000000001",
                    "data": {"name": "Example Name", "date_of_birth": "1990-04-02", "uuid": "u-1"},
                }
            ],
        },
        "Decision": {
            "type": "object",
            "required": [
                "allowed",
                "problem",
                "reasons",
                "disclosed",
                "withheld",
                "needs_review",
            ],
            "properties": {
                "allowed": {"type": "boolean"},
                "problem": _nullable(_ref("ProblemCode")),
                "reasons": {"type": "array", "items": {"type": "string"}},
                "disclosed": {
                    "type": "object",
                    "additionalProperties": _ref("Transform"),
                    "description": "Field name → the transform applied before sending.",
                },
                "withheld": {"type": "array", "items": {"type": "string"}},
                "withheld_reasons": {"type": "object", "additionalProperties": {"type": "string"}},
                "needs_review": {"type": "boolean"},
                "consent_id": {"type": ["string", "null"]},
                "legal_request_id": {"type": ["string", "null"]},
                "bound_by_policy_version": {"type": ["string", "null"]},
            },
        },
        "ConsentRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["subject", "purposes", "policy_version"],
            "anyOf": [
                {"required": ["partners"], "properties": {"partners": {"minItems": 1}}},
                {
                    "required": ["partner_categories"],
                    "properties": {"partner_categories": {"minItems": 1}},
                },
            ],
            "properties": {
                "subject": SUBJECT_ID,
                "purposes": {"type": "array", "minItems": 1, "items": _ref("Purpose")},
                "partners": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Ids of onboarded partners; any other id is a 400 naming "
                    "the onboarded ones.",
                },
                "partner_categories": {"type": "array", "items": _ref("PartnerCategory")},
                "special_categories": {
                    "type": "array",
                    "items": _ref("SpecialCategory"),
                    "description": "Explicit consent for these sensitive fields.",
                },
                "policy_version": {
                    "type": "string",
                    "format": "date",
                    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                    "description": "The privacy-policy version (its update date) the subject "
                    "agreed to: the version in force or an earlier one (a later one is a 400).",
                },
                "obtained_at": {
                    **TIME,
                    "description": "When the subject gave it (default: now); not in the future.",
                },
                "expires_at": {
                    "anyOf": [TIME, {"type": "null"}],
                    "description": "Later than obtained_at, or null / left out.",
                },
                "method": {**_text_string(MAX_TEXT), "type": ["string", "null"]},
                "evidence": {**_text_string(MAX_TEXT), "type": ["string", "null"]},
            },
        },
        "Consent": {
            "type": "object",
            "description": "`subject` is the id the request named; a withdrawal (the "
            "consent named by its own id) has none: the gateway keeps only a keyed reference.",
            "required": [name for name in CONSENT_MEMBERS if name != "subject"],
            "properties": {
                "id": {"type": "string"},
                "subject": {"type": "string"},
                "purposes": {"type": "array", "items": _ref("Purpose")},
                "partners": {"type": "array", "items": {"type": "string"}},
                "partner_categories": {"type": "array", "items": _ref("PartnerCategory")},
                "special_categories": {"type": "array", "items": _ref("SpecialCategory")},
                "policy_version": {"type": "string"},
                "obtained_at": UTC_TIME,
                "expires_at": _nullable(UTC_TIME),
                "withdrawn_at": _nullable(UTC_TIME),
                "method": {"type": "string"},
                "evidence": {"type": "string"},
                "notices": {
                    **_ref("WithdrawalNotices"),
                    "description": "A withdrawal naming its subject: what each partner that "
                    "received data under the consent was told.",
                },
            },
        },
        "WithdrawalRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "subject": {
                    **SUBJECT_ID,
                    "description": "The consent's subject: the partners that received data "
                    "under the consent get a `consent_withdrawn` notice (none without it).",
                },
            },
        },
        "WithdrawalNotices": {
            "type": "object",
            "required": ["kind", "reference", "notices", "manual_follow_up", "notified_before"],
            "properties": {
                "kind": {"type": "string", "enum": ["consent_withdrawn"]},
                "reference": {"type": "string", "description": "CW-<consent id>"},
                "notices": {"type": "array", "items": _ref("Notice")},
                "manual_follow_up": {"type": "array", "items": _ref("Notice")},
                "notified_before": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Partners an earlier withdrawal of this consent told.",
                },
            },
        },
        "ConsentList": {
            "type": "object",
            "required": ["consents"],
            "properties": {"consents": {"type": "array", "items": _ref("Consent")}},
        },
        "RestrictionRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["restricted"],
            "properties": {
                "restricted": {"type": "boolean"},
                "reason": {"type": "string", "maxLength": MAX_TEXT},
            },
        },
        "Restriction": {
            "type": "object",
            "required": ["subject", "restricted"],
            "properties": {"subject": {"type": "string"}, "restricted": {"type": "boolean"}},
        },
        "ProfileRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["date_of_birth"],
            "properties": {"date_of_birth": {"type": "string", "format": "date"}},
        },
        "Profile": {
            "type": "object",
            "required": ["subject", "date_of_birth"],
            "properties": {
                "subject": {"type": "string"},
                "date_of_birth": {"const": "set", "description": "Never echoed back."},
            },
        },
        "LegalRequestCreate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["authority", "reference", "instrument", "subjects", "partners"],
            "properties": {
                "authority": _stripped_text(MAX_LEGAL_TEXT),
                "reference": _stripped_text(MAX_LEGAL_TEXT),
                "instrument": _stripped_text(MAX_LEGAL_TEXT),
                "subjects": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_LEGAL_SUBJECTS,
                    "items": SUBJECT_ID,
                },
                "partners": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                    "description": "Ids of onboarded partners; any other id is a 400 naming "
                    "the known ones.",
                },
                "received_at": TIME,
            },
        },
        "LegalRequest": {
            "type": "object",
            "required": [
                "id",
                "authority",
                "reference",
                "instrument",
                "partners",
                "subject_count",
                "received_at",
                "registered_by",
                "status",
                "approvals",
            ],
            "properties": {
                "id": {"type": "string"},
                "authority": {"type": "string"},
                "reference": {"type": "string"},
                "instrument": {"type": "string"},
                "partners": {"type": "array", "items": {"type": "string"}},
                "subjects": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Present when one request is read, not in lists.",
                },
                "subject_count": {"type": "integer", "minimum": 1},
                "received_at": UTC_TIME,
                "registered_by": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "approved", "rejected"]},
                "rejection": {
                    "type": "object",
                    "description": "Present when one rejected request is read.",
                    "required": ["reviewer", "at", "reason"],
                    "properties": {
                        "reviewer": {"type": "string"},
                        "at": UTC_TIME,
                        "reason": {"type": "string"},
                    },
                },
                "approvals": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["reviewer", "at"],
                        "properties": {"reviewer": {"type": "string"}, "at": UTC_TIME},
                    },
                },
            },
        },
        "RopaRow": {
            "type": "object",
            "description": "One partner × operation × purpose × legal basis of the record of "
            "processing: what the partner file declares beside what was sent in the window "
            "(a disclosure counts when its outcome is `sent`).",
            "required": [
                "partner",
                "operation",
                "purpose",
                "legal_basis",
                "disclosures",
                "declared_fields",
                "disclosed_fields",
                "never_sent",
                "drift",
            ],
            "properties": {
                "partner": {"type": "string"},
                "partner_name": {"type": ["string", "null"]},
                "category": {"type": ["string", "null"], "description": "The partner's."},
                "jurisdiction": {"type": ["string", "null"]},
                "retention_days": {"type": ["integer", "null"]},
                "operation": {"type": "string"},
                "purpose": {"type": "string"},
                "legal_basis": {"type": "string"},
                "declared": {
                    "type": "boolean",
                    "description": "Whether the partner files declare this pairing now.",
                },
                "declared_fields": {
                    "type": "object",
                    "description": "Field name → transform, as the partner file says now.",
                    "additionalProperties": {"type": "string"},
                },
                "disclosures": {"type": "integer", "minimum": 0},
                "disclosed_fields": {
                    "type": "object",
                    "description": "Field name → how many of the disclosures carried it.",
                    "additionalProperties": {"type": "integer"},
                },
                "never_sent": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Declared fields (not `drop`) no disclosure carried.",
                },
                "first_disclosure": {"oneOf": [UTC_TIME, {"type": "null"}]},
                "last_disclosure": {"oneOf": [UTC_TIME, {"type": "null"}]},
                "consents": {
                    "type": "integer",
                    "description": "Distinct consents the disclosures were made under.",
                },
                "consents_withdrawn": {
                    "type": "integer",
                    "description": "How many of those are withdrawn now.",
                },
                "drift": {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": [
                            "fields_never_sent",
                            "operation_never_used",
                            "never_used",
                            "consents_mostly_withdrawn",
                            "not_declared",
                        ],
                    },
                },
            },
        },
        "Ropa": {
            "type": "object",
            "required": ["since", "until", "rows"],
            "properties": {
                "since": UTC_TIME,
                "until": UTC_TIME,
                "rows": {"type": "array", "items": _ref("RopaRow")},
            },
        },
        "LegalRequestList": {
            "type": "object",
            "required": ["legal_requests"],
            "properties": {"legal_requests": {"type": "array", "items": _ref("LegalRequest")}},
        },
        "LegalRequestReject": {
            "type": "object",
            "required": ["reason"],
            "additionalProperties": False,
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000}},
        },
        "SubjectDisclosure": {
            "type": "object",
            "description": "One disclosure of the subject's data (portability report).",
            "required": [
                "time",
                "disclosure_id",
                "partner",
                "partner_category",
                "purpose",
                "legal_basis",
                "fields",
                "outcome",
            ],
            "properties": {
                "time": UTC_TIME,
                "disclosure_id": {"type": "string"},
                "partner": {"type": "string"},
                "partner_name": {"type": ["string", "null"]},
                "partner_category": _nullable(_ref("PartnerCategory")),
                "operation": {"type": "string"},
                "purpose": _ref("Purpose"),
                "legal_basis": _ref("LegalBasis"),
                "fields": {
                    "type": "object",
                    "additionalProperties": _ref("Transform"),
                    "description": "The field names sent, with their transforms.",
                },
                "outcome": {"type": ["string", "null"], "description": "sent, failed, unknown"},
                "partner_status": {"type": ["integer", "null"]},
                "maybe_received": {"type": "boolean"},
                "consent_id": {"type": ["string", "null"]},
                "legal_request_id": {"type": ["string", "null"]},
                "policy_version": {"type": ["string", "null"]},
                "retention_days": {"type": ["integer", "null"]},
                "notice": {
                    "type": ["string", "null"],
                    "enum": ["consent_withdrawn", "erasure_or_rectification", None],
                    "description": "The kind of notice this disclosure is, if one.",
                },
            },
        },
        "SubjectDisclosures": {
            "type": "object",
            "required": ["subject", "disclosures"],
            "properties": {
                "subject": {"type": "string"},
                "disclosures": {"type": "array", "items": _ref("SubjectDisclosure")},
                "actions": {
                    "type": "array",
                    "description": "The acts and reads concerning the subject (consents, "
                    "restrictions, rights requests, every read of this report — this one "
                    "included), as their `action` log entries say.",
                    "items": _ref("SubjectAction"),
                },
            },
        },
        "SubjectAction": {
            "type": "object",
            "required": ["index", "time", "actor", "credential", "action"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "time": UTC_TIME,
                "actor": {"type": "string"},
                "credential": {"type": "string"},
                "action": {"type": "string"},
            },
        },
        "ErasureRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kind": {
                    "type": "string",
                    "enum": ["erasure", "rectification"],
                    "default": "erasure",
                },
                "data": {
                    **_ref("DisclosureData"),
                    "description": "The subject's identifiers partners need to find them "
                    "(e.g. uuid, email), or the corrected fields of a rectification; each "
                    "partner's erasure operation decides what it receives. Default: "
                    '{"uuid": <subject>}.',
                },
            },
        },
        "Notice": {
            "type": "object",
            "required": ["partner", "status"],
            "properties": {
                "partner": {"type": "string"},
                "status": {"type": "string", "enum": ["sent", "failed", "manual"]},
                "disclosure_id": {"type": "string"},
                "partner_status": {"type": "integer"},
                "problem": _ref("ProblemCode"),
                "detail": {"type": "string"},
                "privacy_contact": {"type": "string"},
                "outbox_id": {
                    "type": "string",
                    "description": "Failed, and kept in the notice outbox: tried again "
                    "on a growing schedule (`gateway notices list`).",
                },
            },
        },
        "ErasureResult": {
            "type": "object",
            "description": "The notice sent to each partner that received the subject's data; "
            "partners without an erasure operation are listed for manual follow-up.",
            "required": ["kind", "reference", "notices", "manual_follow_up", "notified_before"],
            "properties": {
                "kind": {"type": "string", "enum": ["erasure", "rectification"]},
                "reference": {"type": "string", "description": "The rights request reference."},
                "notices": {"type": "array", "items": _ref("Notice")},
                "manual_follow_up": {"type": "array", "items": _ref("Notice")},
                "notified_before": {
                    "type": "array",
                    "items": _ref("EarlierNotice"),
                    "description": "Notices earlier erasure or rectification requests of the "
                    "same subject sent (from the log), oldest first.",
                },
                "gateway_copy": {
                    "type": "object",
                    "description": "Erasure only: what the gateway removed from its own "
                    "records of the subject, and what it kept and why.",
                    "required": ["removed", "kept"],
                    "properties": {
                        "removed": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["item"],
                                "properties": {
                                    "item": {
                                        "type": "string",
                                        "enum": ["consent_evidence", "date_of_birth"],
                                    },
                                    "count": {"type": "integer"},
                                },
                            },
                        },
                        "kept": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["item", "why"],
                                "properties": {
                                    "item": {
                                        "type": "string",
                                        "enum": [
                                            "consent_records",
                                            "under_age_marker",
                                            "restriction",
                                            "lawful_requests",
                                            "disclosure_log",
                                        ],
                                    },
                                    "why": {"type": "string"},
                                    "withdrawn_now": {"type": "integer"},
                                    "until": {"type": "string", "format": "date"},
                                },
                            },
                        },
                    },
                },
            },
        },
        "EarlierNotice": {
            "type": "object",
            "required": ["partner", "disclosure_id", "time", "reference", "outcome"],
            "properties": {
                "partner": {"type": "string"},
                "disclosure_id": {"type": "string"},
                "time": {"type": "string"},
                "reference": {
                    "type": ["string", "null"],
                    "description": "The earlier rights request (RR-…).",
                },
                "outcome": {"type": "string"},
            },
        },
        "ReceiptPending": {
            "type": "object",
            "required": ["status", "disclosure_id", "index", "detail", "retry_after"],
            "properties": {
                "status": {"type": "string", "enum": ["pending"]},
                "disclosure_id": {"type": "string"},
                "index": {"type": "integer", "minimum": 0},
                "detail": {"type": "string"},
                "retry_after": {"type": "integer", "minimum": 1},
            },
        },
        "LogEntry": {
            "type": "object",
            "required": ["index", "leaf_hash", "entry"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "leaf_hash": _nullable(BASE64),
                "entry": {
                    "type": "object",
                    "description": "The entry as logged (CONTRACT §5): no personal value.",
                    "required": ["kind", "disclosure_id"],
                    "properties": {
                        "kind": {
                            "type": "string",
                            "enum": ["intent", "outcome", "refused", "action"],
                        },
                        "disclosure_id": {"type": "string"},
                    },
                },
            },
        },
        "InclusionProof": {
            "type": "object",
            "required": ["index", "tree_size", "hashes"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "tree_size": {"type": "integer", "minimum": 1},
                "leaf_hash": BASE64,
                "hashes": {"type": "array", "items": BASE64, "description": "RFC 9162 order."},
            },
        },
        "ConsistencyProof": {
            "type": "object",
            "required": ["first", "second", "hashes"],
            "properties": {
                "first": {"type": "integer", "minimum": 0},
                "second": {"type": "integer", "minimum": 0},
                "hashes": {"type": "array", "items": BASE64, "description": "RFC 9162 order."},
            },
        },
        "JWKS": {
            "type": "object",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["kty", "kid"],
                        "properties": {
                            "kty": {"type": "string", "enum": ["EC", "RSA", "OKP"]},
                            "kid": {"type": "string"},
                        },
                        # Public halves only: any private member here would be a leak.
                        "not": {
                            "anyOf": [
                                {"required": [member]}
                                for member in ("d", "p", "q", "dp", "dq", "qi", "k")
                            ]
                        },
                    },
                }
            },
        },
        "SuspendRequest": {
            "type": "object",
            "required": ["reason"],
            "additionalProperties": False,
            "properties": {
                "reason": {
                    **_stripped_text(MAX_REASON),
                    "description": "Why (an incident or ticket reference; no personal data).",
                }
            },
        },
        "ResumeRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"reason": {"type": "string", "maxLength": MAX_REASON}},
        },
        "Suspension": {
            "type": "object",
            "required": ["partner", "reason", "by", "at"],
            "properties": {
                "partner": {"type": "string"},
                "reason": {"type": "string"},
                "by": {"type": "string", "description": "The reviewer or operator who acted."},
                "at": UTC_TIME,
            },
        },
        "SuspendResult": {
            "description": "The suspension in force; `changed` false when it already was.",
            "allOf": [
                _ref("Suspension"),
                {
                    "type": "object",
                    "required": ["suspended", "changed"],
                    "properties": {
                        "suspended": {"const": True},
                        "changed": {"type": "boolean"},
                    },
                },
            ],
        },
        "ResumeResult": {
            "type": "object",
            "required": ["partner", "suspended", "changed", "lifted"],
            "properties": {
                "partner": {"type": "string"},
                "suspended": {"const": False},
                "changed": {
                    "type": "boolean",
                    "description": "false when the partner was not suspended.",
                },
                "lifted": _nullable(_ref("Suspension")),
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "ProblemKind": {
            "type": "object",
            "description": "What a problem code means (gateway_client/problems.py).",
            "required": [
                "type",
                "code",
                "status",
                "title",
                "meaning",
                "causes",
                "fix",
                "retry",
                "retry_after_s",
                "retry_after_when",
            ],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "format": "uri-reference"},
                "code": {"type": "string", "enum": sorted(CATALOGUE)},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "title": {"type": "string", "minLength": 1},
                "meaning": {"type": "string", "minLength": 1},
                "causes": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "fix": {"type": "string", "minLength": 1},
                "retry": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Whether the same call can succeed later, and when.",
                },
                "retry_after_s": {
                    "type": ["number", "null"],
                    "description": "The Retry-After sent when the failure itself gives no "
                    "better figure; null: none unless the failure gives one.",
                },
                "retry_after_when": {
                    "type": "string",
                    "description": "When answers of this code carry Retry-After; empty: never.",
                },
            },
        },
        "ProblemIndex": {
            "type": "object",
            "required": ["problems"],
            "additionalProperties": False,
            "properties": {
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "code", "status", "title"],
                        "properties": {
                            "type": {"type": "string", "format": "uri-reference"},
                            "code": {"type": "string"},
                            "status": {"type": "integer"},
                            "title": {"type": "string"},
                        },
                    },
                }
            },
        },
        "Ready": {
            "type": "object",
            "required": ["status", "storage"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "degraded", "unavailable"]},
                "storage": {"type": "string"},
                "signing_keys": {"type": "integer", "minimum": 1},
                "detail": {
                    "type": "string",
                    "description": "Why degraded: the witness quorum is not met for the "
                    "latest checkpoint (it is submitted again until it is).",
                },
                "witnessing": {
                    "type": "object",
                    "description": "With a witness policy: its quorum, whether the last "
                    "submission met it, and why each witness that did not cosign did not.",
                    "properties": {
                        "quorum": {"type": "string"},
                        "quorum_met": {"type": ["boolean", "null"]},
                        "not_cosigned": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


def _exposure_schemas() -> dict[str, Schema]:
    """GET /v1/partners/{id}/exposure (breach scope, gateway.rights.exposure)."""
    counts: Schema = {
        "disclosures": {"type": "integer", "minimum": 0},
        "maybe_received": {
            "type": "integer",
            "minimum": 0,
            "description": "Of `disclosures`, those without an outcome `sent` that the partner "
            "may have received: a timeout after sending, outcome `unknown`, or in flight.",
        },
        "subjects": {
            "type": "integer",
            "minimum": 0,
            "description": "Distinct subject references (keyed per month: a customer "
            "disclosed in two months of the window counts twice).",
        },
        "special_category": {"type": "boolean"},
    }
    return {
        "ExposureCount": {
            "type": "object",
            "required": ["disclosures", "maybe_received", "subjects", "special_category"],
            "properties": {**counts, "category": {"type": "string"}},
        },
        "Exposure": {
            "type": "object",
            "required": [
                "partner",
                "since",
                "until",
                "disclosures",
                "maybe_received",
                "subjects",
                "special_category",
                "fields",
                "categories",
                "subject_refs",
                "next_cursor",
            ],
            "properties": {
                "partner": {"type": "string"},
                "since": {"type": "string", "format": "date-time"},
                "until": {"type": "string", "format": "date-time", "description": "Exclusive."},
                **counts,
                "fields": {
                    "type": "object",
                    "description": "Per field name: its counts, category and special flag.",
                    "additionalProperties": _ref("ExposureCount"),
                },
                "categories": {
                    "type": "object",
                    "additionalProperties": _ref("ExposureCount"),
                },
                "subject_refs": {
                    "type": "array",
                    "description": "One page, ordered by reference.",
                    "items": {
                        "type": "object",
                        "required": ["subject_ref", "disclosures", "sent"],
                        "properties": {
                            "subject_ref": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                            "disclosures": {"type": "integer", "minimum": 1},
                            "sent": {
                                "type": "boolean",
                                "description": "False: every disclosure of it only maybe received.",
                            },
                        },
                    },
                },
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` for the next page; null on the last.",
                },
            },
        },
    }


def _components() -> Schema:
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An RFC 9068 access token (iss, aud, sub = caller id, exp) "
                "signed by a key of the configured JWKS; `gateway token CALLER_ID` mints one "
                "for development.",
            }
        },
        "headers": {
            "DisclosureId": {
                "description": "The id of this disclosure in the log.",
                "schema": {"type": "string", "minLength": 1},
            },
            "DisclosureFields": {
                "description": "Comma-separated names of the fields sent to the partner.",
                "schema": {"type": "string"},
            },
            "DisclosureAcknowledgementStatus": {
                "description": "For a partner whose file asks for acknowledgements: what "
                "became of its signed receipt — valid, missing, or invalid; reason=<code> "
                "(the disclosure was delivered either way; the outcome log entry holds it).",
                "schema": {
                    "type": "string",
                    "pattern": "^(valid|missing|invalid; reason=[a-z_]+)$",
                },
            },
            "ReceiptLink": {
                "description": "Where the receipt of a disclosure that was sent can be "
                'fetched: `</v1/disclosures/{id}/receipt>; rel="receipt"` (§4.6).',
                "schema": {"type": "string"},
            },
            "RetryAfter": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            "IdempotencyReplayed": {
                "description": "`true` when this is the stored answer to an earlier request "
                "with the same Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]},
            },
            "WWWAuthenticate": {
                "description": "The authentication scheme expected.",
                "schema": {"type": "string"},
            },
        },
        "parameters": {
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A repeat with the same key and caller returns the first "
                "result and sends nothing again; a different body under the same key is a 409.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_IDEMPOTENCY_KEY,
                    # Printable ASCII without surrounding spaces (HTTP trims them).
                    "pattern": "^[!-~]([ -~]*[!-~])?$",
                },
            },
        },
        "responses": {
            "InvalidRequest": _problem(
                "invalid_request: malformed JSON, wrong types, unknown values or keys."
            ),
            "Unauthenticated": _problem(
                "unauthenticated: no bearer token, or one that does not verify.",
                {"WWW-Authenticate": _header("WWWAuthenticate")},
            ),
            "Forbidden": _problem("forbidden: the caller lacks the role this needs."),
            "NotFound": _problem("not_found / unknown_*: no such resource."),
            "Conflict": _problem("conflict: the resource is in a state that refuses this."),
            "PayloadTooLarge": _problem(
                "payload_too_large: the body exceeds server.max_body_bytes."
            ),
            "Unavailable": _problem(
                "log_unavailable: the store cannot be reached; nothing was done.",
                {"Retry-After": _header("RetryAfter")},
            ),
        },
        "schemas": {
            **_schemas(),
            **_exposure_schemas(),
            **consent_record_schemas(
                time=TIME,
                utc_time=UTC_TIME,
                subject_id=SUBJECT_ID,
                text={**_text_string(MAX_TEXT), "type": ["string", "null"]},
            ),
        },
    }


def _errors(*statuses: int) -> dict[str, Schema]:
    names = {
        400: "InvalidRequest",
        401: "Unauthenticated",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        413: "PayloadTooLarge",
        503: "Unavailable",
    }
    return {str(status): _response(names[status]) for status in statuses}


SECURED: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
# What any authenticated call that reads or writes the store can answer.
STORE_ERRORS: Final = (401, 403, 503)
BODY_ERRORS: Final = (400, 401, 403, 413, 503)


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    tag: str,
    roles: tuple[str, ...] = (),
    secured: bool = True,
    **extra: Any,
) -> Schema:
    description = f"Roles: {', '.join(roles)}." if roles else ""
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    op.update(extra)
    op["security"] = SECURED if secured else []
    op["responses"] = responses
    return op


def _paths() -> dict[str, Schema]:
    subject = _path_param("subject", "The subject's id, as the company knows it.", SUBJECT_ID)
    disclosure_headers = {
        "Disclosure-Id": _header("DisclosureId"),
        "Disclosure-Fields": _header("DisclosureFields"),
        "Disclosure-Acknowledgement-Status": _header("DisclosureAcknowledgementStatus"),
        "Idempotency-Replayed": _header("IdempotencyReplayed"),
    }
    refusal_headers = {
        "Disclosure-Id": _header("DisclosureId"),
        "Idempotency-Replayed": _header("IdempotencyReplayed"),
    }
    partner_reply = {
        "description": "The partner's own status and body (a JWE reply is decrypted). "
        "Only such a reply carries Disclosure-Fields; a 2xx one also a Link to the "
        "disclosure's receipt.",
        "headers": {**disclosure_headers, "Link": _header("ReceiptLink")},
        "content": {"application/json": {}, "*/*": {}},
    }
    disclosure_body = _body(_ref("DisclosureRequest"), "What to send, to whom, why.")

    def gateway_or_partner(description: str) -> Schema:
        # The gateway's refusal is a Problem; a partner's own 4xx is passed through as the
        # partner sent it, and only that carries Disclosure-Fields.
        return {
            "description": f"{description} Or the partner's own answer with this status.",
            "headers": disclosure_headers,
            "content": {PROBLEM_JSON: {"schema": _ref("Problem")}, "*/*": {}},
        }

    return {
        "/v1/disclosures": {
            "post": _operation(
                "createDisclosure",
                "Send personal data to a partner (decide, minimize, sign, encrypt, log, deliver).",
                {
                    "2XX": partner_reply,
                    "400": gateway_or_partner("invalid_request: the body breaks §4.1."),
                    "401": _response("Unauthenticated"),
                    "403": gateway_or_partner(
                        "forbidden, or a policy refusal (partner_suspended, agreement_expired, "
                        "purpose_not_allowed, consent_*, subject_restricted, "
                        "legal_request_required, …), logged as refused."
                    ),
                    "404": gateway_or_partner("unknown_partner / unknown_operation."),
                    "409": gateway_or_partner(
                        "conflict: the Idempotency-Key is in flight or was used for another body."
                    ),
                    "4XX": {
                        "description": "The partner's own 4xx answer, passed through.",
                        "headers": disclosure_headers,
                        "content": {"*/*": {}},
                    },
                    "413": _response("PayloadTooLarge"),
                    "429": _problem(
                        "caller_rate_limited or partner_rate_limited: a load limit of the "
                        "caller or the partner was reached, so the request was shed at once; "
                        "nothing was logged or sent and the Idempotency-Key is free again.",
                        {"Retry-After": _header("RetryAfter")},
                    ),
                    "502": _problem(
                        "partner_unavailable (after retries); Retry-After when the failure "
                        "was transient.",
                        {**refusal_headers, "Retry-After": _header("RetryAfter")},
                    ),
                    "503": _problem(
                        "log_unavailable (nothing sent), log_overloaded (the log's commit "
                        "queue is full: shed at once, nothing logged), circuit_open, or "
                        "partner_key_expired (every key of the partner expired; it must "
                        "publish a current one).",
                        {**refusal_headers, "Retry-After": _header("RetryAfter")},
                    ),
                    "504": _problem(
                        "partner_timeout.",
                        {**refusal_headers, "Retry-After": _header("RetryAfter")},
                    ),
                },
                tag="disclosures",
                roles=("discloser",),
                parameters=[{"$ref": "#/components/parameters/IdempotencyKey"}],
                requestBody=disclosure_body,
            )
        },
        "/v1/decisions": {
            "post": _operation(
                "decide",
                "Dry run: the decision for a disclosure body; sends nothing, writes nothing.",
                {
                    "200": _json(_ref("Decision"), "The decision with every failing rule."),
                    **_errors(*BODY_ERRORS),
                },
                tag="disclosures",
                roles=("discloser",),
                requestBody=disclosure_body,
            )
        },
        "/v1/consents": {
            "post": _operation(
                "createConsent",
                "Record a subject's consent.",
                {
                    "201": _with_json_ld(
                        _json(
                            _ref("Consent"),
                            "The consent, with its id; a record when one was posted.",
                        ),
                        _ref("ConsentRecord"),
                    ),
                    **_errors(*BODY_ERRORS),
                },
                tag="consent",
                roles=("consent_writer",),
                requestBody=_with_json_ld(
                    _body(
                        _ref("ConsentRequest"),
                        "The consent as obtained: CONTRACT §4.3, or a W3C DPV consent "
                        "record sent as application/ld+json.",
                    ),
                    _ref("ConsentRecordRequest"),
                ),
            )
        },
        "/v1/consents/{consent_id}/withdraw": {
            "post": _operation(
                "withdrawConsent",
                "Withdraw a consent; binds every disclosure that starts after the response.",
                {
                    "200": _json(
                        _ref("Consent"),
                        "The consent, with withdrawn_at set (and, given the subject, the "
                        "notices sent).",
                    ),
                    **_errors(*STORE_ERRORS, 400, 404),
                },
                tag="consent",
                roles=("consent_writer",),
                parameters=[_path_param("consent_id", "The id returned when it was recorded.")],
                requestBody={
                    **_body(
                        _ref("WithdrawalRequest"),
                        "Optional: the consent's subject, so partners that received data "
                        "under it are told.",
                    ),
                    "required": False,
                },
            )
        },
        "/v1/subjects/{subject}/consents": {
            "get": _operation(
                "listSubjectConsents",
                "Every consent of a subject, withdrawn ones included.",
                {
                    "200": _with_json_ld(
                        _json(
                            _ref("ConsentList"),
                            "The consents; as W3C DPV consent records when Accept prefers "
                            "application/ld+json to application/json.",
                        ),
                        _ref("ConsentRecords"),
                    ),
                    **_errors(400, *STORE_ERRORS),
                },
                tag="consent",
                roles=("consent_writer", "rights_officer", "reviewer"),
                parameters=[subject],
            )
        },
        dpv.CONTEXT_PATH: {
            "get": _operation(
                "getConsentContext",
                "The JSON-LD context of the consent records (W3C DPV terms, and the "
                "gateway's own for what DPV has no term for); cacheable for a week.",
                {
                    "200": {
                        "description": "The context document.",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {dpv.MEDIA_TYPE: {"schema": _ref("JsonLdContext")}},
                    },
                    "304": {"description": "Not modified (If-None-Match)."},
                },
                tag="consent",
                secured=False,
            )
        },
        "/v1/subjects/{subject}/restriction": {
            "put": _operation(
                "setRestriction",
                "Objection/restriction: while set, only legal_obligation and vital_interest "
                "disclosures pass.",
                {
                    "200": _json(_ref("Restriction"), "The restriction now in force."),
                    **_errors(*BODY_ERRORS),
                },
                tag="consent",
                roles=("consent_writer", "rights_officer"),
                parameters=[subject],
                requestBody=_body(_ref("RestrictionRequest"), "Set or lift the restriction."),
            )
        },
        "/v1/subjects/{subject}/profile": {
            "put": _operation(
                "setProfile",
                "The subject's date of birth, for the under-14 rule when a payload has none.",
                {
                    "200": _json(_ref("Profile"), "Recorded (the date is not echoed)."),
                    **_errors(*BODY_ERRORS),
                },
                tag="consent",
                roles=("consent_writer", "rights_officer"),
                parameters=[subject],
                requestBody=_body(_ref("ProfileRequest"), "The date of birth."),
            )
        },
        "/v1/subjects/{subject}/disclosures": {
            "get": _operation(
                "listSubjectDisclosures",
                "Every disclosure of the subject: when, partner, category, purpose, basis, "
                "fields, outcome (portability).",
                {
                    "200": {
                        "description": "The report, as JSON or CSV.",
                        "content": {
                            "application/json": {"schema": _ref("SubjectDisclosures")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, *STORE_ERRORS, 404),
                },
                tag="subject rights",
                roles=("rights_officer", "reviewer"),
                parameters=[
                    subject,
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
                    },
                ],
            )
        },
        "/v1/subjects/{subject}/erasure": {
            "post": _operation(
                "notifyErasure",
                "Send an erasure or rectification notice to every partner that received the "
                "subject's data and has an `erasure` operation; each notice is logged.",
                {
                    "200": _json(
                        _ref("ErasureResult"),
                        "The per-partner result (a replay: the first request's).",
                        {"Idempotency-Replayed": _header("IdempotencyReplayed")},
                    ),
                    **_errors(*BODY_ERRORS, 404, 409),
                },
                tag="subject rights",
                roles=("rights_officer",),
                parameters=[subject, {"$ref": "#/components/parameters/IdempotencyKey"}],
                requestBody=_body(_ref("ErasureRequest"), "Which notice to send."),
            )
        },
        "/v1/legal-requests": {
            "post": _operation(
                "registerLegalRequest",
                "Register an authority's lawful request; it starts `pending`.",
                {
                    "201": _json(_ref("LegalRequest"), "The registered request."),
                    **_errors(*BODY_ERRORS),
                },
                tag="lawful requests",
                roles=("rights_officer", "reviewer"),
                requestBody=_body(_ref("LegalRequestCreate"), "The request as received."),
            ),
            "get": _operation(
                "listLegalRequests",
                "Lawful requests, newest received first, optionally by status (subjects left out).",
                {
                    "200": _json(_ref("LegalRequestList"), "The requests."),
                    **_errors(400, *STORE_ERRORS),
                },
                tag="lawful requests",
                roles=("rights_officer", "reviewer"),
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "enum": ["pending", "approved", "rejected"],
                        },
                    }
                ],
            ),
        },
        "/v1/legal-requests/{request_id}": {
            "get": _operation(
                "getLegalRequest",
                "One lawful request, with its subjects.",
                {"200": _json(_ref("LegalRequest"), "The request."), **_errors(*STORE_ERRORS, 404)},
                tag="lawful requests",
                roles=("rights_officer", "reviewer"),
                parameters=[_path_param("request_id", "The id returned at registration.")],
            )
        },
        "/v1/legal-requests/{request_id}/approve": {
            "post": _operation(
                "approveLegalRequest",
                "Approve as a reviewer; two distinct reviewers, neither the registrant, make "
                "it `approved`.",
                {
                    "200": _json(_ref("LegalRequest"), "The request with this approval."),
                    **_errors(*STORE_ERRORS, 404),
                    "409": _problem(
                        "conflict: the request was rejected (a rejected request is never "
                        "approved: the authority's new request is registered anew), is "
                        "already approved by two reviewers, or this reviewer approved it "
                        "already; the detail names who acted first (of two reviewers acting "
                        "at once, exactly one wins)."
                    ),
                },
                tag="lawful requests",
                roles=("reviewer",),
                parameters=[_path_param("request_id", "The id returned at registration.")],
            )
        },
        "/v1/legal-requests/{request_id}/reject": {
            "post": _operation(
                "rejectLegalRequest",
                "Reject a pending request as a reviewer other than the registrant, with a "
                "reason; an action entry of the log holds the reason's keyed hash.",
                {
                    "200": _json(_ref("LegalRequest"), "The request, rejected."),
                    **_errors(*BODY_ERRORS, 404),
                    "409": _problem(
                        "conflict: the request is already rejected, or already approved "
                        "(a rejection is final, and an approved request takes none); the "
                        "detail names who acted first."
                    ),
                },
                tag="lawful requests",
                roles=("reviewer",),
                parameters=[_path_param("request_id", "The id returned at registration.")],
                requestBody=_body(_ref("LegalRequestReject"), "Why it is rejected."),
            )
        },
        "/v1/partners/{partner_id}/suspend": {
            "post": _operation(
                "suspendPartner",
                "Stop every disclosure to the partner, on every instance within a second, "
                "until resumed (refusals: partner_suspended). Recorded with who, when, why.",
                {
                    "200": _json(_ref("SuspendResult"), "The suspension in force."),
                    **_errors(*BODY_ERRORS, 404),
                },
                tag="partners",
                roles=("reviewer",),
                parameters=[_path_param("partner_id", "The partner id (its file name).")],
                requestBody=_body(_ref("SuspendRequest"), "Why the partner is suspended."),
            )
        },
        "/v1/ropa": {
            "get": _operation(
                "getRopa",
                "The live record of processing: per partner, operation, purpose and legal "
                "basis, the declared fields beside those actually sent, and the drift.",
                {
                    "200": {
                        "description": "The record, as JSON or (`format=csv`) CSV.",
                        "content": {
                            "application/json": {"schema": _ref("Ropa")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, *STORE_ERRORS),
                },
                tag="partners",
                roles=("reviewer",),
                parameters=[
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in (
                        (
                            "since",
                            "A date YYYY-MM-DD or an RFC 3339 time (default: a year "
                            "before `until`).",
                        ),
                        ("until", "Excluded; a date or an RFC 3339 time (default: now)."),
                    )
                ]
                + [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
                    }
                ],
            )
        },
        "/v1/partners/{partner_id}/resume": {
            "post": _operation(
                "resumePartner",
                "Lift the partner's suspension; disclosures to it are decided as before.",
                {
                    "200": _json(_ref("ResumeResult"), "The partner is not suspended."),
                    **_errors(*BODY_ERRORS, 404),
                },
                tag="partners",
                roles=("reviewer",),
                parameters=[_path_param("partner_id", "The partner id (its file name).")],
                requestBody={**_body(_ref("ResumeRequest"), "Optionally, why."), "required": False},
            )
        },
        "/v1/partners/{partner_id}/exposure": {
            "get": _operation(
                "getPartnerExposure",
                "Breach scope: the disclosures the partner received (or may have received) "
                "in a window, distinct subjects, counts per field and category with special "
                "categories flagged, and the subject references, paged by `cursor`. Each "
                "read is an `action` entry (read_exposure) with the partner, the window and "
                "the totals.",
                {
                    "200": _json(_ref("Exposure"), "The exposure and one page of references."),
                    **_errors(400, *STORE_ERRORS, 404),
                },
                tag="partners",
                roles=("reviewer",),
                parameters=[
                    _path_param("partner_id", "The partner id (its file name)."),
                    {
                        "name": "since",
                        "in": "query",
                        "required": True,
                        "description": "From: YYYY-MM-DD (the day's start, UTC) or an RFC 3339 "
                        "time with a zone.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "required": True,
                        "description": "To: YYYY-MM-DD (through the day's end, UTC) or an RFC 3339 "
                        "time (exclusive).",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "References per page (1-1000, default 100).",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "The next_cursor of the page before.",
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    },
                ],
            )
        },
        "/v1/log/checkpoint": {
            "get": _operation(
                "getCheckpoint",
                "The latest signed checkpoint (C2SP tlog-checkpoint signed note), with "
                "the cosignature lines its witnesses have given so far.",
                {
                    "200": {
                        "description": "origin, tree size, base64 root hash, a blank line, "
                        "the Ed25519 note signature line, then one cosignature/v1 line per "
                        "witness of the policy that cosigned it (none without a policy, or "
                        "before a witness answered).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(*STORE_ERRORS, 404),
                },
                tag="log",
                roles=("reviewer",),
            )
        },
        "/v1/disclosures/{disclosure_id}/receipt": {
            "get": _operation(
                "getReceipt",
                "The disclosure's receipt: its intent entry proven in the witnessed "
                "checkpoint, a C2SP tlog-proof checked offline by `gateway receipt verify`. "
                "The calling service that made the disclosure, or a reviewer; any other "
                "caller gets the 404 of an unknown id.",
                {
                    "200": {
                        "description": "c2sp.org/tlog-proof@v1: `index N`, the inclusion "
                        "proof (base64, one a line), an empty line, the checkpoint note with "
                        "the log's signature and the witnesses' cosignatures. Link names the "
                        'entry (rel="entry").',
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "202": _json(
                        _ref("ReceiptPending"),
                        "No witnessed checkpoint covers the entry yet: ask again after "
                        "Retry-After seconds.",
                        {"Retry-After": _header("RetryAfter")},
                    ),
                    **_errors(*STORE_ERRORS, 404),
                },
                tag="disclosures",
                roles=("discloser", "reviewer"),
                parameters=[_path_param("disclosure_id", "The Disclosure-Id of the answer.")],
            )
        },
        "/v1/log/entries/{index}": {
            "get": _operation(
                "getLogEntry",
                "One log entry. A calling service (discloser) reads only the entries that "
                "name it (its receipts' entries) and its disclosures' outcomes (the "
                "partner's acknowledgement); another's is a 404.",
                {"200": _json(_ref("LogEntry"), "The entry."), **_errors(400, *STORE_ERRORS, 404)},
                tag="log",
                roles=("reviewer", "discloser"),
                parameters=[
                    {
                        "name": "index",
                        "in": "path",
                        "required": True,
                        "schema": LOG_INDEX,
                    }
                ],
            )
        },
        "/v1/log/proof/inclusion": {
            "get": _operation(
                "getInclusionProof",
                "Inclusion proof of entry `index` in the tree of size `tree_size`.",
                {
                    "200": _json(_ref("InclusionProof"), "The proof."),
                    **_errors(400, *STORE_ERRORS, 404),
                },
                tag="log",
                roles=("reviewer",),
                parameters=[
                    {
                        "name": "index",
                        "in": "query",
                        "required": True,
                        "schema": LOG_INDEX,
                    },
                    {
                        "name": "tree_size",
                        "in": "query",
                        "required": True,
                        "schema": {**LOG_INDEX, "minimum": 1},
                    },
                ],
            )
        },
        "/v1/log/proof/consistency": {
            "get": _operation(
                "getConsistencyProof",
                "Consistency proof between tree sizes `first` and `second`.",
                {
                    "200": _json(_ref("ConsistencyProof"), "The proof."),
                    **_errors(400, *STORE_ERRORS, 404),
                },
                tag="log",
                roles=("reviewer",),
                parameters=[
                    {
                        "name": name,
                        "in": "query",
                        "required": True,
                        "schema": {**LOG_INDEX, "minimum": 1},
                    }
                    for name in ("first", "second")
                ],
            )
        },
        "/v1/log/key": {
            "get": _operation(
                "getLogKey",
                "The log's public key as a signed-note verifier key "
                "(<name>+<hex key id>+<base64(0x01 || Ed25519 key)>), one a line: the "
                "current key first, then the keys retired by rotations, newest first.",
                {
                    "200": {
                        "description": "The verifier key(s).",
                        "content": {
                            "text/plain": {
                                "schema": {"type": "string", "pattern": r"^[^+\s]+\+[0-9a-f]{8}\+"}
                            }
                        },
                    }
                },
                tag="log",
                secured=False,
            )
        },
        "/v1/log/keys": {
            "get": _operation(
                "getLogKeys",
                "Every key of the log, newest first, with the checkpoints it signs: `from` "
                "the switch checkpoint that made it current, `until` the one that retired it "
                "(its note, signed by both keys); null at the open ends.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["origin", "keys"],
                            "properties": {
                                "origin": {"type": "string"},
                                "keys": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["vkey", "status", "from", "until"],
                                        "properties": {
                                            "vkey": {"type": "string"},
                                            "status": {"enum": ["current", "retired"]},
                                            "from": {"type": ["object", "null"]},
                                            "until": {"type": ["object", "null"]},
                                        },
                                    },
                                },
                            },
                        },
                        "The log's keys.",
                    )
                },
                tag="log",
                secured=False,
            )
        },
        "/.well-known/jwks.json": {
            "get": _operation(
                "getJwks",
                "The gateway's public signing keys (the `kid` of every JWS it sends).",
                {"200": _json(_ref("JWKS"), "Public keys only.")},
                tag="operations",
                secured=False,
            )
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "Liveness.",
                {"200": _json(_ref("Health"), "The process answers.")},
                tag="operations",
                secured=False,
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness: storage and keys reachable.",
                {
                    "200": _json(_ref("Ready"), "Ready to serve."),
                    "503": _json(
                        _ref("Ready"),
                        "Not ready; `storage` says why. A witness's rollback alarm is a "
                        "503 application/problem+json instead (`log_unavailable`), its "
                        "`detail` naming the witness, the size it cosigned and the log's.",
                        {"Retry-After": _header("RetryAfter")},
                    ),
                },
                tag="operations",
                secured=False,
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics (no personal value in any label).",
                {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                tag="operations",
                secured=False,
            )
        },
        **_problem_paths(),
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document.",
                {"200": _json({"type": "object", "required": ["openapi"]}, "OpenAPI 3.1.")},
                tag="operations",
                secured=False,
            )
        },
    }


def _problem_paths() -> dict[str, Schema]:
    html = {"text/html": {"schema": {"type": "string"}}}
    index = {
        "description": "Every problem code: HTML by default, JSON when Accept prefers "
        "application/json.",
        "content": {"application/json": {"schema": _ref("ProblemIndex")}, **html},
    }

    def listing(operation_id: str) -> Schema:
        return _operation(
            operation_id,
            "Every problem code the gateway emits, with its status and title.",
            {"200": index},
            tag="problems",
            secured=False,
        )

    return {
        PROBLEM_BASE.rstrip("/"): {"get": listing("listProblemsNoSlash")},
        PROBLEM_BASE: {"get": listing("listProblems")},
        PROBLEM_BASE + "{code}": {
            "get": _operation(
                "getProblem",
                "What a problem code means, its usual causes, what fixes it, its HTTP "
                "status and whether a retry can succeed: the page a problem's `type` names.",
                {
                    "200": {
                        "description": "The page: HTML by default, JSON when Accept prefers "
                        "application/json.",
                        "content": {"application/json": {"schema": _ref("ProblemKind")}, **html},
                    },
                    "404": _response("NotFound"),
                },
                tag="problems",
                secured=False,
                parameters=[_path_param("code", "A problem code, e.g. consent_required.")],
            )
        },
    }


def _version() -> str:
    try:
        return metadata.version("disclosure-gateway")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0"


def _build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Disclosure Gateway",
            "version": _version(),
            "summary": "The one door through which personal data leaves the company.",
            "description": "Every refusal is an RFC 9457 problem document "
            f"(`{PROBLEM_JSON}`) whose `type` is {PROBLEM_BASE}<code>, a page of the gateway "
            "that explains the code. Bodies are UTF-8 "
            "JSON (RFC 8259): no NaN or Infinity, no number beyond a double, no string "
            "holding U+0000, nesting at most server.max_json_depth deep.",
        },
        "tags": [
            {"name": name}
            for name in (
                "disclosures",
                "consent",
                "subject rights",
                "lawful requests",
                "partners",
                "log",
                "operations",
                "problems",
            )
        ],
        "paths": _paths(),
        "components": _components(),
    }


_DOCUMENT: Final = _build()
_BODY: Final = json.dumps(_DOCUMENT, ensure_ascii=False, sort_keys=False).encode("utf-8")


def openapi_document() -> dict[str, Any]:
    """The document as a fresh dict (callers may change their copy)."""
    return copy.deepcopy(_DOCUMENT)


async def _get_openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=_BODY,
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


def add_openapi_route(app: web.Application) -> None:
    """Serve the document at GET /openapi.json."""
    app.router.add_get("/openapi.json", _get_openapi, name="openapi")
