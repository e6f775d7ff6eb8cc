"""The middleware that makes every read see the entries this instance has answered for.

Outcome and refusal entries commit while the answer goes back (gateway.disclosure.flow), so
a subject report, an erasure or a review page asked for right after a disclosure first
waits for the commit under way: milliseconds, and nothing when none is.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.web.keys import LOG
from gateway.web.problem_pages import PROBLEM_ROUTES

# Routes that never read the disclosure log, so never wait for it.
NO_LOG_READS = frozenset(
    {
        "disclosures",
        "decisions",
        "consents",
        "consent_context",
        "subject_profile",
        "healthz",
        "readyz",
        "metrics",
        "jwks",
        "openapi",
        "log_key",
        "log_keys",
        *PROBLEM_ROUTES,
    }
)


@web.middleware
async def log_settled(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Wait for the log commit under way, unless the route never reads the log."""
    if request.match_info.route.name not in NO_LOG_READS:
        log_service = request.config_dict.get(LOG)
        if log_service is not None:
            await log_service.settle()
    return await handler(request)
