"""A partner's standing (issue 9): agreements that expire, partner keys that expire,
and suspending a partner at once on every instance.

- **Agreements**: `agreement_days_left` and `expiry_warnings` say how long each
  data-processing agreement (and each partner key file) still runs; the refusal
  itself is a pure rule of `policy.decide()`.
- **Suspensions** live in the store, so every instance sees them. `PartnerStates`
  gives `decide()` each partner's suspension, read from the store at most
  `SUSPENSION_TTL_S` old, and when its keys expire (from the key cache);
  `Suspensions` is the one place that suspends and resumes (CLI, API, review page):
  it checks the input, writes the suspension and its history row in one
  transaction, and writes an application log line.

Reloading partner files and config without a restart is `gateway.ops.reload`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Protocol

from gateway.errors import InvalidRequestError, UnknownPartnerError
from gateway.partners.keyfile import PartnerKeyError, last_expiry, read_partner_key_file
from gateway.partners.model import Partner, PartnerState, Suspension, SuspensionEvent

__all__ = [
    "MAX_REASON",
    "SUSPENSION_TTL_S",
    "ExpiryWarning",
    "KeyExpiry",
    "PartnerStates",
    "SuspensionStore",
    "Suspensions",
    "agreement_days_left",
    "expiry_warnings",
    "file_keys_expire_at",
    "log_expiry_warnings",
    "suspension_json",
]

# The name operators filter on, kept when this module moved (gateway.lifecycle before).
log = logging.getLogger("gateway.lifecycle")

# How old the suspensions an instance decides with may be. Half a second keeps the
# promise "stopped on every instance within a second" with room for the read itself,
# and costs each instance two small reads a second at most, whatever the traffic.
SUSPENSION_TTL_S: Final = 0.5
MAX_REASON: Final = 2000


# -- agreements and key expiry ------------------------------------------------------


def agreement_days_left(partner: Partner, today: date) -> int | None:
    """Days the agreement still covers after `today` (0: today is its last day; negative:
    expired that many days ago); None for an open-ended agreement."""
    if partner.agreement_expires_on is None:
        return None
    return (partner.agreement_expires_on - today).days


def file_keys_expire_at(partner: Partner) -> datetime | None:
    """When the last key in the partner's key file expires (None: one never does, the
    partner uses a JWKS URL, or the file cannot be read — the loader reports that)."""
    path = partner.encryption.public_key
    if path is None:
        return None
    try:
        return last_expiry(read_partner_key_file(path, alg=partner.encryption.alg))
    except PartnerKeyError:
        return None


@dataclass(frozen=True)
class ExpiryWarning:
    """An agreement or key that has expired or expires within the warning window.

    `last_day` is the last (UTC) day it covers; `days_left` counts from today (0: today
    is the last day, negative: ended that many days ago).
    """

    partner_id: str
    what: str  # "agreement" | "keys"
    last_day: date
    days_left: int
    expired: bool

    def message(self) -> str:
        if self.what == "agreement":
            subject = f"the data-processing agreement of {self.partner_id}"
            consequence = "every disclosure to it is refused (agreement_expired)"
            remedy = "renew it and set agreement_expires_on in its partner file"
        else:
            subject = f"the encryption key(s) of {self.partner_id}"
            consequence = "every disclosure to it is refused (partner_key_expired)"
            remedy = "ask the partner for a current key"
        if self.expired:
            return (
                f"{subject} expired ({self.last_day.isoformat()} was its last day, "
                f"{-self.days_left} day(s) ago): {consequence}; {remedy}"
            )
        return (
            f"{subject} ends on {self.last_day.isoformat()} ({self.days_left} day(s) left); "
            f"after that {consequence}; {remedy}"
        )


def expiry_warnings(
    partners: Iterable[Partner],
    now: datetime,
    warn_days: int,
    keys_expire_at: Callable[[Partner], datetime | None] = file_keys_expire_at,
) -> list[ExpiryWarning]:
    """Agreements and key files ending within `warn_days` of `now`, or already ended."""
    today = now.astimezone(UTC).date()
    found: list[ExpiryWarning] = []
    for partner in sorted(partners, key=lambda p: p.id):
        left = agreement_days_left(partner, today)
        if partner.agreement_expires_on is not None and left is not None and left <= warn_days:
            found.append(
                ExpiryWarning(partner.id, "agreement", partner.agreement_expires_on, left, left < 0)
            )
        keys_end = keys_expire_at(partner)
        if keys_end is not None:
            last_day = keys_end.astimezone(UTC).date()
            days = (last_day - today).days
            if days <= warn_days:
                found.append(ExpiryWarning(partner.id, "keys", last_day, days, now >= keys_end))
    return found


def log_expiry_warnings(partners: Iterable[Partner], now: datetime, warn_days: int) -> None:
    """The start-up (and reload) warnings in the application log."""
    for warning in expiry_warnings(partners, now, warn_days):
        log.warning("%s", warning.message())


# -- what decide() knows about a partner ----------------------------------------------


class SuspensionStore(Protocol):
    """The part of the store (gateway.store.base.Store) suspensions need."""

    async def suspend_partner(self, suspension: Suspension) -> Suspension: ...

    async def resume_partner(
        self, partner_id: str, actor: str, reason: str, at: datetime
    ) -> Suspension | None: ...

    async def partner_suspensions(self) -> dict[str, Suspension]: ...

    async def suspension_history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]: ...


class KeyExpiry(Protocol):
    """The part of gateway.crypto.seal.PartnerKeyCache PartnerStates needs."""

    async def keys_expire_at(self, partner: Partner) -> datetime | None: ...


class PartnerStates:
    """Each partner's suspension (from the store, at most `ttl_s` old) and key expiry.

    The suspensions table is read whole, by whichever request first finds the copy
    stale; requests arriving meanwhile wait for that one read. A store that cannot
    be read fails the request (StoreUnavailable, 503): the gateway does not disclose
    while it cannot tell whether the partner is suspended.
    """

    def __init__(
        self,
        store: SuspensionStore,
        keys: KeyExpiry | None = None,
        *,
        ttl_s: float = SUSPENSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._keys = keys
        self._ttl = ttl_s
        self._clock = clock
        self._suspensions: Mapping[str, Suspension] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def state_of(self, partner: Partner) -> PartnerState:
        suspensions = await self.suspensions()
        expires = await self._keys.keys_expire_at(partner) if self._keys is not None else None
        return PartnerState(suspension=suspensions.get(partner.id), keys_expire_at=expires)

    async def suspensions(self) -> Mapping[str, Suspension]:
        if self._fresh():
            return self._suspensions
        async with self._lock:
            if not self._fresh():
                started = self._clock()
                self._suspensions = await self._store.partner_suspensions()
                # Aged from before the read: a suspension committed during it is seen next.
                self._read_at = started
        return self._suspensions

    def invalidate(self) -> None:
        """Read again on the next request (after this instance suspended or resumed)."""
        self._read_at = None

    def _fresh(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at < self._ttl


# -- suspending and resuming ------------------------------------------------------------


def _reason(value: object, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if (
        not isinstance(value, str)
        or (required and not value.strip())
        or len(value) > MAX_REASON
        or not all(c.isprintable() or c in "\r\n\t" for c in value)
    ):
        need = "1" if required else "0"
        raise InvalidRequestError(
            f"'reason' must be text of {need} to {MAX_REASON} printable characters: why the "
            "partner is suspended or resumed (an incident or ticket reference, no personal "
            "data)",
        )
    return value.strip()


class SuspensionRecorder(Protocol):
    """Records a suspend or resume in the disclosure log (gateway.log.actions.ActionLog),
    durably, before the store is written; raises when it cannot (then nothing changes)."""

    async def suspension(
        self, action: str, partner_id: str, actor: str, credential: str, reason: str, at: datetime
    ) -> None: ...


class Suspensions:
    """Suspend and resume partners: the one path for the CLI, the API and the review page.

    With a `recorder`, each act is first an `action` entry of the disclosure log (who,
    which credential, when, the reason's keyed hash), written before the store's rows:
    a suspension row never exists without its entry.

    Each act is recorded twice: the store keeps the suspension in force and appends a
    history row in the same transaction (who, when, why), and the application log
    gets a line naming the partner and the actor (the free-text reason stays in the
    store). Refusals caused by a suspension are `refused` entries of the disclosure
    log, so its effect is in the tamper-evident log too.
    """

    def __init__(
        self,
        store: SuspensionStore,
        partners: Mapping[str, Partner],
        clock: Callable[[], datetime],
        states: PartnerStates | None = None,
        recorder: SuspensionRecorder | None = None,
    ) -> None:
        self._store = store
        self._partners = partners
        self._clock = clock
        self._states = states
        self._recorder = recorder

    def _known(self, partner_id: str) -> str:
        if partner_id not in self._partners:
            known = ", ".join(sorted(self._partners)) or "none"
            raise UnknownPartnerError(
                f"no partner {partner_id[:80]!r} is onboarded; known: {known}",
            )
        return partner_id

    async def suspend(
        self, partner_id: str, reason: object, actor: str, credential: str = ""
    ) -> tuple[Suspension, bool]:
        """Suspend now; returns the suspension in force and whether this call made it."""
        wanted = Suspension(
            partner_id=self._known(partner_id),
            reason=_reason(reason, required=True),
            by=actor,
            at=self._clock(),
        )
        if self._recorder is not None:
            in_force = (await self._store.partner_suspensions()).get(partner_id)
            if in_force is not None:  # nothing to do, so nothing to record
                return in_force, False
            await self._recorder.suspension(
                "suspend", partner_id, actor, credential, wanted.reason, wanted.at
            )
        found = await self._store.suspend_partner(wanted)
        made = found == wanted
        if self._states is not None:
            self._states.invalidate()
        if made:
            log.warning("partner %s suspended by %s: no disclosure goes to it", partner_id, actor)
        return found, made

    async def resume(
        self, partner_id: str, actor: str, reason: object = None, credential: str = ""
    ) -> Suspension | None:
        """Lift the suspension; returns it, or None when the partner was not suspended."""
        why, at = _reason(reason, required=False), self._clock()
        self._known(partner_id)
        if self._recorder is not None:
            if partner_id not in await self._store.partner_suspensions():
                return None  # nothing to lift, so nothing to record
            await self._recorder.suspension("resume", partner_id, actor, credential, why, at)
        lifted = await self._store.resume_partner(partner_id, actor, why, at)
        if self._states is not None:
            self._states.invalidate()
        if lifted is not None:
            log.warning(
                "partner %s resumed by %s: disclosures to it may pass again", partner_id, actor
            )
        return lifted

    async def in_force(self) -> dict[str, Suspension]:
        return await self._store.partner_suspensions()

    async def history(
        self, partner_id: str | None = None, limit: int = 100
    ) -> list[SuspensionEvent]:
        return await self._store.suspension_history(partner_id, limit)


def suspension_json(suspension: Suspension) -> dict[str, object]:
    return {
        "partner": suspension.partner_id,
        "reason": suspension.reason,
        "by": suspension.by,
        "at": suspension.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
