"""Serving over TLS, and callers that authenticate with a client certificate (mTLS).

With `server.tls_client_ca_file` set, the server asks for a client certificate
(optional, so bearer tokens keep working); a certificate that chains to that CA
identifies the caller by its subject common name (CONTRACT §3).
"""

from __future__ import annotations

import ssl

from aiohttp import web

from gateway.config.model import ServerConfig


def server_ssl_context(server: ServerConfig) -> ssl.SSLContext | None:
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    if server.tls_client_ca_file is not None:
        context.load_verify_locations(cafile=str(server.tls_client_ca_file))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def certificate_caller_id(request: web.Request) -> str | None:
    """The subject CN of a client certificate the TLS layer verified, if any."""
    if request.transport is None:
        return None
    ssl_object = request.transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    # getpeercert() returns the details only for a certificate that was verified.
    peer = ssl_object.getpeercert()
    if not peer:
        return None
    subject: tuple[tuple[tuple[str, str], ...], ...] = peer.get("subject", ())  # type: ignore[assignment]
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
