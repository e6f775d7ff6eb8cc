"""The env secrets the shipped partner files name; their sandboxes check the same values.
Sandboxes of some partners only, each on a free port."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config.model import Config
from gateway.crypto.seal import GatewayKeys
from gateway.partners.model import Partner
from gateway.sandbox import SandboxCluster, start_sandboxes

SANDBOX_SECRETS = {
    "BCEL_CLIENT_SECRET": "sandbox-bcel-secret",
    "BUREAU_CLIENT_SECRET": "sandbox-bureau-secret",
    "LXI_API_KEY": "sandbox-lxi-key",
    "ADREACH_API_KEY": "sandbox-adreach-key",
    "INSIGHT_API_KEY": "sandbox-insight-key",
}


async def sandboxes_of(config: Config, partners: Iterable[Partner]) -> SandboxCluster:
    """The sandboxes of `partners` only, each on a free port, trusting this gateway's keys
    (the caller closes the cluster)."""
    chosen = {partner.id: partner for partner in partners}
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    return await start_sandboxes(chosen, config.keys_dir, jwks, {}, ports=dict.fromkeys(chosen, 0))
