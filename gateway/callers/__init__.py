"""Who is calling: internal services' bearer tokens checked against the JWKS."""
