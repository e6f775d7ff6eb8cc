"""Suspending and resuming a partner over HTTP (issue 9), for reviewers.

`POST /v1/partners/{partner_id}/suspend` `{"reason"}` and `…/resume` `{"reason"?}`.
Both are idempotent: suspending a suspended partner (or resuming one that is not)
changes nothing and says so with `"changed": false`. The suspension is in the store
when the answer leaves, so every instance refuses the partner within a second.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.partners.standing import suspension_json
from gateway.policy.facts import invalid
from gateway.web.http import body_of, json_response, person_of
from gateway.web.keys import SUSPENSIONS

__all__ = ["add_partner_routes"]


async def _reason_of(request: web.Request, *, required: bool) -> object:
    """The body's `reason`; a resume may come without a body."""
    if not required and not request.body_exists:
        return None
    body: Any = await body_of(request)
    if not isinstance(body, dict) or set(body) - {"reason"} or (required and "reason" not in body):
        shape = '{"reason": "…"}' if required else '{"reason": "…"} or no body'
        raise invalid(f"body must be {shape}")
    return body.get("reason")


async def suspend(request: web.Request) -> web.Response:
    who = await person_of(request, "reviewer")
    reason = await _reason_of(request, required=True)
    found, made = await request.app[SUSPENSIONS].suspend(
        request.match_info["partner_id"], reason, who.id, who.credential
    )
    return json_response({**suspension_json(found), "suspended": True, "changed": made})


async def resume(request: web.Request) -> web.Response:
    who = await person_of(request, "reviewer")
    reason = await _reason_of(request, required=False)
    partner_id = request.match_info["partner_id"]
    lifted = await request.app[SUSPENSIONS].resume(partner_id, who.id, reason, who.credential)
    return json_response(
        {
            "partner": partner_id,
            "suspended": False,
            "changed": lifted is not None,
            "lifted": None if lifted is None else suspension_json(lifted),
        }
    )


def add_partner_routes(app: web.Application) -> None:
    """The routes; `app[SUSPENSIONS]` is set by the composition root once the store is open."""
    app.router.add_post("/v1/partners/{partner_id}/suspend", suspend, name="partner_suspend")
    app.router.add_post("/v1/partners/{partner_id}/resume", resume, name="partner_resume")
