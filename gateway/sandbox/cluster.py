"""Every loopback sandbox partner at once: `start_sandboxes` and the `SandboxCluster` it returns.

Each partner whose base_url is on loopback gets a `SandboxPartner` listening on its
host:port (or a free port, for tests), with its token endpoint beside it or on an
origin of its own; https sandboxes serve the sandbox server certificates and, for
mtls partners, ask for a client certificate from the sandbox CA. `with_base_url`
points a partner at where its sandbox actually listens, as the gateway must see it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.crypto.keyring import KeyPaths
from gateway.errors import ConfigError, InternalServerError
from gateway.net import is_loopback_host
from gateway.partners.model import Partner
from gateway.sandbox.credentials import Clock
from gateway.sandbox.partner import Received, SandboxPartner

__all__ = ["SandboxCluster", "start_sandboxes", "with_base_url"]


# -- pointing a partner elsewhere ----------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def with_base_url(partner: Partner, url: str, *, token_url: str | None = None) -> Partner:
    """`partner` pointed at `url` (e.g. a sandbox on a free port) instead of its base_url.

    An OAuth2 token_url on the same origin as the old base_url moves with it (same
    path, new scheme/host/port); one on another origin stays unless `token_url` is given.
    """
    url = url.rstrip("/")
    auth = partner.auth
    if (
        auth.token_url
        and token_url is None
        and _origin(auth.token_url) == _origin(partner.base_url)
    ):
        old = urlsplit(auth.token_url)
        new = urlsplit(url)
        token_url = old._replace(scheme=new.scheme, netloc=new.netloc).geturl()
    if token_url is not None:
        auth = replace(auth, token_url=token_url)
    return replace(partner, base_url=url, auth=auth)


# -- every loopback partner at once --------------------------------------------------------


@dataclass
class _Site:
    """One listening origin: which sandbox apps it serves and how."""

    scheme: str
    host: str
    port: int
    sandbox: SandboxPartner
    operations: bool
    token: bool


class SandboxCluster:
    """The running sandboxes of `start_sandboxes`; close it (or use `async with`)."""

    def __init__(
        self,
        sandboxes: Mapping[str, SandboxPartner],
        configs: Mapping[str, Partner],
        runners: list[web.AppRunner],
        busy: Mapping[str, str] | None = None,
    ) -> None:
        self._sandboxes = dict(sandboxes)
        self._configs = dict(configs)
        self._runners = runners
        self._busy = dict(busy or {})

    @property
    def busy(self) -> dict[str, str]:
        """Partners not served because an address was in use (skip_busy): id → host:port."""
        return dict(self._busy)

    @property
    def partners(self) -> dict[str, Partner]:
        """Every served partner as the gateway should see it (actual URLs)."""
        return dict(self._configs)

    def partner(self, partner_id: str) -> SandboxPartner:
        """The sandbox of `partner_id`: fault controls and records."""
        try:
            return self._sandboxes[partner_id]
        except KeyError:
            raise KeyError(
                f"no sandbox for {partner_id!r}; running: {sorted(self._sandboxes)}"
            ) from None

    def received(self, partner_id: str) -> list[Received]:
        return self.partner(partner_id).received

    def base_url(self, partner_id: str) -> str:
        return self.partner_config(partner_id).base_url

    def partner_config(self, partner_id: str) -> Partner:
        self.partner(partner_id)
        return self._configs[partner_id]

    async def close(self) -> None:
        for sandbox in self._sandboxes.values():
            await sandbox.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> SandboxCluster:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def start_sandboxes(
    partners: Mapping[str, Partner],
    keys_dir: Path,
    gateway_jwks: str | Mapping[str, Any],
    env: Mapping[str, str],
    *,
    ports: Mapping[str, int] | None = None,
    token_ttl: float = 300.0,
    encrypt_responses: bool = False,
    expected_issuer: str | None = None,
    clock: Clock = time.time,
    shutdown_timeout: float = 1.0,
    remember: bool = True,
    skip_busy: bool = False,
) -> SandboxCluster:
    """Serve every partner whose base_url is on loopback, on its own host:port.

    `ports` overrides the port of a partner's base_url (0 = a free port); a token
    endpoint on another origin of an overridden partner then gets a free port too.
    `cluster.partners` gives the partners with the URLs actually served. https
    base_urls are served with keys/sandbox/<id>.server.{crt,key}.pem and, for mtls
    partners, require a client certificate signed by keys/sandbox/ca.pem.
    Partners not on loopback are not served and not in `cluster.partners`.
    token_ttl, encrypt_responses, expected_issuer, clock and remember go to every
    SandboxPartner. A host:port already in use fails the whole start, unless
    `skip_busy`: then that partner is left out and `cluster.busy` says why.
    """
    options: dict[str, Any] = {
        "remember": remember,
        "token_ttl": token_ttl,
        "encrypt_responses": encrypt_responses,
        "expected_issuer": expected_issuer,
        "clock": clock,
    }
    overrides = dict(ports or {})
    sites: list[_Site] = []
    sandboxes: dict[str, SandboxPartner] = {}

    def claim(site: _Site) -> None:
        """Add a listening origin; a fixed host:port serves one partner only."""
        for taken in sites:
            if site.port == 0 or (taken.host, taken.port) != (site.host, site.port):
                continue
            if taken.sandbox is site.sandbox and taken.scheme == site.scheme:
                taken.operations = taken.operations or site.operations
                taken.token = taken.token or site.token
                return
            partner = site.sandbox.partner
            raise ConfigError(
                partner.source or partner.id,
                None,
                f"sandbox {partner.id} wants {site.host}:{site.port}, already used by sandbox "
                f"{taken.sandbox.partner.id}; give the partners different ports",
            )
        sites.append(site)

    for pid, partner in sorted(partners.items()):
        scheme, host, port = _origin(partner.base_url)
        if not is_loopback_host(host):
            continue
        if partner.auth.type == "mtls" and scheme != "https":
            raise ConfigError(
                partner.source or pid,
                None,
                f"mtls partner {pid} has an http:// base_url: a sandbox can only ask for a "
                "client certificate over https://",
            )
        sandbox = SandboxPartner.from_keys(partner, keys_dir, gateway_jwks, env, **options)
        sandboxes[pid] = sandbox
        token_url = (
            partner.auth.token_url if partner.auth.type == "oauth2_client_credentials" else None
        )
        same_origin = token_url is not None and _origin(token_url) == _origin(partner.base_url)
        port = overrides.get(pid, port)
        claim(_Site(scheme, host, port, sandbox, operations=True, token=same_origin))
        if token_url is not None and not same_origin:
            t_scheme, t_host, t_port = _origin(token_url)
            if is_loopback_host(t_host):
                t_port = 0 if pid in overrides else t_port
                claim(_Site(t_scheme, t_host, t_port, sandbox, operations=False, token=True))

    runners: dict[str, list[web.AppRunner]] = {}
    base_urls: dict[str, str] = {}
    token_urls: dict[str, str] = {}
    busy: dict[str, str] = {}
    try:
        for site in sites:
            partner = site.sandbox.partner
            if partner.id in busy:
                continue
            runner = web.AppRunner(
                site.sandbox.app(operations=site.operations, token=site.token),
                shutdown_timeout=shutdown_timeout,
                access_log=None,
            )
            await runner.setup()
            runners.setdefault(partner.id, []).append(runner)
            context = _server_tls(partner, keys_dir) if site.scheme == "https" else None
            try:
                await web.TCPSite(runner, site.host, site.port, ssl_context=context).start()
            except OSError as exc:
                if not skip_busy:
                    raise InternalServerError(
                        f"sandbox {partner.id} cannot listen on {site.host}:{site.port} "
                        f"({exc.strerror or type(exc).__name__}); free the port or pass "
                        f"ports={{'{partner.id}': 0}}",
                    ) from exc
                busy[partner.id] = f"{site.host}:{site.port}"
                for started in reversed(runners.pop(partner.id)):
                    await started.cleanup()
                base_urls.pop(partner.id, None)
                token_urls.pop(partner.id, None)
                continue
            port = int(runner.addresses[0][1])
            host = f"[{site.host}]" if ":" in site.host else site.host
            origin = f"{site.scheme}://{host}:{port}"
            if site.operations:
                base_urls[partner.id] = origin
            if site.token and not site.operations:
                token_urls[partner.id] = origin + urlsplit(partner.auth.token_url or "").path
    except BaseException:
        for runner in reversed([r for group in runners.values() for r in group]):
            await runner.cleanup()
        raise

    for pid in busy:
        await sandboxes.pop(pid).close()
    configs = {
        pid: with_base_url(sandboxes[pid].partner, base_urls[pid], token_url=token_urls.get(pid))
        for pid in sandboxes
    }
    serving = [r for group in runners.values() for r in group]
    return SandboxCluster(sandboxes, configs, serving, busy)


def _server_tls(partner: Partner, keys_dir: Path) -> ssl.SSLContext:
    """TLS for an https sandbox; client certificates from the sandbox CA for mtls partners."""
    paths = KeyPaths(keys_dir)
    cert, key = paths.sandbox_server_cert(partner.id), paths.sandbox_server_key(partner.id)
    ca = paths.sandbox_ca_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
        if partner.auth.type == "mtls":
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            str(paths.sandbox),
            None,
            f"sandbox TLS material for {partner.id} missing or unusable ({type(exc).__name__}): "
            f"expected {cert.name}, {key.name} and ca.pem; run 'gateway keys generate'",
        ) from exc
    return context
