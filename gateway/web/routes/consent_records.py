"""Consents as DPV JSON-LD over HTTP: the content negotiation of the consent routes and the
context document they name (gateway.policy.dpv, CONTRACT §4.3).

`GET /v1/subjects/{id}/consents` answers JSON-LD when `Accept` prefers
`application/ld+json` to `application/json` (plain JSON stays the default, a tie included);
`POST /v1/consents` reads a record when the body is sent as `application/ld+json` and then
answers in kind. The context is a file of the package, served at `GET CONTEXT_PATH` to
anyone (it holds no personal data) with a long cache lifetime: nothing is fetched from the
network, by the gateway or by a reader that trusts it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection
from datetime import datetime
from importlib import resources
from typing import Any, Final

from aiohttp import web
from yarl import URL

from gateway.config.model import ControllerConfig
from gateway.errors import InvalidRequestError
from gateway.policy import dpv
from gateway.policy.facts import Consent, check_consent_to_record
from gateway.web.keys import GATEWAY
from gateway.web.negotiation import prefers

# A week: the context changes only with a release, and a reader that caches it never
# needs the gateway to expand a record again.
CONTEXT_MAX_AGE_S: Final = 7 * 24 * 3600


@functools.cache
def context_file() -> bytes:
    """The shipped context document, read once from the package."""
    return resources.files("gateway.policy").joinpath(dpv.CONTEXT_FILE).read_bytes()


@functools.cache
def inline_context() -> Any:
    """The context's `@context` value: what a record may carry inline instead of the URL."""
    return json.loads(context_file())["@context"]


def is_our_context(value: object) -> bool:
    """The served context's URL (on any host this gateway answers as: only its path is
    compared), that path alone, or the context inline."""
    if isinstance(value, str):
        try:
            url = URL(value)
        except ValueError:
            return False
        return url.path == dpv.CONTEXT_PATH and (
            not url.is_absolute() or url.scheme in ("http", "https")
        )
    return isinstance(value, dict) and value == inline_context()


def context_url(request: web.Request) -> str:
    """The context's URL on `[server] public_url` when set: behind a proxy, the address a
    request came to is the proxy's side, which a reader of the record cannot reach."""
    public_url = request.app[GATEWAY].config.server.public_url
    return (public_url or str(request.url.origin())) + dpv.CONTEXT_PATH


def prefers_json_ld(accept: str | None) -> bool:
    """Whether an Accept header prefers JSON-LD to plain JSON (a tie stays plain)."""
    return prefers(accept, dpv.MEDIA_TYPE, over="application/json")


def json_ld_response(value: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode("utf-8"), content_type=dpv.MEDIA_TYPE
    )


def consent_of_record(
    body: object,
    *,
    consent_id: str,
    now: datetime,
    controller: ControllerConfig,
    known_partners: Collection[str],
    policy_version: str,
) -> Consent:
    """A posted record → the consent to record, refused as the plain body would be, the
    refusal naming the record's member."""
    consent = dpv.parse_consent_record(
        body,
        consent_id=consent_id,
        now=now,
        controller=controller,
        is_our_context=is_our_context,
    )
    try:
        return check_consent_to_record(
            consent, known_partners=known_partners, policy_version=policy_version, now=now
        )
    except InvalidRequestError as refusal:
        raise dpv.named_for_record(refusal) from None


def record_document(request: web.Request, consent: Consent, *, subject: str) -> dict[str, Any]:
    """One consent as a record with its `@context`: the answer to a posted record."""
    gw = request.app[GATEWAY]
    return {
        "@context": context_url(request),
        **dpv.consent_record(
            consent,
            subject=subject,
            controller=gw.config.controller,
            now=gw.clock(),
            min_consent_version=gw.config.policy.min_consent_version,
        ),
    }


def records_document(
    request: web.Request, consents: list[Consent], *, subject: str
) -> dict[str, Any]:
    gw = request.app[GATEWAY]
    return dpv.consent_records(
        consents,
        subject=subject,
        controller=gw.config.controller,
        now=gw.clock(),
        context=context_url(request),
        min_consent_version=gw.config.policy.min_consent_version,
    )


async def get_consent_context(request: web.Request) -> web.Response:
    body = context_file()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"Cache-Control": f"public, max-age={CONTEXT_MAX_AGE_S}", "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=dpv.MEDIA_TYPE, headers=headers)
