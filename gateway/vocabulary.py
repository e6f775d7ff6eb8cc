"""The closed vocabularies of the privacy policy (CONTRACT §1).

Everything the gateway reasons about — which fields exist, which are
sensitive, which purposes and legal bases there are, what kinds of partner
may receive data — is named here once, taken from the policy's collection
table (section I) and its purpose and disclosure sections (II, III).
"""

from __future__ import annotations

from typing import Final

# policy: I.1 collection table — the categories and the fields in each.
FIELD_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "identity": ("name", "date_of_birth", "gender"),
    "contact": ("phone", "email"),
    "account": ("uuid", "password"),
    "device": ("app_id", "push_id", "device_model", "os", "browser"),
    "vehicle": ("brand", "model", "car_type", "mileage"),
    "usage": (
        "search_item",
        "usage_records",
        "ip_address",
        "visit_time",
        "usage_history",
        "bad_usage_history",
        "cookie",
    ),
    "payment": ("payment_records", "amount", "currency", "card_token", "transaction_id"),
    "support": ("consultation_records",),
    "special": (
        "race",
        "religion",
        "ideology",
        "place_of_origin",
        "birthplace",
        "political_inclination",
        "criminal_records",
        "health_status",
    ),
}

CATEGORY_OF_FIELD: Final[dict[str, str]] = {
    field: category for category, fields in FIELD_CATEGORIES.items() for field in fields
}
FIELDS: Final[frozenset[str]] = frozenset(CATEGORY_OF_FIELD)
SPECIAL_FIELDS: Final[frozenset[str]] = frozenset(FIELD_CATEGORIES["special"])

# Never disclosable under any basis; a partner file that lists it is refused.
NEVER_DISCLOSED: Final[frozenset[str]] = frozenset({"password"})

# Keys that may stand inside a `payment_records` object (or a list of them).
PAYMENT_RECORD_KEYS: Final[frozenset[str]] = frozenset(
    {"amount", "currency", "card_token", "transaction_id"}
)

# policy: V — cookies and device identifiers used for advertising.
ADVERTISING_IDENTIFIERS: Final[frozenset[str]] = frozenset({"cookie", *FIELD_CATEGORIES["device"]})

DATE_FIELDS: Final[frozenset[str]] = frozenset({"date_of_birth", "visit_time"})
IP_FIELDS: Final[frozenset[str]] = frozenset({"ip_address"})

# policy: II purposes 1-6.
PURPOSES: Final[tuple[str, ...]] = (
    "service_provision",
    "safety_security",
    "user_support",
    "research_development",
    "legal",
    "marketing",
)

# policy: III.1-III.4.
LEGAL_BASES: Final[tuple[str, ...]] = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interest",
    "public_interest",
    "business_transfer",
)

# policy: III.1(a) — contract necessity covers only running the service itself.
CONTRACT_PURPOSES: Final[frozenset[str]] = frozenset(
    {"service_provision", "user_support", "safety_security"}
)

# policy: VII.3 — what still passes for a restricted subject.
BASES_DESPITE_RESTRICTION: Final[frozenset[str]] = frozenset({"legal_obligation", "vital_interest"})

# policy: III.3 — pass at once but queue for a reviewer's justification.
BASES_NEEDING_REVIEW: Final[frozenset[str]] = frozenset({"vital_interest", "public_interest"})

# policy: III.2 (the ten kinds of business partner), III.3, III.4.
PARTNER_CATEGORIES: Final[tuple[str, ...]] = (
    "payment_processor",
    "debt_collector",
    "credit_bureau",
    "background_check_aml",
    "cloud_storage",
    "advertising_marketing",
    "data_analytics",
    "education_training",
    "insurance_financing",
    "identity_verification",
    "legal_advisor",
    "government_authority",
    "business_transfer_counterparty",
)

# CONTRACT §2 field transforms.
TRANSFORMS: Final[tuple[str, ...]] = (
    "keep",
    "pseudonym",
    "year",
    "age_band",
    "mask",
    "truncate_ip",
    "drop",
)

# Which transforms make sense for which fields; anything else is a file error.
TRANSFORMS_ONLY_FOR: Final[dict[str, frozenset[str]]] = {
    "year": DATE_FIELDS,
    "age_band": frozenset({"date_of_birth"}),
    "truncate_ip": IP_FIELDS,
}
CONTAINER_TRANSFORMS: Final[frozenset[str]] = frozenset({"keep", "drop"})

ROLES: Final[tuple[str, ...]] = ("discloser", "consent_writer", "reviewer", "rights_officer")

# policy: I.1 "prevention of underage registration (under 14 years old)".
MINIMUM_AGE: Final[int] = 14
