"""Words for the codes the review pages show: one table every page uses.

A reviewer reads "Legal obligation", not ``legal_obligation``; the code stays one hover
away (the jinja filter `label` renders ``<span title="legal_obligation">Legal
obligation</span>``), because the code is what the API, the CLI and the log speak.
Problem codes take their title from the problem catalogue (the one table of problems);
purposes, legal bases, outcomes, partner and field categories from the policy's words
here. A code this table does not know is shown as itself, so a new code is never hidden.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from markupsafe import Markup, escape

from gateway.log.entries import ACTIONS
from gateway.problem_catalog import CATALOGUE

__all__ = ["LABELS", "label", "label_html", "label_of"]

# policy II, purposes 1-6.
PURPOSES: Final = {
    "service_provision": "Service provision",
    "safety_security": "Safety and security",
    "user_support": "User support",
    "research_development": "Research and development",
    "legal": "Legal",
    "marketing": "Marketing",
}

# policy III.1-III.4.
LEGAL_BASES: Final = {
    "consent": "Consent",
    "contract": "Contract",
    "legal_obligation": "Legal obligation",
    "vital_interest": "Vital interest",
    "public_interest": "Public interest",
    "business_transfer": "Business transfer",
}

# The log's entry kinds and outcomes, and the statuses of lawful requests.
OUTCOMES: Final = {
    "sent": "Sent",
    "failed": "Failed",
    "unknown": "Unknown",
    "refused": "Refused",
    "intent": "Intent",
    "outcome": "Outcome",
    "action": "Action",
    "pending": "Pending",
    "approved": "Approved",
    "rejected": "Rejected",
}

# policy III.2-III.4.
PARTNER_CATEGORIES: Final = {
    "payment_processor": "Payment processor",
    "debt_collector": "Debt collector",
    "credit_bureau": "Credit bureau",
    "background_check_aml": "Background check / AML",
    "cloud_storage": "Cloud storage",
    "advertising_marketing": "Advertising and marketing",
    "data_analytics": "Data analytics",
    "education_training": "Education and training",
    "insurance_financing": "Insurance and financing",
    "identity_verification": "Identity verification",
    "legal_advisor": "Legal advisor",
    "government_authority": "Government authority",
    "business_transfer_counterparty": "Business transfer counterparty",
}

# policy I.1.
FIELD_CATEGORIES: Final = {
    "identity": "Identity",
    "contact": "Contact",
    "account": "Account",
    "device": "Device",
    "vehicle": "Vehicle",
    "usage": "Usage",
    "payment": "Payment",
    "support": "Support",
    "special": "Special category",
}


# Where one code means something more precise in one place: `label(code, kind)`.
BY_KIND: Final[Mapping[str, Mapping[str, str]]] = {
    "lawful_request": {"pending": "Awaiting approval"},
    # The kinds of partner notice (gateway.rights.outbox); consent_withdrawn is also a problem.
    "notice": {
        "erasure": "Erasure",
        "rectification": "Rectification",
        "consent_withdrawn": "Consent withdrawal",
    },
}

# A notice the partner answered with an HTTP status it does not accept (gateway.rights).
_PARTNER_STATUS: Final = re.compile(r"partner_status_([0-9]{3})")


def _actions() -> dict[str, str]:
    """Acts of people (the log's action vocabulary), in words: ``approve_lawful_request``
    reads "Approve lawful request"."""
    return {a: a.replace("_", " ").capitalize() for a in ACTIONS}


def _problems() -> dict[str, str]:
    return {code: kind.title for code, kind in CATALOGUE.items()}


# Codes are unique across the tables (a test checks it), so one lookup serves every page.
LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **_problems(),
        **PURPOSES,
        **LEGAL_BASES,
        **OUTCOMES,
        **PARTNER_CATEGORIES,
        **FIELD_CATEGORIES,
        **_actions(),
    }
)


def label_of(code: object, kind: str | None = None) -> str:
    """The words for `code` (as `kind` names it, if given), or the code itself when none
    are known (never hidden)."""
    if code is None or code == "":
        return "—"
    text = str(code)
    special = BY_KIND.get(kind or "", {})
    status = _PARTNER_STATUS.fullmatch(text)
    if status:
        return f"Partner answered HTTP {status.group(1)}"
    return special.get(text) or LABELS.get(text, text)


def label(code: object, kind: str | None = None) -> str:
    """Plain text (CSV, titles): the words, the code in brackets when they differ."""
    words = label_of(code, kind)
    return words if words == str(code) or code in (None, "") else f"{words} ({code})"


def label_html(code: object, kind: str | None = None) -> Markup:
    """The jinja filter `label`: the words, the code in a title attribute on hover."""
    words = label_of(code, kind)
    if code is None or code == "" or words == str(code):
        return Markup("{}").format(words) if words != "—" else Markup("—")
    return Markup('<span class="label" title="{}">{}</span>').format(escape(str(code)), words)
