"""A log key rotation seen by witnesses in their own processes — `gateway witness serve`
and the spec-only witness of tests/support — through the cosigning client.

The procedure of docs/operations/log-key-rotation.md: the new vkey is added to each
witness's `--log` list before the switch; the witness then cosigns the old key's
checkpoints, the switch checkpoint (signed by both) and the new key's, as one chain; once
the switch is cosigned, the old vkey can go. A witness not told of the new key refuses
the new key's checkpoints (403), which is why it is told first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.spec_witness import verify_cosigned
from support.witnesses import Witness, gateway_witness, spec_witness

from gateway.log import merkle
from gateway.log.checkpoint import Checkpoint, add_signature, sign_checkpoint, verifier_key
from gateway.log.witness_policy import WitnessPolicy, parse_witness_policy
from gateway.outbound.witnesses import Refused, Witnessing, cosign_checkpoint

ORIGIN = "gateway.example/log"


class RotatingLog:
    """A log in memory whose key is rotated: checkpoints signed by the keys asked for."""

    def __init__(self) -> None:
        self.old = Ed25519PrivateKey.generate()
        self.new = Ed25519PrivateKey.generate()
        self.old_vkey = verifier_key(ORIGIN, self.old.public_key())
        self.new_vkey = verifier_key(ORIGIN, self.new.public_key())
        self.leaves: list[bytes] = []

    def grow_to(self, size: int, *keys: Ed25519PrivateKey) -> str:
        while len(self.leaves) < size:
            self.leaves.append(merkle.leaf_hash(b"entry %d" % len(self.leaves)))
        cp = Checkpoint(ORIGIN, size, merkle.root_from_leaf_hashes(self.leaves[:size]))
        note = sign_checkpoint(cp, ORIGIN, keys[0])
        for key in keys[1:]:
            note = add_signature(note, ORIGIN, key)
        return note

    async def proof(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, self.leaves[:second])


STARTERS = {"gw": gateway_witness, "spec": spec_witness}


def policy(log_vkeys: Sequence[str], name: str, witness: Witness) -> WitnessPolicy:
    lines = [f"log {vkey}" for vkey in log_vkeys]
    lines += [f"witness {name} {witness.vkey} {witness.url}", f"quorum {name}"]
    return parse_witness_policy("\n".join(lines).encode(), "policy.txt")


async def submit(
    log: RotatingLog, pol: WitnessPolicy, note: str, size: int, known: dict[str, int]
) -> Witnessing:
    async with aiohttp.ClientSession() as session:
        return await cosign_checkpoint(session, pol, note, size, log.proof, known, timeout=5)


@pytest.mark.parametrize("which", ["gw", "spec"])
async def test_a_witness_given_both_keys_cosigns_across_the_switch(
    tmp_path: Path, which: str
) -> None:
    log = RotatingLog()
    both = [log.old_vkey, log.new_vkey]
    known: dict[str, int] = {}
    with STARTERS[which](tmp_path / which, both) as witness:
        pol = policy(both, which, witness)
        steps = [
            (5, (log.old,), log.old_vkey),  # before: the old key
            (8, (log.old, log.new), None),  # the switch: both keys
            (12, (log.new,), log.new_vkey),  # after: the new key
        ]
        for size, keys, only in steps:
            result = await submit(log, pol, log.grow_to(size, *keys), size, known)
            assert result.quorum_met, result.outcomes
            for vkey in [only] if only else both:
                # Checked with code that shares nothing with the gateway.
                assert len(verify_cosigned(result.note, vkey, [witness.vkey])) == 1
            known = result.known_sizes(known)
            assert known == {which: size}

    # After the switch the old vkey is removed from the witness: it goes on from 12.
    with STARTERS[which](tmp_path / which, [log.new_vkey]) as witness:
        pol = policy([log.new_vkey], which, witness)
        result = await submit(log, pol, log.grow_to(20, log.new), 20, known)
        assert result.quorum_met, result.outcomes
        # And a checkpoint signed only by the retired key is refused (403).
        stolen = await submit(log, pol, log.grow_to(25, log.old), 25, {which: 20})
        refused = stolen.outcomes[which]
        assert isinstance(refused, Refused) and refused.status == 403


@pytest.mark.parametrize("which", ["gw", "spec"])
async def test_a_witness_not_told_of_the_new_key_refuses_its_checkpoints(
    tmp_path: Path, which: str
) -> None:
    log = RotatingLog()
    with STARTERS[which](tmp_path / which, [log.old_vkey]) as witness:
        pol = policy([log.old_vkey, log.new_vkey], which, witness)
        first = await submit(log, pol, log.grow_to(5, log.old), 5, {})
        assert first.quorum_met
        # The switch checkpoint still verifies with the old key alone...
        switch = await submit(log, pol, log.grow_to(8, log.old, log.new), 8, {which: 5})
        assert switch.quorum_met, switch.outcomes
        # ...but the new key's checkpoints do not.
        after = await submit(log, pol, log.grow_to(12, log.new), 12, {which: 8})
        assert not after.quorum_met
        outcome = after.outcomes[which]
        assert isinstance(outcome, Refused) and outcome.status == 403
