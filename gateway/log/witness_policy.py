"""Which witnesses must cosign a checkpoint: the C2SP tlog-policy file (`[log] witness_policy`).

The format (https://c2sp.org/tlog-policy, the Sigsum policy with vkeys) is one item per
line, items separated by spaces or tabs, ``#`` starting a comment::

    log <vkey> [<url>]                      the log (type 0x01 vkey; its name is the origin)
    witness <name> <vkey> [<url>]           a witness (type 0x04 vkey, tlog-cosignature)
    group <name> all|any|<k> <member>...    k of the members (witnesses or groups)
    quorum <name>|none                      exactly one: what makes a checkpoint witnessed

A group or the quorum names only what earlier lines defined (so there is no cycle), and
every name is a member of at most one group, so a witness counts once. ``none`` asks for
no cosignature. A witness URL is its tlog-witness submission prefix; the gateway needs one
for each witness it submits to (:func:`gateway_problems`), an offline verifier none.

Text is read as UTF-8 (tlog-policy allows other bytes in names and comments; a vkey's key
name must be UTF-8 anyway), with no control character but tab; names compare as written.
Every bad line is reported, all at once, as ``FILE:LINE: what is wrong — what would be
valid`` (:class:`ConfigErrors`). Pure but for :func:`load_witness_policy`, which reads
the file.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.errors import ConfigError, ConfigErrors
from gateway.log.checkpoint import CheckpointError, parse_verifier_key
from gateway.log.cosignature import WitnessKey, parse_witness_vkey
from gateway.net import fetchable_url

__all__ = [
    "NONE",
    "Group",
    "PolicyLog",
    "PolicyWitness",
    "WitnessPolicy",
    "gateway_problems",
    "load_witness_policy",
    "parse_witness_policy",
]

NONE: Final = "none"
"""The predefined quorum that asks for no cosignature."""

MAX_POLICY_BYTES: Final = 64 * 1024
MAX_ENTRIES: Final = 256
"""At most this many logs, witnesses and groups each (the spec asks for at least 32)."""

_KEYWORDS: Final = ("log", "witness", "group", "quorum")
_SEPARATORS = re.compile(r"[ \t]+")
_THRESHOLD = re.compile(r"[1-9][0-9]*")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab is a separator, newline ends a line


@dataclass(frozen=True)
class PolicyLog:
    """A log whose checkpoints the policy accepts: its origin (the vkey's name) and key."""

    origin: str
    vkey: str
    url: str | None
    line: int


@dataclass(frozen=True)
class PolicyWitness:
    """A witness: the policy's name for it, its key (and key name), where it takes submissions."""

    name: str
    key: WitnessKey
    url: str | None
    line: int


@dataclass(frozen=True)
class Group:
    """Witnessed when at least ``threshold`` of ``members`` (witnesses or groups) are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class WitnessPolicy:
    """A parsed policy file. ``quorum`` is a witness or group name, or :data:`NONE`."""

    path: str
    quorum: str
    logs: tuple[PolicyLog, ...] = ()
    witnesses: Mapping[str, PolicyWitness] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)

    def witness_keys(self) -> dict[str, WitnessKey]:
        """Each witness's key by its policy name (what ``cosignature.cosigners`` takes)."""
        return {name: w.key for name, w in self.witnesses.items()}

    def satisfied_by(self, cosigned: Collection[str]) -> bool:
        """Whether cosignatures by the witnesses named ``cosigned`` (policy names) meet the
        quorum. Names the policy does not define count for nothing."""
        return self._witnessed(self.quorum, frozenset(cosigned))

    def _witnessed(self, name: str, cosigned: frozenset[str]) -> bool:
        if name == NONE:
            return True
        group = self.groups.get(name)
        if group is None:
            return name in self.witnesses and name in cosigned
        done = sum(1 for member in group.members if self._witnessed(member, cosigned))
        return done >= group.threshold


def load_witness_policy(path: Path) -> WitnessPolicy:
    """Read and parse the policy file at ``path``; ConfigErrors naming ``FILE:LINE``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError(str(path), None, f"witness policy unreadable ({exc.strerror or exc})")]
        ) from exc
    if len(data) > MAX_POLICY_BYTES:
        raise ConfigErrors(
            [ConfigError(str(path), None, f"witness policy is over {MAX_POLICY_BYTES} bytes")]
        )
    return parse_witness_policy(data, str(path))


def parse_witness_policy(data: bytes, path: str) -> WitnessPolicy:
    """Parse a policy file's bytes (``path`` names it in the messages)."""
    parser = _Parser(path)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        parser.line(number, raw)
    return parser.finish()


def gateway_problems(policy: WitnessPolicy, log_vkey: str | None = None) -> list[ConfigError]:
    """What makes a valid policy unusable by a gateway that submits its checkpoints: a
    witness without a URL it may send to (https://, or http:// to loopback, as every URL
    the gateway calls), and (given the gateway's ``log_vkey``) log lines none of which
    names this log."""
    problems: list[ConfigError] = []
    for w in policy.witnesses.values():
        if w.url is None:
            problems.append(
                ConfigError(
                    policy.path,
                    w.line,
                    f"witness {w.name} has no URL — the gateway submits its checkpoints to "
                    "each witness: write 'witness NAME VKEY https://witness.example/prefix'",
                )
            )
        elif not fetchable_url(w.url):
            problems.append(
                ConfigError(
                    policy.path,
                    w.line,
                    f"witness {w.name} URL '{w.url}' — expected https://, or http:// only to "
                    "a loopback host",
                )
            )
    if log_vkey is not None and policy.logs and log_vkey not in {log.vkey for log in policy.logs}:
        problems.append(
            ConfigError(
                policy.path,
                policy.logs[0].line,
                f"no log line names this gateway's log key — expected 'log {log_vkey}'",
            )
        )
    return problems


class _Parser:
    """Reads lines in order (a group names only what came before) and collects errors."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[ConfigError] = []
        self.logs: list[PolicyLog] = []
        self.log_keys: dict[bytes, int] = {}
        self.witnesses: dict[str, PolicyWitness] = {}
        self.witness_keys: dict[bytes, int] = {}
        self.groups: dict[str, Group] = {}
        self.member_of: dict[str, str] = {}
        self.quorum: tuple[str, int] | None = None

    def fail(self, number: int | None, message: str) -> None:
        self.errors.append(ConfigError(self.path, number, message))

    def line(self, number: int, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(number, "not UTF-8 — save the policy file as UTF-8")
            return
        bad = _FORBIDDEN.search(text)
        if bad is not None:
            self.fail(
                number,
                f"control character U+{ord(bad.group()):04X} — only tab and newline may "
                "appear (a Windows line end? save with Unix line ends)",
            )
            return
        items = _SEPARATORS.split(text.strip(" \t"))
        comment = next((i for i, item in enumerate(items) if item.startswith("#")), len(items))
        items = [item for item in items[:comment] if item]
        if not items:
            return
        keyword, args = items[0], items[1:]
        if keyword == "log":
            self.log(number, args)
        elif keyword == "witness":
            self.witness(number, args)
        elif keyword == "group":
            self.group(number, args)
        elif keyword == "quorum":
            self.set_quorum(number, args)
        else:
            self.fail(number, f"unknown line '{keyword}' — valid: {', '.join(_KEYWORDS)}")

    def log(self, number: int, args: list[str]) -> None:
        if len(args) not in (1, 2):
            self.fail(number, f"log line has {len(args)} items — expected 'log VKEY [URL]'")
            return
        try:
            origin, public_key = parse_verifier_key(args[0])
        except CheckpointError as exc:
            self.fail(number, f"log key: {exc} — expected the log's note vkey (type 0x01)")
            return
        url = self.url(number, args[1:])
        if self.duplicate(number, "log", public_key, self.log_keys):
            return
        if len(self.logs) == MAX_ENTRIES:
            self.fail(number, f"more than {MAX_ENTRIES} logs")
            return
        self.logs.append(PolicyLog(origin, args[0], url, number))

    def witness(self, number: int, args: list[str]) -> None:
        if len(args) not in (2, 3):
            self.fail(
                number,
                f"witness line has {len(args)} items — expected 'witness NAME VKEY [URL]'",
            )
            return
        name = args[0]
        if not self.new_name(number, name):
            return
        try:
            key = parse_witness_vkey(args[1])
        except CheckpointError as exc:
            self.fail(
                number, f"witness {name} key: {exc} — expected a cosignature vkey (type 0x04)"
            )
            return
        url = self.url(number, args[2:])
        if self.duplicate(number, f"witness {name}", key.public_key, self.witness_keys):
            return
        if len(self.witnesses) == MAX_ENTRIES:
            self.fail(number, f"more than {MAX_ENTRIES} witnesses")
            return
        self.witnesses[name] = PolicyWitness(name, key, url, number)

    def group(self, number: int, args: list[str]) -> None:
        if len(args) < 3:
            self.fail(
                number,
                "group line is short — expected 'group NAME all|any|K MEMBER...' "
                "with at least one member",
            )
            return
        name, how, members = args[0], args[1], tuple(args[2:])
        if not self.new_name(number, name):
            return
        if how == "all":
            threshold = len(members)
        elif how == "any":
            threshold = 1
        elif _THRESHOLD.fullmatch(how) and int(how) <= len(members):
            threshold = int(how)
        else:
            self.fail(
                number,
                f"group {name} threshold '{how}' — expected all, any or a number from 1 to "
                f"{len(members)} (its member count)",
            )
            return
        listed: set[str] = set()
        if not all([self.member(number, name, member, listed) for member in members]):
            return
        if len(self.groups) == MAX_ENTRIES:
            self.fail(number, f"more than {MAX_ENTRIES} groups")
            return
        self.member_of.update(dict.fromkeys(members, name))
        self.groups[name] = Group(name, threshold, members)

    def member(self, number: int, group: str, member: str, listed: set[str]) -> bool:
        """Whether ``member`` may join ``group`` (all members are checked, so every
        problem of the line is reported; they join only when the whole line is valid)."""
        if member == NONE:
            self.fail(
                number, f"group {group}: 'none' cannot be a member — name witnesses or groups"
            )
            return False
        if member not in self.witnesses and member not in self.groups:
            self.fail(
                number,
                f"group {group}: '{member}' is not defined above — define a witness or group "
                "before the line that names it",
            )
            return False
        other = group if member in listed else self.member_of.get(member)
        if other is not None:
            self.fail(
                number,
                f"group {group}: '{member}' is already a member of {other} — "
                "each name may be a member of one group only, so it counts once",
            )
            return False
        listed.add(member)
        return True

    def set_quorum(self, number: int, args: list[str]) -> None:
        if len(args) != 1:
            self.fail(number, f"quorum line has {len(args)} items — expected 'quorum NAME|none'")
            return
        if self.quorum is not None:
            self.fail(number, f"second quorum line (the first is line {self.quorum[1]}) — one only")
            return
        name = args[0]
        if name != NONE and name not in self.witnesses and name not in self.groups:
            self.fail(
                number,
                f"quorum '{name}' is not defined above — name a witness or group defined "
                "earlier, or 'none'",
            )
        self.quorum = (name, number)

    def new_name(self, number: int, name: str) -> bool:
        if name == NONE:
            self.fail(number, f"'{name}' is reserved (quorum none) — choose another name")
            return False
        if name in self.witnesses or name in self.groups:
            self.fail(number, f"'{name}' is already defined — witness and group names are unique")
            return False
        return True

    def url(self, number: int, args: list[str]) -> str | None:
        if not args:
            return None
        parts = urlsplit(args[0])
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(number, f"URL '{args[0]}' — expected an http(s) URL")
        return args[0]

    def duplicate(
        self, number: int, what: str, public_key: Ed25519PublicKey, seen: dict[bytes, int]
    ) -> bool:
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if raw in seen:
            self.fail(number, f"{what}: same public key as line {seen[raw]} — one line per key")
            return True
        seen[raw] = number
        return False

    def finish(self) -> WitnessPolicy:
        if self.quorum is None:
            self.fail(
                None, "no quorum line — add 'quorum NAME' (a witness or group) or 'quorum none'"
            )
        if self.errors:
            raise ConfigErrors(self.errors)
        assert self.quorum is not None
        return WitnessPolicy(
            path=self.path,
            quorum=self.quorum[0],
            logs=tuple(self.logs),
            witnesses=dict(self.witnesses),
            groups=dict(self.groups),
        )
