"""Per-month keys for the log's subject references and data digests, and forgetting them.

A log entry names its subject only as ``HMAC-SHA-256(key, subject id)`` and its payload
only as a keyed digest, each under the key of the entry's *period*: the calendar month
(UTC) of its time. Destroying the keys of the periods past their retention makes those
references unlinkable to anyone — the entries, their leaf hashes, the tree and every
signed checkpoint stay exactly as they were, so the log still verifies.

The period keys form a one-way chain, ``key(next month) = HMAC(key(month), "next")``,
and the key file keeps only the key of the first period still linkable::

    keys/log-subject-periods.key    "2020-01 <base64 of 32 bytes>\\n"   (0600)

- Every instance that holds the same file derives the same key for every later month,
  so nothing has to be created (or agreed between instances) when a month begins.
- ``forget_before(keys_dir, period)`` replaces the file with the key of `period`: the
  earlier keys cannot be computed from it (HMAC is one-way), so the references of those
  months are unlinkable from then on.
- A running gateway only needs the current month's key; :meth:`LogKeys.drop_before`
  lets it forget older ones in memory too.

The file is created on first use (from fresh random bytes, starting at
:data:`FIRST_PERIOD`) by :func:`ensure_key_file`; with several instances, create it
once (``gateway keys generate`` or the first start) and copy it with the other keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from gateway.canonical import canonical_json
from gateway.files import write_atomically

__all__ = [
    "FIRST_PERIOD",
    "KEY_FILE_NAME",
    "ForgottenPeriod",
    "LogKeys",
    "Period",
    "ensure_key_file",
    "forget_before",
    "key_file",
]

KEY_FILE_NAME: Final = "log-subject-periods.key"
KEY_SIZE: Final = 32
_NEXT = b"gateway log period key\x00next"
_SUBJECT = b"subject\x00"
_DATA = b"data\x00"
_TEXT = b"text\x00"
_LINE = re.compile(r"(\d{4})-(\d{2}) ([A-Za-z0-9+/=]+)")


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month (UTC): the unit in which subject references can be forgotten."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (1 <= self.month <= 12 and 1970 <= self.year <= 9999):
            raise ValueError(f"no such period {self.year:04d}-{self.month:02d}")

    @classmethod
    def of(cls, at: datetime) -> Period:
        """The period of a (timezone-aware) time."""
        if at.tzinfo is None:
            raise ValueError("a period needs a timezone-aware time, got a naive one")
        utc = at.astimezone(UTC)
        return cls(utc.year, utc.month)

    @classmethod
    def parse(cls, text: str) -> Period:
        """``YYYY-MM``."""
        match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if match is None:
            raise ValueError(f"period {text[:20]!r} is not YYYY-MM")
        return cls(int(match[1]), int(match[2]))

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


FIRST_PERIOD: Final = Period(2020, 1)
"""Where a new chain starts; entries dated earlier cannot be written."""


class ForgottenPeriod(ValueError):
    """The key of this period was destroyed (or the time precedes the chain)."""


def key_file(keys_dir: Path) -> Path:
    return keys_dir / KEY_FILE_NAME


def _next_key(key: bytes) -> bytes:
    return hmac.new(key, _NEXT, hashlib.sha256).digest()


def _format(period: Period, key: bytes) -> bytes:
    return f"{period} {base64.b64encode(key).decode('ascii')}\n".encode("ascii")


def _parse(path: Path) -> tuple[Period, bytes]:
    text = path.read_text(encoding="ascii").strip()
    match = _LINE.fullmatch(text)
    if match is None:
        raise ValueError(f"{path}: expected one line 'YYYY-MM <base64 key>'")
    try:
        key = base64.b64decode(match[3], validate=True)
    except binascii.Error:
        raise ValueError(f"{path}: the key is not base64") from None
    if len(key) != KEY_SIZE:
        raise ValueError(f"{path}: the key has {len(key)} bytes, expected {KEY_SIZE}")
    return Period(int(match[1]), int(match[2])), key


def ensure_key_file(keys_dir: Path) -> bool:
    """Create the period key file if it is missing; True when it was created here."""
    path = key_file(keys_dir)
    if path.exists():
        return False
    data = _format(FIRST_PERIOD, secrets.token_bytes(KEY_SIZE))
    return write_atomically(path, data, exclusive=True, sync_directory=True)


class LogKeys:
    """The period keys that make the log's references unlinkable to anyone without them."""

    def __init__(self, key: bytes, first: Period = FIRST_PERIOD) -> None:
        """`key` is the key of period `first`; later ones are derived from it."""
        if len(key) != KEY_SIZE:
            raise ValueError(f"a period key has {KEY_SIZE} bytes, got {len(key)}")
        self._first = first
        self._keys: dict[Period, bytes] = {first: key}

    @classmethod
    def load(cls, keys_dir: Path) -> LogKeys:
        """The keys of `keys_dir`, creating the key file on first use (see module doc)."""
        ensure_key_file(keys_dir)
        first, key = _parse(key_file(keys_dir))
        return cls(key, first)

    @property
    def first_period(self) -> Period:
        """The earliest period whose references can still be computed."""
        return self._first

    def key_for(self, period: Period) -> bytes:
        known_key = self._keys.get(period)  # every entry written asks this: a dict hit
        if known_key is not None:
            return known_key
        if period < self._first:
            raise ForgottenPeriod(
                f"the key of period {period} is gone (keys start at {self._first}); "
                "references of that period can no longer be computed"
            )
        known = max(p for p in self._keys if p <= period)
        key = self._keys[known]
        while known < period:
            known, key = known.next(), _next_key(key)
        self._keys[period] = key
        return key

    def subject_ref(self, subject: str, at: datetime) -> str:
        """The reference to `subject` in an entry written at `at`."""
        key = self.key_for(Period.of(at))
        return hmac.digest(key, _SUBJECT + subject.encode("utf-8"), "sha256").hex()

    def subject_refs(
        self,
        subject: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """The subject's reference in every period still linkable, for searching.

        From the first period kept (or that of `since`) to that of `until` (default now).
        """
        last = Period.of(until or datetime.now(UTC))
        period = self._first if since is None else max(self._first, Period.of(since))
        refs: list[str] = []
        while period <= last:
            refs.append(self.subject_ref(subject, period.start))
            period = period.next()
        return refs

    def data_digest(self, minimized: Mapping[str, Any], at: datetime) -> str:
        """Keyed digest of the minimized payload sent at `at` (proves what was sent)."""
        key = self.key_for(Period.of(at))
        return hmac.digest(key, _DATA + canonical_json(minimized), "sha256").hex()

    def text_hash(self, text: str, at: datetime) -> str:
        """Keyed digest of a person's free text written at `at` (a justification, a reason).

        The log holds this, never the text: a short text could be guessed and checked
        against a plain hash, not against one keyed with a key the company keeps apart.
        Keyed with the month's key like the subject references, so forgetting a month
        also forgets whether a text of that month was what the log saw.
        """
        key = self.key_for(Period.of(at))
        return hmac.digest(key, _TEXT + text.encode("utf-8"), "sha256").hex()

    def drop_before(self, period: Period) -> None:
        """Forget, in memory, every key before `period` (a gateway only writes current ones)."""
        if period <= self._first:
            return
        key = self.key_for(period)
        self._first = period
        self._keys = {p: k for p, k in self._keys.items() if p >= period}
        self._keys[period] = key


def forget_before(
    keys_dir: Path, period: Period, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> tuple[Period, Period]:
    """Destroy the keys of every period before `period`; return (old, new) first period.

    The current month cannot be forgotten: new entries are written under its key.
    """
    current = Period.of(now())
    if period > current:
        raise ValueError(
            f"cannot forget up to {period}: the current period {current} is still written"
        )
    path = key_file(keys_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no period key file, nothing to forget")
    first, key = _parse(path)
    if period <= first:
        return first, first
    keys = LogKeys(key, first)
    write_atomically(path, _format(period, keys.key_for(period)), sync_directory=True)
    return first, period
