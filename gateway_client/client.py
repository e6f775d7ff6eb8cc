"""The client: `GatewayClient`, one gateway and one caller identity (CONTRACT §4).

    async with GatewayClient("https://gateway.internal", token_provider=idp_token) as gw:
        try:
            answer = await gw.disclose(partner="lao-credit-bureau", operation="credit_check",
                                       purpose="service_provision", legal_basis="consent",
                                       subject=customer.id, data=customer.record,
                                       idempotency_key=f"order-{order.id}")
        except ConsentProblem as refused:      # ask the customer; nothing was sent
            ...
        except RetryableProblem as later:      # nothing was sent; same call, same key, later
            ...

Every problem document of the gateway is raised as the exception class of its code
(gateway_client.errors); the answers are the SDK's own wire types (gateway_client.models).
Exception messages never quote what was sent.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from gateway_client.errors import (
    GatewayUnreachable,
    ReceiptPending,
    UnexpectedResponse,
    problem_class,
)
from gateway_client.models import (
    Consent,
    Decision,
    DisclosureResponse,
    ErasureReport,
    consent_from_json,
    decision_from_json,
    erasure_from_json,
    json_object,
    opt_str,
)
from gateway_client.problems import problem_code

PROBLEM_JSON: Final = "application/problem+json"
TokenProvider = Callable[[], Awaitable[str] | str]


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()


# -- the client ---------------------------------------------------------------------------


class GatewayClient:
    """One gateway, one caller identity. Use as `async with`, or call `close()`.

    `token` is a fixed bearer token; `token_provider` is called before every request
    (sync or async) so tokens can be refreshed by the caller's IdP library. A
    `session` passed in is used and left open; otherwise the client owns one.
    `timeout` bounds each call, in seconds: a disclosure waits for the partner,
    whose retries the gateway runs, so keep it above the partners' worst case.
    """

    def __init__(
        self,
        base_url: str | URL,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if (token is None) == (token_provider is None):
            raise ValueError("pass exactly one of token= and token_provider=")
        base = URL(str(base_url))
        if not base.is_absolute() or base.scheme not in ("http", "https"):
            raise ValueError("base_url must be an absolute http:// or https:// URL")
        self._base = str(base).rstrip("/")
        self._origin = str(base.origin())
        self._token = token
        self._token_provider = token_provider
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = dict(headers or {})

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- disclosures ----------------------------------------------------------------

    async def disclose(
        self,
        *,
        partner: str,
        operation: str,
        purpose: str,
        legal_basis: str,
        subject: str,
        data: Mapping[str, Any],
        legal_request: str | None = None,
        idempotency_key: str | None = None,
    ) -> DisclosureResponse:
        """`POST /v1/disclosures`: decide, minimize, seal, log, deliver; the partner's answer.

        Raises the GatewayProblem subclass of the refusal or failure. With an
        `idempotency_key`, a repeat returns the first answer and sends nothing again.
        """
        body = _disclosure_body(
            partner, operation, purpose, legal_basis, subject, data, legal_request
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        reply = await self._call("POST", "/v1/disclosures", body, headers=headers)
        if "Disclosure-Fields" not in reply.headers:
            # A relayed partner answer always names the fields sent; anything else is
            # a problem of the gateway (or of something between us and it).
            self._raise(reply)
        fields = reply.headers.get("Disclosure-Fields", "")
        return DisclosureResponse(
            status=reply.status,
            disclosure_id=reply.headers.get("Disclosure-Id", ""),
            fields=tuple(f for f in fields.split(",") if f),
            body=reply.body,
            content_type=reply.headers.get("Content-Type", ""),
            replayed=reply.headers.get("Idempotency-Replayed") == "true",
            request_id=reply.headers.get("X-Request-Id"),
            acknowledgement=reply.headers.get("Disclosure-Acknowledgement-Status"),
        )

    async def receipt(self, disclosure_id: str) -> str:
        """`GET /v1/disclosures/{id}/receipt`: the disclosure's receipt, a C2SP tlog-proof
        (text; keep it as `<id>.tlog-proof`, check it with `gateway receipt verify`).

        Raises ReceiptPending (with `retry_after`) while no witnessed checkpoint covers
        the disclosure yet, NotFound for an id this caller did not disclose.
        """
        path = f"/v1/disclosures/{_segment(disclosure_id)}/receipt"
        reply = await self._call("GET", path, None)
        if reply.status == 202:
            raise ReceiptPending(
                "the receipt is not ready: no witnessed checkpoint covers the disclosure yet",
                retry_after=_retry_after(reply.headers.get("Retry-After")),
            )
        if reply.status != 200:
            self._raise(reply)
        return reply.body.decode("utf-8")

    async def decide(
        self,
        *,
        partner: str,
        operation: str,
        purpose: str,
        legal_basis: str,
        subject: str,
        data: Mapping[str, Any],
        legal_request: str | None = None,
    ) -> Decision:
        """`POST /v1/decisions`: what a disclosure would do, sending and logging nothing.

        A refused decision is returned (`allowed` False, `problem` its code), not raised.
        """
        body = _disclosure_body(
            partner, operation, purpose, legal_basis, subject, data, legal_request
        )
        return decision_from_json(await self._json("POST", "/v1/decisions", body))

    # -- consents, restriction, profile ---------------------------------------------------

    async def grant_consent(
        self,
        *,
        subject: str,
        purposes: Iterable[str],
        policy_version: str,
        method: str,
        partners: Iterable[str] = (),
        partner_categories: Iterable[str] = (),
        special_categories: Iterable[str] = (),
        obtained_at: datetime | None = None,
        expires_at: datetime | None = None,
        evidence: str | None = None,
    ) -> Consent:
        """`POST /v1/consents`: record a consent; the gateway assigns its id."""
        body: dict[str, Any] = {
            "subject": subject,
            "purposes": list(purposes),
            "partners": list(partners),
            "partner_categories": list(partner_categories),
            "special_categories": list(special_categories),
            "policy_version": policy_version,
            "method": method,
        }
        if obtained_at is not None:
            body["obtained_at"] = _rfc3339(obtained_at)
        if expires_at is not None:
            body["expires_at"] = _rfc3339(expires_at)
        if evidence is not None:
            body["evidence"] = evidence
        return consent_from_json(await self._json("POST", "/v1/consents", body))

    async def withdraw_consent(self, consent_id: str) -> Consent:
        """`POST /v1/consents/{id}/withdraw`: binding for every disclosure after the answer."""
        path = f"/v1/consents/{_segment(consent_id)}/withdraw"
        return consent_from_json(await self._json("POST", path, None))

    async def consents(self, subject: str) -> list[Consent]:
        """`GET /v1/subjects/{subject}/consents`."""
        doc = json_object(
            await self._json("GET", f"/v1/subjects/{_segment(subject)}/consents"), "consents"
        )
        return [consent_from_json(c) for c in doc.get("consents") or ()]

    async def set_restriction(self, subject: str, restricted: bool, reason: str = "") -> None:
        """`PUT /v1/subjects/{subject}/restriction`: objection or restriction (or lift it)."""
        body = {"restricted": restricted, "reason": reason}
        await self._json("PUT", f"/v1/subjects/{_segment(subject)}/restriction", body)

    async def set_profile(self, subject: str, date_of_birth: date) -> None:
        """`PUT /v1/subjects/{subject}/profile`: the date of birth for the under-14 rule."""
        body = {"date_of_birth": date_of_birth.isoformat()}
        await self._json("PUT", f"/v1/subjects/{_segment(subject)}/profile", body)

    # -- subject rights -------------------------------------------------------------------

    async def subject_disclosures(self, subject: str) -> list[dict[str, Any]]:
        """`GET /v1/subjects/{subject}/disclosures`: every disclosure of the subject."""
        doc = json_object(
            await self._json("GET", f"/v1/subjects/{_segment(subject)}/disclosures"),
            "subject report",
        )
        return [dict(row) for row in doc.get("disclosures") or ()]

    async def request_erasure(
        self, subject: str, kind: str = "erasure", data: Mapping[str, Any] | None = None
    ) -> ErasureReport:
        """`POST /v1/subjects/{subject}/erasure`: notify every partner that received data."""
        body: dict[str, Any] = {"kind": kind}
        if data is not None:
            body["data"] = dict(data)
        path = f"/v1/subjects/{_segment(subject)}/erasure"
        return erasure_from_json(await self._json("POST", path, body), kind)

    # -- transport ------------------------------------------------------------------------

    async def _json(self, method: str, path: str, body: object = None) -> Any:
        reply = await self._call(method, path, body)
        if not 200 <= reply.status < 300:
            self._raise(reply)
        try:
            return json.loads(reply.body)
        except ValueError:
            raise UnexpectedResponse(
                f"{method} {_route(path)} answered {reply.status} with a body that is not JSON",
                status=reply.status,
                content_type=reply.content_type,
            ) from None

    async def _bearer(self) -> str:
        if self._token is not None:
            return self._token
        assert self._token_provider is not None
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    async def _call(
        self,
        method: str,
        path: str,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> _Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        sent_headers = {
            **self._headers,
            **(headers or {}),
            "Authorization": f"Bearer {await self._bearer()}",
            "Accept": f"application/json, {PROBLEM_JSON}, */*;q=0.5",
        }
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            sent_headers["Content-Type"] = "application/json"
        url = URL(self._base + path, encoded=True)
        # Messages name the origin and the route, never the path: it may hold a subject id.
        where = f"{self._origin} ({method} {_route(path)})"
        try:
            async with self._session.request(
                method,
                url,
                data=payload,
                headers=sent_headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return _Reply(response.status, response.headers, await response.read())
        except aiohttp.ConnectionTimeoutError:
            raise GatewayUnreachable(
                f"gateway at {where}: no connection within the timeout", request_sent=False
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise GatewayUnreachable(
                f"gateway at {where}: cannot connect ({exc.__class__.__name__})",
                request_sent=False,
            ) from None
        except TimeoutError:
            raise GatewayUnreachable(
                f"gateway at {where}: no answer within {self._timeout.total} s; the request "
                "may have been received (repeat a disclosure with the same Idempotency-Key)",
                request_sent=True,
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayUnreachable(
                f"gateway at {where}: connection lost ({exc.__class__.__name__}); the request "
                "may have been received (repeat a disclosure with the same Idempotency-Key)",
                request_sent=True,
            ) from None

    def _raise(self, reply: _Reply) -> None:
        """Raise the exception for a non-success answer."""
        doc: Any = None
        if reply.content_type == PROBLEM_JSON:
            try:
                doc = json.loads(reply.body)
            except ValueError:
                doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise UnexpectedResponse(
                f"the gateway at {self._origin} answered {reply.status} "
                f"{reply.content_type or 'without a content type'}, not a problem document",
                status=reply.status,
                content_type=reply.content_type,
            )
        # `/problems/<code>` since 2026-12; older gateways sent an absolute URI ending the same.
        code = problem_code(doc["type"])
        try:
            help_url: str | None = str(URL(self._base + "/").join(URL(doc["type"])))
        except ValueError:
            help_url = None
        raise problem_class(code)(
            str(doc.get("detail", "")),
            status=reply.status,
            code=code,
            title=str(doc.get("title", "")),
            disclosure_id=opt_str(doc.get("disclosure_id")) or reply.headers.get("Disclosure-Id"),
            retry_after=_retry_after(reply.headers.get("Retry-After")),
            request_id=reply.headers.get("X-Request-Id"),
            document=doc,
            help_url=help_url,
        )


# -- helpers ------------------------------------------------------------------------------


def _disclosure_body(
    partner: str,
    operation: str,
    purpose: str,
    legal_basis: str,
    subject: str,
    data: Mapping[str, Any],
    legal_request: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner": partner,
        "operation": operation,
        "purpose": purpose,
        "legal_basis": legal_basis,
        "subject": subject,
        "data": dict(data),
    }
    if legal_request is not None:
        body["legal_request"] = legal_request
    return body


def _segment(value: str) -> str:
    """One path segment, percent-encoded ('/' included)."""
    return quote(value, safe="")


def _route(path: str) -> str:
    """The path with its identifier segments elided, for messages."""
    parts = path.split("/")
    named = {"v1", "subjects", "consents", "withdraw", "restriction", "profile"}
    named |= {"disclosures", "decisions", "erasure", "receipt"}
    return "/".join(p if p in named or not p else "…" for p in parts)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times sent to the gateway must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
