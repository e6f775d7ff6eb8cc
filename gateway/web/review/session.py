"""Reviewer sessions for the review page: signed cookies, CSRF tokens, login throttling.

A session is a cookie holding the reviewer id, a session id, an expiry, a CSRF secret and
a fingerprint of the reviewer's configured password hash, authenticated with HMAC-SHA-256
under the session key in ``keys/review-session.key``, and a row of the store
(``review_sessions``, schema 15) under its session id. The cookie says who; the row says
the session has not ended: every signed-in request reads it (one primary-key read), so
signing out ends that session on every instance sharing the store — a copied cookie with
it — and "sign out everywhere" or ``gateway tokens revoke --person`` ends all of a
person's at once. A cookie without a live row opens nothing, nor does one when the store
cannot be read (fail closed: 503). Changing a reviewer's password hash or removing the
reviewer from config.toml ends their sessions too, because the fingerprint no longer
matches.

The CSRF token of a form is the session's CSRF secret: the cookie is HttpOnly and
SameSite=Strict, so another site can neither read the secret nor have the browser send
the cookie, and a token copied from another session does not match this one's. The login
form, used before any session exists, gets the same protection from a short-lived signed
``login`` cookie.

A subject id a reviewer searches for travels between pages only *sealed* (AES-GCM under a
key derived from the session key): links, bookmarks, browser history and any access log
see an opaque token, never the id.

Failed logins are throttled per reviewer id (whether or not the id exists, so the lock
reveals nothing): after ``FREE_FAILURES`` failures the id is locked for a time that doubles
with every further failure. The throttle is per gateway instance (kept in memory).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "LOGIN_TTL",
    "OIDC_FLOW_TTL",
    "SESSION_TTL",
    "LoginThrottle",
    "Sealer",
    "Session",
    "SessionSigner",
    "hash_fingerprint",
]

SESSION_TTL: Final = timedelta(hours=8)
LOGIN_TTL: Final = timedelta(hours=1)
# From the redirect to the provider to its answer: a person signs in within minutes.
OIDC_FLOW_TTL: Final = timedelta(minutes=10)
MAX_COOKIE = 4096

FREE_FAILURES: Final = 5
FIRST_LOCK: Final = timedelta(seconds=30)
MAX_LOCK: Final = timedelta(minutes=15)
FORGET_AFTER: Final = timedelta(minutes=30)
MAX_TRACKED_IDS: Final = 10_000

_SESSION_CONTEXT = b"gateway review session v1\x00"
_LOGIN_CONTEXT = b"gateway review login v1\x00"
_OIDC_FLOW_CONTEXT = b"gateway review oidc flow v1\x00"
_FINGERPRINT_CONTEXT = b"gateway review password fingerprint v1\x00"
_SEAL_CONTEXT = b"gateway review subject seal v1"
_SEAL_AAD = b"subject"
MAX_SEALED = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_fingerprint(key: bytes, password_hash: str) -> str:
    """A short keyed digest of a configured hash: sessions end when the hash changes."""
    mac = hmac.new(key, _FINGERPRINT_CONTEXT + password_hash.encode("utf-8"), hashlib.sha256)
    return _b64(mac.digest()[:12])


@dataclass(frozen=True)
class Session:
    """A signed-in reviewer, as the cookie carries it."""

    reviewer_id: str
    expires: datetime
    csrf: str
    fingerprint: str
    # Its row in the store (review_sessions): random, so no one guesses another's.
    id: str
    # A person signed in through the OpenID provider: their name and gateway roles, as the
    # ID token gave them (a password account's come from config.toml instead).
    name: str | None = None
    roles: frozenset[str] = frozenset()

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            token.encode("utf-8"), self.csrf.encode("utf-8")
        )


class SessionSigner:
    """Issues and checks the session and login cookies with one HMAC key."""

    def __init__(self, key: bytes, *, ttl: timedelta = SESSION_TTL) -> None:
        if len(key) < 32:
            raise ValueError("the session key must be at least 32 bytes")
        self._key = key
        self.ttl = ttl

    def fingerprint(self, password_hash: str) -> str:
        return hash_fingerprint(self._key, password_hash)

    def _sign(self, context: bytes, payload: dict[str, object]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        mac = hmac.new(self._key, context + body.encode("ascii"), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def _open(self, context: bytes, value: str | None) -> dict[str, object] | None:
        if not value or len(value) > MAX_COOKIE or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        expected = hmac.new(self._key, context + body.encode("ascii", "replace"), hashlib.sha256)
        try:
            given = _unb64(mac)
            if not hmac.compare_digest(given, expected.digest()):
                return None
            payload = json.loads(_unb64(body))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        return payload if isinstance(payload, dict) else None

    def issue(
        self,
        reviewer_id: str,
        password_hash: str,
        now: datetime,
        *,
        name: str | None = None,
        roles: frozenset[str] = frozenset(),
    ) -> tuple[str, Session]:
        """A session for `reviewer_id`; `password_hash` is what ends it when it changes (for a
        person of the OpenID provider, the provider's configuration)."""
        session = Session(
            reviewer_id=reviewer_id,
            expires=now + self.ttl,
            csrf=secrets.token_urlsafe(24),
            fingerprint=self.fingerprint(password_hash),
            id=secrets.token_urlsafe(18),
            name=name,
            roles=roles,
        )
        payload: dict[str, object] = {
            "r": session.reviewer_id,
            "exp": int(session.expires.timestamp()),
            "csrf": session.csrf,
            "fp": session.fingerprint,
            "sid": session.id,
        }
        if name is not None:
            payload |= {"n": name, "ro": sorted(roles)}
        return self._sign(_SESSION_CONTEXT, payload), session

    def open(self, value: str | None, now: datetime) -> Session | None:
        """The session the cookie holds, or None if it is absent, forged or expired (whether
        it has ended is the store's to say)."""
        payload = self._open(_SESSION_CONTEXT, value)
        if payload is None:
            return None
        reviewer, exp, csrf, fp, sid = (payload.get(k) for k in ("r", "exp", "csrf", "fp", "sid"))
        if not (
            isinstance(reviewer, str)
            and isinstance(exp, int)
            and isinstance(csrf, str)
            and isinstance(fp, str)
            and isinstance(sid, str)  # a cookie made before sessions had rows: none
        ):
            return None
        expires = datetime.fromtimestamp(exp, tz=now.tzinfo)
        if expires <= now:
            return None
        name, roles = payload.get("n"), payload.get("ro", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return None
        return Session(
            reviewer,
            expires,
            csrf,
            fp,
            sid,
            name if isinstance(name, str) else None,
            frozenset(roles),
        )

    def issue_flow(self, values: dict[str, str], now: datetime) -> str:
        """The cookie that carries an OpenID sign-in's state, nonce and PKCE verifier from
        the redirect to the provider to its answer (no server memory: any instance may
        receive the answer)."""
        return self._sign(
            _OIDC_FLOW_CONTEXT, {**values, "exp": int((now + OIDC_FLOW_TTL).timestamp())}
        )

    def open_flow(self, value: str | None, now: datetime) -> dict[str, str] | None:
        """What a still-valid flow cookie holds; None when absent, forged or expired."""
        payload = self._open(_OIDC_FLOW_CONTEXT, value)
        if payload is None:
            return None
        exp = payload.pop("exp", None)
        if not isinstance(exp, int) or exp <= now.timestamp():
            return None
        if not all(isinstance(x, str) for x in payload.values()):
            return None
        return {k: str(x) for k, x in payload.items()}

    def issue_login(self, now: datetime) -> tuple[str, str]:
        """A cookie for the login form and the CSRF token that goes with it."""
        token = secrets.token_urlsafe(24)
        exp = int((now + LOGIN_TTL).timestamp())
        return self._sign(_LOGIN_CONTEXT, {"csrf": token, "exp": exp}), token

    def login_token(self, value: str | None, now: datetime) -> str | None:
        """The CSRF token a still-valid login cookie holds."""
        payload = self._open(_LOGIN_CONTEXT, value)
        if payload is None:
            return None
        token, exp = payload.get("csrf"), payload.get("exp")
        if not isinstance(token, str) or not isinstance(exp, int) or exp <= now.timestamp():
            return None
        return token


class Sealer:
    """Seals short texts (a searched subject id) into opaque, tamper-evident URL tokens."""

    def __init__(self, key: bytes) -> None:
        derived = hmac.new(key, _SEAL_CONTEXT, hashlib.sha256).digest()
        self._aead = AESGCM(derived)

    def seal(self, text: str) -> str:
        nonce = secrets.token_bytes(12)
        return _b64(nonce + self._aead.encrypt(nonce, text.encode("utf-8"), _SEAL_AAD))

    def open(self, token: str) -> str | None:
        """The sealed text, or None for a token altered or sealed under another key."""
        if not token or len(token) > MAX_SEALED:
            return None
        try:
            raw = _unb64(token)
            if len(raw) < 12 + 16:
                return None
            return self._aead.decrypt(raw[:12], raw[12:], _SEAL_AAD).decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            return None


@dataclass
class _Failures:
    count: int
    last: datetime
    locked_until: datetime | None


class LoginThrottle:
    """Counts failed logins per reviewer id and locks an id that keeps failing."""

    def __init__(
        self,
        *,
        free: int = FREE_FAILURES,
        first_lock: timedelta = FIRST_LOCK,
        max_lock: timedelta = MAX_LOCK,
    ) -> None:
        self._free = free
        self._first_lock = first_lock
        self._max_lock = max_lock
        self._ids: OrderedDict[str, _Failures] = OrderedDict()

    def locked_for(self, reviewer_id: str, now: datetime) -> timedelta | None:
        """How long `reviewer_id` must still wait before trying again, or None."""
        state = self._ids.get(reviewer_id)
        if state is None or state.locked_until is None or state.locked_until <= now:
            return None
        return state.locked_until - now

    def failed(self, reviewer_id: str, now: datetime) -> None:
        state = self._ids.get(reviewer_id)
        if state is None or now - state.last > FORGET_AFTER:
            state = _Failures(0, now, None)
        state.count += 1
        state.last = now
        over = state.count - self._free
        if over >= 0:
            lock = min(self._first_lock * (2 ** min(over, 20)), self._max_lock)
            state.locked_until = now + lock
        self._ids[reviewer_id] = state
        self._ids.move_to_end(reviewer_id)
        while len(self._ids) > MAX_TRACKED_IDS:
            # Bounded memory under a spray of made-up ids; the oldest entries go first.
            self._ids.popitem(last=False)

    def succeeded(self, reviewer_id: str) -> None:
        self._ids.pop(reviewer_id, None)
