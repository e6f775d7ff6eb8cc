"""Receipts: a disclosure's intent entry proven in a witnessed checkpoint, checkable offline.

A receipt is a C2SP tlog-proof (https://c2sp.org/tlog-proof, file extension
``.tlog-proof``)::

    c2sp.org/tlog-proof@v1
    [extra <base64>]                 opaque, unauthenticated (the gateway writes none)
    index <entry index, decimal>
    <base64 hash>                    the inclusion proof, leaf's sibling up to the root's child
    ...
                                     (an empty line)
    <the checkpoint's signed note, verbatim: its text, a blank line, the log's signature
     line and the witnesses' cosignature lines>

The gateway writes no ``extra`` line: everything a verifier needs is in the checkpoint, the
proof and the entry (``GET /v1/log/entries/{index}``), and an unauthenticated field is one
more place where something personal could leak. A receipt that carries one still parses;
its bytes are ignored, as the spec requires.

:func:`verify_receipt` needs nothing of the gateway but the receipt, the entry and a C2SP
tlog-policy (``gateway.log.witness_policy``): its ``log`` line is the log's key (its
name the origin), its witnesses and quorum say who must have cosigned. Each way a receipt
can fail is its own :class:`ReceiptError` subclass, with a ``reason`` a script can read and
a message that says what was expected and what was found.

:func:`acknowledgement_of` adds the other side (issue #18 item 6): given the disclosure's
``outcome`` entry and the partner's public key, the partner's signed acknowledgement that
the outcome records, checked like ``gateway ack verify`` does and tied to the receipt's
entry (same disclosure id, same partner). The receipt proves the intent entry is in the log;
the acknowledgement proves, by the partner's own signature, that the partner received what
was sent for that disclosure.

Pure and I/O-free, like the rest of the log's formats.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.canonical import canonical_json
from gateway.crypto.acknowledgement import (
    Acknowledgement,
    AcknowledgementInvalid,
    verify_acknowledgement,
)
from gateway.log.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    SignatureLine,
    b64decode_strict,
    open_checkpoint,
    split_note,
)
from gateway.log.cosignature import cosigners
from gateway.log.merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from gateway.log.witness_policy import NONE, WitnessPolicy
from gateway.partners.keyfile import PartnerKeyError, parse_acknowledgement_keys

__all__ = [
    "CONTENT_TYPE",
    "FILE_EXTENSION",
    "HEADER",
    "MAX_RECEIPT_BYTES",
    "Acknowledged",
    "AcknowledgementNotShown",
    "BadCosignature",
    "EntryIndexMismatch",
    "InclusionFailed",
    "LogSignatureInvalid",
    "MalformedReceipt",
    "QuorumNotMet",
    "Receipt",
    "ReceiptError",
    "ReceiptResult",
    "UnusableEntry",
    "UnusablePartnerKey",
    "UnusablePolicy",
    "acknowledgement_of",
    "entry_of",
    "format_receipt",
    "parse_receipt",
    "partner_key_of",
    "quorum_needs",
    "verify_receipt",
]

HEADER: Final = "c2sp.org/tlog-proof@v1"
FILE_EXTENSION: Final = ".tlog-proof"
CONTENT_TYPE: Final = "text/plain; charset=utf-8"
MAX_RECEIPT_BYTES: Final = 64 * 1024
"""A receipt is a few hundred bytes of proof and a note of at most 100 signature lines."""
MAX_PROOF_HASHES: Final = 64
"""An inclusion proof in a tree of at most 2^64 leaves has at most 64 hashes."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_SERVED_MEMBERS: Final = frozenset({"index", "leaf_hash", "entry"})


# --------------------------------------------------------------------------- errors


class ReceiptError(ValueError):
    """A receipt that does not hold; ``reason`` names which part failed."""

    reason = "receipt"


class MalformedReceipt(ReceiptError):
    """The text is not a tlog-proof document (or its checkpoint not a signed note)."""

    reason = "malformed receipt"


class LogSignatureInvalid(ReceiptError):
    """The checkpoint is not the policy's log's (another origin), or its signature is false."""

    reason = "log signature"


class BadCosignature(ReceiptError):
    """A cosignature line by a witness of the policy does not verify (witnesses never make one)."""

    reason = "bad cosignature"


class QuorumNotMet(ReceiptError):
    """Fewer witnesses cosigned than the policy's quorum needs."""

    reason = "quorum not met"


class InclusionFailed(ReceiptError):
    """The entry and the proof do not lead to the checkpoint's root: one of them changed."""

    reason = "inclusion"


class EntryIndexMismatch(ReceiptError):
    """The entry given is served for another index than the receipt proves."""

    reason = "entry index mismatch"


class AcknowledgementNotShown(ReceiptError):
    """The outcome entry given shows no valid acknowledgement by the partner of this
    receipt's disclosure: none recorded, recorded missing or invalid, a false signature,
    or the outcome of another disclosure."""

    reason = "acknowledgement"


class UnusablePolicy(ValueError):
    """The policy cannot check any receipt (no ``log`` line): unusable input, not a finding."""


class UnusableEntry(ValueError):
    """The entry file is not an entry (not a JSON object): unusable input, not a finding."""


class UnusablePartnerKey(ValueError):
    """The partner key file holds no public signing key: unusable input, not a finding."""


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True)
class Receipt:
    """A parsed tlog-proof: the entry's index, its inclusion proof and the checkpoint note."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None


def format_receipt(
    index: int, hashes: Sequence[bytes], checkpoint_note: str, extra: bytes | None = None
) -> str:
    """The tlog-proof text: header, [extra], index, one base64 hash a line, a blank line,
    then the signed checkpoint note verbatim."""
    if isinstance(index, bool) or not 0 <= index <= MAX_TREE_SIZE:
        raise MalformedReceipt(f"index is {index!r}, expected an int in 0..{MAX_TREE_SIZE}")
    for number, h in enumerate(hashes, start=1):
        if len(h) != HASH_SIZE:
            raise MalformedReceipt(f"proof hash {number} has {len(h)} bytes, expected {HASH_SIZE}")
    if not checkpoint_note.endswith("\n"):
        raise MalformedReceipt("the checkpoint note does not end with a newline")
    lines = [HEADER]
    if extra is not None:
        lines.append(f"extra {base64.b64encode(extra).decode('ascii')}")
    lines.append(f"index {index}")
    lines.extend(base64.b64encode(h).decode("ascii") for h in hashes)
    return "\n".join(lines) + "\n\n" + checkpoint_note


def parse_receipt(data: str | bytes) -> Receipt:
    """Parse a tlog-proof strictly: every line as the spec writes it, canonical base64,
    hashes of 32 bytes, an index without leading zeros. The checkpoint note is kept as is
    (:func:`verify_receipt` opens it)."""
    text = _text_of(data)
    first = text.split("\n", 1)[0]
    if first != HEADER:
        raise MalformedReceipt(f"first line is {first[:40]!r}, expected {HEADER!r}")
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise MalformedReceipt(
            "no empty line, expected the proof lines, an empty line, then the checkpoint"
        )
    rest = head.split("\n")[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = b64decode_strict(rest[0].removeprefix("extra "))
        if extra is None:
            raise MalformedReceipt("the extra line is not 'extra ' and canonical base64")
        rest = rest[1:]
    if not rest or not rest[0].startswith("index "):
        found = rest[0][:40] if rest else "nothing"
        raise MalformedReceipt(f"expected 'index N' after the header, found {found!r}")
    index = _index(rest[0].removeprefix("index "))
    hashes = tuple(_hash(line, number) for number, line in enumerate(rest[1:], start=1))
    if len(hashes) > MAX_PROOF_HASHES:
        raise MalformedReceipt(
            f"the inclusion proof has {len(hashes)} hashes, expected at most {MAX_PROOF_HASHES}"
        )
    if not note.strip("\n"):
        raise MalformedReceipt("no checkpoint after the empty line")
    if not note.endswith("\n"):
        raise MalformedReceipt("the checkpoint does not end with a newline")
    return Receipt(index, hashes, note, extra)


def _text_of(data: str | bytes) -> str:
    if len(data) > MAX_RECEIPT_BYTES:
        raise MalformedReceipt(f"the receipt is over {MAX_RECEIPT_BYTES} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedReceipt("the receipt is not UTF-8 text") from None
    if "\r" in data:
        raise MalformedReceipt("the receipt holds a carriage return, expected lines ending in \\n")
    return data


def _index(text: str) -> int:
    if len(text) > len(str(MAX_TREE_SIZE)) or not _DECIMAL.fullmatch(text):
        raise MalformedReceipt(f"index {text[:40]!r} is not a decimal number without leading zeros")
    index = int(text)
    if index > MAX_TREE_SIZE:
        raise MalformedReceipt(f"index {index} is larger than {MAX_TREE_SIZE}")
    return index


def _hash(line: str, number: int) -> bytes:
    raw = b64decode_strict(line)
    if raw is None:
        raise MalformedReceipt(f"proof line {number} is not canonical base64")
    if len(raw) != HASH_SIZE:
        raise MalformedReceipt(f"proof hash {number} has {len(raw)} bytes, expected {HASH_SIZE}")
    return raw


# --------------------------------------------------------------------------- the entry


def entry_of(data: str | bytes | Mapping[str, Any]) -> tuple[int | None, bytes]:
    """The entry's index (if the input says one) and its canonical bytes.

    Takes what ``GET /v1/log/entries/{index}`` serves (``{"index", "leaf_hash", "entry"}``)
    or the bare entry object. The leaf hash covers the canonical JSON of the entry
    (``gateway.canonical``), which every entry the gateway writes is, so the bytes are
    recomputed from the parsed object; a served ``leaf_hash`` is not trusted, only
    compared.
    """
    value = _loaded(data, UnusableEntry("the entry is not JSON"))
    if not isinstance(value, Mapping):
        raise UnusableEntry("the entry is not a JSON object")
    if "entry" in value and set(value) <= _SERVED_MEMBERS:
        entry, index = value["entry"], value.get("index")
        if not isinstance(entry, Mapping):
            raise UnusableEntry("'entry' is not a JSON object")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise UnusableEntry("'index' is not a whole number")
        raw = canonical_json(entry)
        served_leaf = value.get("leaf_hash")
        if served_leaf is not None and b64decode_strict(str(served_leaf)) != leaf_hash(raw):
            raise InclusionFailed(
                "the entry's 'leaf_hash' is not the hash of its canonical JSON: the entry "
                "was changed after it was served"
            )
        return index, raw
    return None, canonical_json(value)


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class ReceiptResult:
    """What a receipt proves: entry ``index`` is in the tree of ``size`` of log ``origin``,
    cosigned by ``cosigned`` (policy names), which meets ``quorum``."""

    origin: str
    size: int
    index: int
    cosigned: tuple[str, ...]
    quorum: str

    def summary(self) -> str:
        by = ", ".join(self.cosigned) if self.cosigned else "no witness"
        return (
            f"ok: entry {self.index} of {self.origin} is in the tree of size {self.size}, "
            f"cosigned by {by} (quorum {self.quorum} met)"
        )


def verify_receipt(
    proof: str | bytes, entry: str | bytes | Mapping[str, Any], policy: WitnessPolicy
) -> ReceiptResult:
    """Check a receipt offline: the log's signature on the checkpoint (a log of the
    policy), the quorum of witness cosignatures, and the entry's inclusion at the index.

    Raises the :class:`ReceiptError` of the first part that fails (``UnusablePolicy`` or
    ``UnusableEntry`` when an input cannot check anything).
    """
    if not policy.logs:
        raise UnusablePolicy(
            f"{policy.path}: no 'log' line, expected 'log <vkey>' naming the log whose "
            "receipts it checks (`gateway log key`, GET /v1/log/key)"
        )
    receipt = parse_receipt(proof)
    served_index, raw = entry_of(entry)
    checkpoint_text, lines = _signed_lines(receipt.checkpoint_note)
    origin = checkpoint_text.split("\n", 1)[0]
    checkpoint = _open_by_policy_log(receipt.checkpoint_note, origin, policy)
    try:
        found = cosigners(lines, checkpoint_text, policy.witness_keys())
    except CheckpointError as exc:
        raise BadCosignature(str(exc)) from None
    cosigned = tuple(sorted(found))
    if not policy.satisfied_by(cosigned):
        by = ", ".join(cosigned) if cosigned else "no witness of the policy"
        raise QuorumNotMet(f"cosigned by {by}; quorum {quorum_needs(policy)}")
    if served_index is not None and served_index != receipt.index:
        raise EntryIndexMismatch(
            f"the entry is served as index {served_index}, the receipt proves index "
            f"{receipt.index}: fetch GET /v1/log/entries/{receipt.index}"
        )
    try:
        verify_inclusion(
            receipt.index, checkpoint.size, leaf_hash(raw), list(receipt.hashes), checkpoint.root
        )
    except ProofError as exc:
        raise InclusionFailed(
            f"entry {receipt.index} is not proven in the tree of size {checkpoint.size}: {exc} "
            "(the entry or a proof hash was changed)"
        ) from None
    return ReceiptResult(checkpoint.origin, checkpoint.size, receipt.index, cosigned, policy.quorum)


def _open_by_policy_log(note: str, origin: str, policy: WitnessPolicy) -> Checkpoint:
    """The checkpoint, signed by a key the policy gives for its origin (a policy may list
    a log twice while its key is rotated: any of them will do)."""
    keys = [log.vkey for log in policy.logs if log.origin == origin]
    if not keys:
        known = ", ".join(repr(log.origin) for log in policy.logs)
        raise LogSignatureInvalid(
            f"the checkpoint is from another log: origin {origin[:80]!r}, expected the "
            f"policy's log {known}"
        )
    failures = []
    for vkey in keys:
        try:
            return open_checkpoint(note, vkey, expected_origin=origin)
        except CheckpointError as exc:
            failures.append(str(exc))
    raise LogSignatureInvalid(
        f"the checkpoint's log signature does not verify: {'; '.join(failures)}"
    )


def _signed_lines(note: str) -> tuple[str, list[SignatureLine]]:
    try:
        return split_note(note)
    except CheckpointError as exc:
        raise MalformedReceipt(f"the checkpoint is not a signed note: {exc}") from None


def quorum_needs(policy: WitnessPolicy) -> str:
    """What the quorum asks for, in words: ``'q' needs 2 of [w1, w2, w3]``."""
    if policy.quorum == NONE:
        return "none needs no cosignature"
    return f"{policy.quorum!r} needs {_needs(policy, policy.quorum)}"


def _needs(policy: WitnessPolicy, name: str) -> str:
    group = policy.groups.get(name)
    if group is None:
        return f"witness {name}"
    members = ", ".join(
        m if m not in policy.groups else f"{m} ({_needs(policy, m)})" for m in group.members
    )
    return f"{group.threshold} of [{members}]"


# --------------------------------------------------------------------------- the partner's side


@dataclass(frozen=True)
class Acknowledged:
    """The partner's verified acknowledgement of the receipt's disclosure."""

    partner: str
    acknowledgement: Acknowledgement

    def summary(self) -> str:
        ack = self.acknowledgement
        return (
            f"acknowledged by {self.partner} (received_sha256 {ack.received_sha256}, "
            f"received_at {ack.received_at}, {ack.alg} key {ack.kid or '(no kid)'})"
        )


def acknowledgement_of(
    entry: str | bytes | Mapping[str, Any],
    outcome: str | bytes | Mapping[str, Any],
    partner_key: str | bytes | Mapping[str, Any],
) -> Acknowledged:
    """The partner's acknowledgement recorded in ``outcome`` (the disclosure's outcome
    entry, bare or as ``GET /v1/log/entries/{index}`` serves it), checked with
    ``partner_key`` (the partner's public JWK or JWKS) and tied to ``entry``, the intent
    entry the receipt proves: same disclosure, same partner.

    Raises :class:`AcknowledgementNotShown` saying why not; ``UnusableEntry`` or
    ``UnusablePartnerKey`` when an input cannot check anything.
    """
    intent = json.loads(entry_of(entry)[1])
    found = _outcome_entry(outcome)
    disclosure_id, partner = intent.get("disclosure_id"), intent.get("partner")
    if found.get("kind") != "outcome":
        raise AcknowledgementNotShown(
            f"the outcome file holds a {str(found.get('kind'))[:20]!r} entry, expected the "
            f"'outcome' entry of disclosure {disclosure_id}"
        )
    if found.get("disclosure_id") != disclosure_id:
        raise AcknowledgementNotShown(
            f"the outcome entry is of disclosure {str(found.get('disclosure_id'))[:130]}, the "
            f"receipt's entry of {disclosure_id}: give the outcome of the same disclosure"
        )
    if found.get("partner") != partner:
        raise AcknowledgementNotShown(
            f"the outcome entry names partner {str(found.get('partner'))[:80]}, the receipt's "
            f"entry {partner}"
        )
    if "ack" not in found:
        raise AcknowledgementNotShown(
            f"no acknowledgement recorded: the outcome of {disclosure_id} is "
            f"{str(found.get('outcome'))[:20]!r} with no 'ack' (the partner's file does not "
            "ask for acknowledgements, or nothing was delivered)"
        )
    keys = partner_key_of(partner_key)
    try:
        ack = verify_acknowledgement(found, keys)
    except AcknowledgementInvalid as exc:
        raise AcknowledgementNotShown(f"not acknowledged ({exc.reason}): {exc}") from None
    return Acknowledged(str(partner), ack)


def _outcome_entry(outcome: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    value = _loaded(outcome, UnusableEntry("the outcome entry is not JSON"))
    if isinstance(value, Mapping) and isinstance(value.get("entry"), Mapping):
        value = value["entry"]  # as GET /v1/log/entries/{index} serves it
    if not isinstance(value, Mapping):
        raise UnusableEntry("the outcome entry is not a JSON object")
    return value


def partner_key_of(partner_key: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    """The partner's key document, once it is known to hold a public signing key
    (``UnusablePartnerKey`` otherwise)."""
    value = _loaded(partner_key, UnusablePartnerKey("the partner key is not JSON (a JWK or JWKS)"))
    if not isinstance(value, Mapping):
        raise UnusablePartnerKey("the partner key is not a JWK or JWKS object")
    try:
        parse_acknowledgement_keys(dict(value), "the partner key")
    except PartnerKeyError as exc:
        raise UnusablePartnerKey(str(exc)) from None
    return value


def _loaded(data: object, not_json: Exception) -> Any:
    """`data` as given, or the JSON value it holds when it is text; `not_json` is raised
    when that text is not JSON."""
    if not isinstance(data, (str, bytes)):
        return data
    try:
        return json.loads(data)
    except ValueError:
        raise not_json from None
