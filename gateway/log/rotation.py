"""A log signing key rotation: the switch checkpoint, cross-signed, then the new key signs.

``gateway log rotate-key`` runs :func:`rotate_log_key`:

1. the next key (``keys/log-signing.next.pem``) is read, or made if ``rotate-key
   --prepare`` did not make it already (written before it is used, so an interrupted
   switch can be run again with the same key);
2. the *switch checkpoint* is signed and stored: the whole log now, checked like every
   checkpoint to extend the latest one, signed by the current key **and** the next key.
   It is at once the old key's last checkpoint and the new key's first, so a verifier
   that trusts either key follows the chain across it (signed-note allows several
   signatures; a witness verifies with any key it was given for the origin);
3. the current key is kept under ``keys/log-signing.previous/`` with its switch record
   (gateway.log.key_history), never deleted, and the next key becomes
   ``log-signing.private.pem``.

From then on the new key alone signs. The rule every reader applies (the instances before
extending the log, ``gateway log verify`` over the whole chain): a checkpoint after the
switch signed only by the retired key is refused; a change of key not cross-signed by
both keys is refused. An instance still holding only the old key refuses to extend the
switch checkpoint (it carries a key of the log that instance does not hold) until it is
restarted with the new key files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.clock import utc_now
from gateway.crypto.keyring import KeyPaths
from gateway.errors import LogUnavailableError
from gateway.log.checkpoint import signers_of, verifier_key
from gateway.log.key_history import SwitchRecord, ensure_next_key, read_log_key, retire_key
from gateway.log.service import LogService, LogSigner, TreeStore

__all__ = ["Rotation", "rotate_log_key"]


@dataclass(frozen=True)
class Rotation:
    """What a switch did: the retired key, the key now signing, and the switch checkpoint."""

    retired: str
    current: str
    switch: SwitchRecord


async def rotate_log_key(
    store: TreeStore,
    keys_dir: Path,
    origin: str,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> Rotation:
    """Switch the log of ``origin`` to the next key (see the module docstring)."""
    paths = KeyPaths(keys_dir)
    signer = LogSigner.load(keys_dir, origin)
    old_key = read_log_key(paths.log_signing)
    successor, _ = ensure_next_key(keys_dir)
    switching = signer.switching(successor)
    stored = await LogService(store, switching, clock=clock).checkpoint(reissue=True)
    new_vkey = verifier_key(origin, successor.public_key())
    both = [new_vkey, signer.verifier_key]
    if signers_of(stored.note, both)[1] != both:
        # The store answered with another checkpoint than the one just stored: stop here.
        raise LogUnavailableError(
            f"checkpoint #{stored.seq} read back after the switch is not signed by both keys; "
            "the key files are unchanged: run `gateway log rotate-key` again"
        )
    switch = SwitchRecord(
        successor=new_vkey,
        seq=stored.seq,
        size=stored.size,
        note=stored.note,
        at=stored.at,
    )
    retire_key(keys_dir, origin, old_key, switch)
    os.replace(paths.log_signing_next, paths.log_signing)  # the new key signs from now on
    return Rotation(retired=signer.verifier_key, current=new_vkey, switch=switch)
