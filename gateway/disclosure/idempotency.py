"""`Idempotency-Key` for the requests that send something to partners: disclosures
(CONTRACT §4.1) and erasure or rectification notices (§4.4).

A key is the caller's: the first request with it runs and its answer is stored; a
repeat with the same key and the same request gets that answer again
(`Idempotency-Replayed: true`) and sends nothing; the same key with another request is
`409 conflict`, as is a repeat while the first still runs. A request that failed before
anything was sent (`log_unavailable`, an unexpected error, a load limit) frees its key
for a retry.
The store keeps the keys (`claim_idempotency`), shared by every instance.

This is part of the flow, not of HTTP: an answer is a `StoredResponse` (status, headers,
bytes), and the web layer passes in how it renders a refusal (`refusal`), so the answer a
repeat gets is byte for byte the first one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from gateway.canonical import canonical_json
from gateway.disclosure.limits import SHED_CODES
from gateway.errors import ConflictError, GatewayError
from gateway.policy.facts import invalid
from gateway.store.ports import IdempotencyStore
from gateway.store.records import StoredResponse

MAX_IDEMPOTENCY_KEY = 200
# Failures after which nothing was sent: the caller may retry with the same key.
RETRYABLE = ("log_unavailable", "internal_error", *sorted(SHED_CODES))
REPLAYED = "Idempotency-Replayed"

Answer = Callable[[], Awaitable[StoredResponse]]
Refusal = Callable[[GatewayError], StoredResponse]


def request_digest(body: object, scope: str | None = None) -> str:
    """What a key is bound to. A disclosure is its body; another request adds `scope` (its
    route and path), so one key can never replay an answer of another kind of request."""
    if scope is None:
        return hashlib.sha256(canonical_json(body) if isinstance(body, dict) else b"").hexdigest()
    return hashlib.sha256(canonical_json({"scope": scope, "body": body})).hexdigest()


async def once(
    keys: IdempotencyStore,
    caller_id: str,
    key: str | None,
    digest: str,
    answer: Answer,
    *,
    refusal: Refusal,
    kept_headers: tuple[str, ...],
    what: str,
) -> StoredResponse:
    """`answer()` once per (caller, `key`); with no key (no header), every time.

    A refusal `answer()` raises is the stored answer, rendered by `refusal`; one after
    which the caller may retry (RETRYABLE) frees the key and is raised. `kept_headers` are
    the answer's headers a replay repeats; `what` names the request in the 409 detail
    ("a new key for a new {what}")."""
    if key is None:
        return await answer()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise invalid(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    claim = await keys.claim_idempotency(caller_id, key, digest)
    if claim.state == "completed" and claim.response is not None:
        stored = claim.response
        return StoredResponse(stored.status, {**stored.headers, REPLAYED: "true"}, stored.body)
    if claim.state == "in_progress":
        raise ConflictError(
            "a request with this Idempotency-Key is still in progress; retry after it finishes",
        )
    if claim.state == "mismatch":
        raise ConflictError(
            f"this Idempotency-Key was used for a different request body; use a new key for a "
            f"new {what}",
        )
    try:
        response = await answer()
    except GatewayError as exc:
        if exc.code in RETRYABLE:
            await keys.release_idempotency(caller_id, key)
            raise
        response = refusal(exc)
    except BaseException:
        await keys.release_idempotency(caller_id, key)
        raise
    headers = {k: v for k, v in response.headers.items() if k in kept_headers}
    await keys.complete_idempotency(caller_id, key, response.status, headers, response.body)
    return response
