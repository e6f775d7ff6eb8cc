"""A witness you can run: `gateway witness serve`, a minimal C2SP tlog-witness.

A partner, a regulator or a second team runs it against the company's gateway (or any
log of C2SP checkpoints): it cosigns a checkpoint only when it extends the last one it
cosigned for that log. `app` (the add-checkpoint decision and its aiohttp app), `state`
(the latest size and root per log, on disk before each answer), `keyfile` (its Ed25519
key). The wire formats and the cosignature are the log's own (`gateway.log.witness_protocol`,
`gateway.log.cosignature`), so the gateway's cosigning client speaks the same bytes.
"""
