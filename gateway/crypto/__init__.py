"""Key material and what is done with it: the key ring, sealing (JWS inside JWE), keys at rest,
subject keys.

- `keyring`: where each key file lives (`KeyPaths`), the signing keys and their rotation,
  the published JWKS;
- `key_files`: reading a JSON key file and creating a key file (one way each);
- `generate`: what `gateway keys generate` creates; `sandbox_keys`: the loopback sandbox
  partners' keys and TLS CA among it; `dev_tokens`: the development token issuer;
- `seal` (with `jose`, its direct JOSE path): sign-then-encrypt, opening partner answers;
- `at_rest`: sealing free text in the store; `subject_keys`: the log's subject-key chain.

Nothing is re-exported here: `store` and `log` import `at_rest` and `subject_keys`, and
importing this package must not load joserfc, aiohttp and the partner model with them
(`import gateway.crypto.subject_keys` loads about 120 modules; through a re-export of
`keyring` it would be about 240, of `seal` about 440).
"""
