"""Key material and what is done with it: the key ring, sealing (JWS inside JWE), keys at rest,
subject keys.
"""
