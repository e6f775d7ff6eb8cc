"""Decisions per second for a realistic mix (issue target: >= 50,000/s on one core).

A figure, not a test: `make bench` prints it. Runs the pure decide() over the
shipped partners with a mix of allowed and refused requests.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from gateway.config.model import Caller, load_config
from gateway.partners import load_partners
from gateway.policy.decide import decide
from gateway.policy.facts import Consent, LegalRequest, SubjectFacts
from gateway.policy.request import DisclosureRequest

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)


def mix() -> list[tuple[DisclosureRequest, SubjectFacts]]:
    consent = Consent(
        "c",
        "s",
        frozenset({"service_provision", "marketing"}),
        frozenset({"lao-credit-bureau", "adreach"}),
        frozenset(),
        frozenset(),
        "2024-09-30",
        NOW - timedelta(days=3),
    )
    withdrawn = Consent(
        "w",
        "s",
        frozenset({"marketing"}),
        frozenset({"adreach"}),
        frozenset(),
        frozenset(),
        "2024-09-30",
        NOW - timedelta(days=3),
        None,
        NOW,
    )
    lr = LegalRequest("LR", "approved", frozenset({"s"}), frozenset({"vientiane-police"}))
    person = {
        "name": "N",
        "date_of_birth": "1990-01-02",
        "phone": "+856",
        "uuid": "u",
        "password": "p",
        "email": "e@x",
    }
    return [
        (
            DisclosureRequest(
                "lao-credit-bureau", "credit_check", "service_provision", "consent", "s", person
            ),
            SubjectFacts(consents=(consent,)),
        ),
        (
            DisclosureRequest(
                "bcel-payments",
                "charge",
                "service_provision",
                "contract",
                "s",
                {"uuid": "u", "amount": 1, "currency": "LAK", "card_token": "t"},
            ),
            SubjectFacts(),
        ),
        (
            DisclosureRequest(
                "adreach",
                "audience_upload",
                "marketing",
                "consent",
                "s",
                {"email": "e", "cookie": "c"},
            ),
            SubjectFacts(consents=(withdrawn,)),
        ),
        (
            DisclosureRequest(
                "vientiane-police",
                "lawful_disclosure",
                "legal",
                "legal_obligation",
                "s",
                person,
                "LR",
            ),
            SubjectFacts(legal_requests={"LR": lr}),
        ),
        (
            DisclosureRequest(
                "lanexang-insurance", "quote", "service_provision", "consent", "s", person
            ),
            SubjectFacts(date_of_birth=date(2015, 1, 1)),
        ),
    ]


def main() -> None:
    config = load_config(ROOT / "config.toml")
    partners = load_partners(config.partners_dir, config.root)
    caller = Caller("bench", frozenset({"discloser"}), frozenset({"*"}), frozenset({"*"}))
    cases = mix()
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for request, facts in cases:
            decide(request, caller, partners, facts, config.policy, NOW)
        count += len(cases)
    elapsed = time.perf_counter() - start
    print(
        f"decide(): {count / elapsed:,.0f} decisions/s on one core "
        f"({len(cases)}-request mix, {count:,} decisions in {elapsed:.2f} s)"
    )


if __name__ == "__main__":
    main()
