"""The disclosure log (CONTRACT §5, §4.6): durable, tamper-evident, free of personal values.

- ``entries``: what an entry holds (intent, outcome, refused) and the row it is stored as;
- ``record``: ``EntryRecord``, a stored entry read back (parsed once, typed members);
- ``columns``: the search columns, derived from an entry's bytes and checked against them;
- ``canonical``: the entry bytes (canonical JSON) the Merkle leaf covers;
- ``subject_keys``: per-month keys for subject references and data digests, forgettable;
- ``merkle``: RFC 9162 hashing, proofs and their verification (pure);
- ``tree``: which subtree hashes are stored and how proofs are built from them (pure);
- ``checkpoint``: C2SP signed-note checkpoints with Ed25519 (pure);
- ``cosignature``: witness cosignatures of a checkpoint, C2SP cosignature/v1 (pure);
- ``witness_policy``: which witnesses must cosign, the C2SP tlog-policy file (pure);
- ``witness_protocol``: the C2SP tlog-witness add-checkpoint wire format (pure);
- ``writer``: group commit — concurrent appends share one durable transaction;
- ``service``: ``LogService``, the log over a store: appends, proofs, signed checkpoints;
- ``recovery``: ``InFlightLog`` (the pipeline's appends) and crash recovery across instances;
- ``audit``: ``gateway log verify``: every leaf and checkpoint recomputed, damage located;
- ``offline``: proof documents anyone can check with the public key alone;
- ``search``: finding disclosures (subject hashed first) and exporting the log.
"""
