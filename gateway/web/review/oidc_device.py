"""The device authorization grant (RFC 8628) with the provider of `[oidc]`: how a person
on a terminal gets an ID token for the CLI (`gateway login --device`), when the provider's
discovery document offers a ``device_authorization_endpoint``.

The CLI shows a URL and a short code; the person opens it in any browser, signs in and
approves; meanwhile the CLI polls the token endpoint at the interval the provider asks
(``authorization_pending``: keep waiting; ``slow_down``: five seconds more) until the
provider answers with tokens, refuses, or the code expires. What comes back is an ID token,
checked like the review site's (without a nonce: this grant has none) by whoever uses it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from gateway.errors import UnauthenticatedError
from gateway.web.review.oidc_client import SCOPES, OidcClient, oauth_error

__all__ = ["DEVICE_GRANT", "DeviceAuthorization", "start_device_flow", "wait_for_id_token"]

DEVICE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL_S: Final = 5.0  # RFC 8628 §3.2, when the provider names none
SLOW_DOWN_S: Final = 5.0  # RFC 8628 §3.5
MAX_WAIT_S: Final = 1800.0


@dataclass(frozen=True)
class DeviceAuthorization:
    """What the person needs to approve the CLI, and what the CLI polls with."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


def _refused(why: str) -> UnauthenticatedError:
    return UnauthenticatedError(f"the device sign-in did not complete: {why}")


async def start_device_flow(client: OidcClient) -> DeviceAuthorization:
    metadata = await client.metadata()
    endpoint = metadata.device_authorization_endpoint
    if endpoint is None:
        raise _refused(
            "the provider offers no device sign-in (no device_authorization_endpoint in its "
            "discovery document); make a personal API token on the review site "
            "(/review/tokens) and pass it with --token-stdin instead"
        )
    status, answer = await client.post_form(
        endpoint, {"client_id": client.config.client_id, "scope": SCOPES}
    )
    if status != 200 or not isinstance(answer, dict):
        shown = oauth_error(answer) if isinstance(answer, dict) else f"HTTP {status}"
        raise _refused(f"the provider refused to start it ({shown})")
    texts = {k: answer.get(k) for k in ("device_code", "user_code", "verification_uri")}
    if not all(isinstance(v, str) and v for v in texts.values()):
        raise _refused("the provider's answer lacks device_code, user_code or verification_uri")
    complete = answer.get("verification_uri_complete")
    expires_in, interval = answer.get("expires_in"), answer.get("interval", DEFAULT_INTERVAL_S)
    return DeviceAuthorization(
        device_code=str(texts["device_code"]),
        user_code=str(texts["user_code"]),
        verification_uri=str(texts["verification_uri"]),
        verification_uri_complete=complete if isinstance(complete, str) else None,
        expires_in=min(float(expires_in), MAX_WAIT_S)
        if isinstance(expires_in, int | float) and expires_in > 0
        else MAX_WAIT_S,
        interval=float(interval) if isinstance(interval, int | float) and interval >= 0 else 5.0,
    )


async def wait_for_id_token(
    client: OidcClient,
    device: DeviceAuthorization,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until the person approved; the ID token (not yet checked)."""
    token_endpoint = (await client.metadata()).token_endpoint
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": device.device_code,
        "client_id": client.config.client_id,
    }
    interval, deadline = device.interval, clock() + device.expires_in
    while clock() < deadline:
        status, answer = await client.post_form(token_endpoint, form)
        if status == 200 and isinstance(answer, dict):
            id_token = answer.get("id_token")
            if not isinstance(id_token, str):
                raise _refused("the provider's token answer holds no ID token")
            return id_token
        error = oauth_error(answer) if isinstance(answer, dict) else f"HTTP {status}"
        if error == "slow_down":
            interval += SLOW_DOWN_S
        elif error != "authorization_pending":
            raise _refused(f"the provider answered {error}")
        await sleep(interval)
    raise _refused("the code expired before it was approved; run the command again")
