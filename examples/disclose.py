"""A service sending disclosures through the gateway with `gateway_client`, end to end.

Start the gateway with `make run` in another terminal (it serves the sandbox partners
too), then:

    .venv/bin/python examples/disclose.py [--url http://127.0.0.1:8080]

It records the customer's consent (as the customer app would), then

1. sends a credit check to lao-credit-bureau and prints the Disclosure-Id and the
   fields the partner received — retrying, bounded and honouring Retry-After, when
   the gateway answers a problem that a later try may not have;
2. asks lanexang-insurance for a quote the customer never consented to, and handles
   the refusal by its problem code, as a service would (ask for consent).

Bearer tokens come from $DISCLOSER_TOKEN (sales-service) and $CONSENT_TOKEN
(customer-app) when set, otherwise from `gateway token <caller>`, the development
issuer of config.toml (--config). In production they come from your IdP.
Exit status: 0 when the credit check was delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from gateway_client import (
    CircuitOpen,
    ConsentProblem,
    DisclosureRefused,
    DisclosureResponse,
    GatewayClient,
    GatewayClientError,
    GatewayProblem,
    GatewayUnreachable,
    PartnerProblem,
    PartnerUnavailable,
    RetryableProblem,
)

MAX_ATTEMPTS = 3  # one call and at most two retries
FIRST_WAIT_S = 1.0  # when the gateway gives no Retry-After: 1 s, then 2 s
MAX_WAIT_S = 30.0  # told to wait longer: give up now and let the caller try later

# What the service knows about its customer. It sends the whole record: the gateway
# keeps only what the partner's operation may receive (no password ever leaves).
CUSTOMER = {
    "name": "Somchai Phommavong",
    "date_of_birth": "1990-04-02",
    "phone": "+856 20 5555 1234",
    "uuid": "u-0001",
    "password": "never-leaves",
    "health_status": "none declared",
}


def backoff(attempt: int) -> float:
    return FIRST_WAIT_S * 2.0 ** (attempt - 1)


def retry_wait(problem: GatewayProblem | GatewayUnreachable, attempt: int) -> float | None:
    """Seconds before try `attempt + 1`, or None when this failure is not retried."""
    if attempt >= MAX_ATTEMPTS:
        return None
    if isinstance(problem, GatewayUnreachable):
        # Never reached it, or the answer was lost: the same key makes a repeat safe.
        return backoff(attempt)
    if not isinstance(problem, RetryableProblem | PartnerUnavailable | CircuitOpen):
        # A refusal or a caller error changes nothing on a retry; a partner timeout
        # may have reached the partner: a person decides, knowing that.
        return None
    wait = problem.retry_after if problem.retry_after is not None else backoff(attempt)
    return wait if wait <= MAX_WAIT_S else None


async def disclose_with_retries(
    gateway: GatewayClient, key: str, **call: Any
) -> DisclosureResponse:
    """`gateway.disclose(**call)`, retried as `retry_wait` says.

    A problem of the gateway itself (log_unavailable…) or a lost answer is retried with
    the same Idempotency-Key: nothing was sent, or a repeat returns the first answer. A
    partner failure is final for its key, so the retry takes a new one, knowingly.
    """
    first_key, attempt = key, 1
    while True:
        try:
            return await gateway.disclose(idempotency_key=key, **call)
        except (GatewayProblem, GatewayUnreachable) as problem:
            wait = retry_wait(problem, attempt)
            if wait is None:
                raise
            if isinstance(problem, PartnerProblem):
                key, which = f"{first_key}-retry-{attempt}", "a new"
            else:
                which = "the same"
            if isinstance(problem, GatewayProblem):
                what = f"{problem.code} ({problem.status})"
                if problem.disclosure_id:
                    what += f", Disclosure-Id {problem.disclosure_id}"
                if problem.retry_after is not None:
                    what += f", Retry-After {problem.retry_after:g} s"
            else:
                what = "no answer"
            print(f"   {what}: retrying in {wait:g} s with {which} Idempotency-Key {key}")
            await asyncio.sleep(wait)
            attempt += 1


def dev_token(caller: str, variable: str, config: str) -> str:
    """$variable, or a development token from `gateway token` (the config's issuer key)."""
    if os.environ.get(variable):
        return os.environ[variable]
    command = [sys.executable, "-m", "gateway", "--config", config, "token", caller]
    # This very Python with fixed arguments: no shell, nothing of the user's but a path.
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"set ${variable}, or fix `gateway token {caller}`: {done.stderr}")
    return done.stdout.strip()


async def main(url: str, config: str) -> int:
    subject = f"example-customer-{secrets.token_hex(4)}"
    order = f"order-{secrets.token_hex(4)}"
    discloser = dev_token("sales-service", "DISCLOSER_TOKEN", config)
    consent_writer = dev_token("customer-app", "CONSENT_TOKEN", config)
    print(f"gateway {url}, customer {subject}")

    async with GatewayClient(url, token=consent_writer) as customer_app:
        try:
            consent = await customer_app.grant_consent(
                subject=subject,
                purposes=["service_provision"],
                partners=["lao-credit-bureau"],
                policy_version="2024-09-30",
                method="app",
                evidence="consent-screen-v3",
            )
        except GatewayClientError as failure:
            report(failure)
            return 1
    print(f"consent {consent.id}: service_provision by lao-credit-bureau")

    delivered = False
    async with GatewayClient(url, token=discloser) as gateway:
        print(f"1. credit check at lao-credit-bureau, Idempotency-Key {order}")
        try:
            sent = await disclose_with_retries(
                gateway,
                order,
                partner="lao-credit-bureau",
                operation="credit_check",
                purpose="service_provision",
                legal_basis="consent",
                subject=subject,
                data=CUSTOMER,
            )
        except GatewayClientError as failure:
            report(failure)
        else:
            delivered = sent.ok
            print(
                f"   partner answered {sent.status}; Disclosure-Id {sent.disclosure_id}; "
                f"fields sent: {', '.join(sent.fields)}"
            )

        print("2. insurance quote at lanexang-insurance (no consent for it)")
        try:
            await gateway.disclose(
                partner="lanexang-insurance",
                operation="quote",
                purpose="service_provision",
                legal_basis="consent",
                subject=subject,
                data=CUSTOMER,
                idempotency_key=f"{order}-quote",
            )
            print("   sent (a consent covered it after all)")
        except ConsentProblem as refusal:
            # Nothing was sent and the refusal is in the log: ask the customer.
            print(f"   refused, {refusal.code} ({refusal.status}): {refusal.detail}")
            print("   → the service asks the customer for this consent and tries again")
        except GatewayClientError as failure:
            report(failure)
    return 0 if delivered else 1


def report(failure: GatewayClientError) -> None:
    """What a service tells its operator; no personal value is in any of it."""
    if isinstance(failure, DisclosureRefused):
        print(f"   refused, {failure.code}: {failure.detail} (retrying changes nothing)")
    elif isinstance(failure, GatewayProblem):
        where = f", Disclosure-Id {failure.disclosure_id}" if failure.disclosure_id else ""
        after = f", try again after {failure.retry_after:g} s" if failure.retry_after else ""
        print(f"   failed, {failure.code} ({failure.status}){where}: {failure.detail}{after}")
    else:  # no answer at all: is the gateway running (`make run`)?
        print(f"   failed: {failure}")


def parse(argv: list[str] | None = None) -> Mapping[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    parser.add_argument(
        "--config", default="config.toml", help="for `gateway token` (default config.toml)"
    )
    args = parser.parse_args(argv)
    return {"url": args.url, "config": args.config}


if __name__ == "__main__":
    sys.exit(asyncio.run(main(**parse())))
