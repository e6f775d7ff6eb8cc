"""Once per Idempotency-Key (gateway.disclosure.idempotency) against a hand-written key store."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from gateway.disclosure.idempotency import MAX_IDEMPOTENCY_KEY, once, request_digest
from gateway.errors import GatewayError, InvalidRequestError, LogUnavailableError
from gateway.store.records import IdempotencyClaim, StoredResponse

OK = StoredResponse(201, {"Content-Type": "application/json", "X-Other": "1"}, b'{"ok":1}')


class FakeKeys:
    """The store's idempotency keys, in a dict."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], tuple[str, StoredResponse | None]] = {}

    async def claim_idempotency(
        self, caller_id: str, key: str, request_hash: str
    ) -> IdempotencyClaim:
        found = self.held.get((caller_id, key))
        if found is None:
            self.held[(caller_id, key)] = (request_hash, None)
            return IdempotencyClaim("new")
        digest, response = found
        if digest != request_hash:
            return IdempotencyClaim("mismatch")
        return IdempotencyClaim("in_progress" if response is None else "completed", response)

    async def complete_idempotency(
        self, caller_id: str, key: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        digest, _ = self.held[(caller_id, key)]
        self.held[(caller_id, key)] = (digest, StoredResponse(status, dict(headers), body))

    async def release_idempotency(self, caller_id: str, key: str) -> None:
        self.held.pop((caller_id, key), None)


class Counted:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    async def __call__(self) -> StoredResponse:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return OK


def refusal(error: GatewayError) -> StoredResponse:
    return StoredResponse(error.status, {"Content-Type": "application/problem+json"}, b"p")


async def run(
    keys: FakeKeys, key: str | None, answer: Counted, digest: str = "d"
) -> StoredResponse:
    return await once(
        keys, "svc", key, digest, answer, refusal=refusal, kept_headers=("Content-Type",), what="x"
    )


async def test_a_repeat_gets_the_first_answer_and_runs_nothing() -> None:
    keys, answer = FakeKeys(), Counted()
    assert await run(keys, "k", answer) == OK  # the first answer whole
    again = await run(keys, "k", answer)
    assert answer.calls == 1
    assert again == StoredResponse(
        201, {"Content-Type": "application/json", "Idempotency-Replayed": "true"}, OK.body
    )


async def test_no_key_runs_every_time() -> None:
    keys, answer = FakeKeys(), Counted()
    await run(keys, None, answer)
    await run(keys, None, answer)
    assert answer.calls == 2 and keys.held == {}


async def test_another_request_or_one_in_flight_is_a_conflict() -> None:
    keys = FakeKeys()
    await keys.claim_idempotency("svc", "k", "d")  # in flight
    with pytest.raises(GatewayError, match="still in progress") as busy:
        await run(keys, "k", Counted())
    with pytest.raises(GatewayError, match="a new key for a new x") as other:
        await run(keys, "k", Counted(), digest="other")
    assert busy.value.code == other.value.code == "conflict"


async def test_a_refusal_is_the_stored_answer_and_a_retryable_failure_frees_the_key() -> None:
    keys = FakeKeys()
    refused = await run(keys, "k", Counted(InvalidRequestError("bad")))
    assert refused.status == 400 and keys.held[("svc", "k")][1] == refused
    with pytest.raises(GatewayError):
        await run(keys, "k2", Counted(LogUnavailableError("store away")))
    with pytest.raises(RuntimeError):
        await run(keys, "k3", Counted(RuntimeError("a bug")))
    assert set(keys.held) == {("svc", "k")}  # k2 and k3 may be retried


@pytest.mark.parametrize("key", ["", "x" * (MAX_IDEMPOTENCY_KEY + 1), "a\nb"])
async def test_a_malformed_key_is_refused(key: str) -> None:
    with pytest.raises(GatewayError, match="printable") as exc:
        await run(FakeKeys(), key, Counted())
    assert exc.value.code == "invalid_request"


def test_a_key_is_bound_to_the_body_and_to_the_kind_of_request() -> None:
    body = {"a": 1}
    assert request_digest(body) == request_digest({"a": 1}) != request_digest({"a": 2})
    assert request_digest(body, scope="POST /x") != request_digest(body)
