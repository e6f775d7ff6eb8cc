"""What every JSON handler shares: who calls, the body, the path's subject, the answer.

`caller_of` authenticates (bearer token, else a verified client certificate) and checks
the role; `body_of` reads the JSON body within the configured limits; answers that an
Idempotency-Key repeat gets again are built as `StoredResponse` values (`json_answer`,
`refusal_answer`) and sent by `response_of`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.callers.tokens import require_role, token_key_id
from gateway.config.model import Caller
from gateway.errors import ForbiddenError, GatewayError
from gateway.log.actions import Person
from gateway.observe.app_log import bind
from gateway.store.records import StoredResponse
from gateway.subject_id import check_subject_id
from gateway.web.keys import AUTH, GATEWAY
from gateway.web.problems import problem_response, read_json
from gateway.web.tls import certificate_caller_id


async def caller_of(request: web.Request, role: str | tuple[str, ...]) -> Caller:
    """The authenticated caller (bearer token, else a verified client certificate) holding
    one of `role`."""
    authorization = request.headers.get("Authorization")
    common_name = None if authorization else certificate_caller_id(request)
    if common_name is not None:
        found = request.app[GATEWAY].config.callers.get(common_name)
        if found is None:
            raise ForbiddenError(
                "the client certificate's subject is not a "
                "configured caller ([[callers]] id = certificate CN)",
            )
        caller = found
    else:
        caller = await request.app[AUTH].authenticate(authorization)
    roles = (role,) if isinstance(role, str) else role
    if not any(r in caller.roles for r in roles):
        require_role(caller, roles[0])
    bind(caller=caller.id)
    return caller


async def person_of(request: web.Request, role: str | tuple[str, ...]) -> Person:
    """`caller_of`, with the id of the credential that proved it: what an `action` entry
    of the log records of a person's act (gateway.log.actions)."""
    caller = await caller_of(request, role)
    return Person(caller.id, credential_of(request, caller))


def credential_of(request: web.Request, caller: Caller) -> str:
    """``token:<kid>`` (the key that signed the bearer token, read from the header of a
    token already verified) or ``certificate:<cn>`` — never the token itself."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return f"certificate:{caller.id}"
    return f"token:{token_key_id(authorization.partition(' ')[2]) or caller.id}"


async def body_of(request: web.Request, *, also: str = "") -> Any:
    server = request.app[GATEWAY].config.server
    return await read_json(
        request, max_depth=server.max_json_depth, max_body=server.max_body_bytes, also=also
    )


def path_subject(request: web.Request) -> str:
    """The `{subject}` of a /v1/subjects/… path, checked against the one subject-id grammar."""
    return check_subject_id(request.match_info["subject"], "the subject id in the path")


def json_response(value: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode("utf-8"), content_type="application/json"
    )


def json_answer(value: object, status: int = 200) -> StoredResponse:
    body = json.dumps(value).encode("utf-8")
    return StoredResponse(status, {"Content-Type": "application/json"}, body)


def refusal_answer(error: GatewayError) -> StoredResponse:
    """A refusal as problem+json, as an answer an Idempotency-Key repeat gets again."""
    rendered = problem_response(error)
    assert isinstance(rendered.body, bytes)
    return StoredResponse(rendered.status, dict(rendered.headers), rendered.body)


def response_of(answer: StoredResponse) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
